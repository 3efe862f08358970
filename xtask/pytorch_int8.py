#!/usr/bin/env python3
# Copied from the team's shared/bench/pytorch_int8.py (2026-12-03), unchanged
# below this header, so that `cargo xtask bench --compare-pytorch` works from a
# clone of this repository alone.
"""PyTorch reference for int8 inference: dynamic quantization of the SPEC.md classifier.

torch.ao.quantization.quantize_dynamic turns the LSTM and Linear weights into
int8 (activations quantized on the fly), the usual way a PyTorch user makes an
LSTM model smaller and faster on a CPU. Prints one JSON line per inference
case for float32 and for int8, in SPEC.md's format (backend "cpu" / "cpu-int8").

    python3 pytorch_int8.py --threads 2
"""
import argparse, copy, importlib.util, json, os, statistics, time

import torch
import torch.nn as nn

here = os.path.dirname(os.path.abspath(__file__))
spec = importlib.util.spec_from_file_location("ref", os.path.join(here, "pytorch_reference.py"))
ref = importlib.util.module_from_spec(spec)
spec.loader.exec_module(ref)


def time_infer(model, tokens, mask, iters=50, warmup=5):
    times = []
    with torch.inference_mode():
        for i in range(warmup + iters):
            start = time.perf_counter()
            model(tokens, mask).argmax(dim=1).tolist()
            if i >= warmup:
                times.append(time.perf_counter() - start)
    return statistics.median(times)


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--threads", type=int, default=None)
    args = ap.parse_args()
    if args.threads:
        torch.set_num_threads(args.threads)
    for name, b, t, vocab, embed, hidden, classes, mode in ref.CASES:
        if mode != "infer":
            continue
        torch.manual_seed(0)
        gen = torch.Generator().manual_seed(0)
        model = ref.AttnLstmClassifier(vocab, embed, hidden, classes).eval()
        q = torch.ao.quantization.quantize_dynamic(copy.deepcopy(model), {nn.LSTM, nn.Linear}, dtype=torch.qint8)
        tokens, mask, _ = ref.batch(b, t, vocab, classes, gen)
        for backend, m in (("cpu", model), ("cpu-int8", q)):
            med = time_infer(m, tokens, mask)
            print(json.dumps({"impl": "pytorch-" + torch.__version__.split("+")[0], "case": name, "backend": backend,
                              "threads": torch.get_num_threads(), "batch": b, "seq_len": t,
                              "median_ms": round(med * 1000, 3), "sequences_per_s": round(b / med, 1),
                              "tokens_per_s": round(b * t / med, 1)}), flush=True)


if __name__ == "__main__":
    main()
