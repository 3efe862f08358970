#!/usr/bin/env python3
# Copied from the team's shared/bench/pytorch_reference.py (2026-11-30), unchanged
# below this header, so that `cargo xtask bench --compare-pytorch` works from a
# clone of this repository alone.
"""PyTorch reference for the benchmark cases in SPEC.md.

Runs the same LSTM + attention-pooling text classifier as the project, on the
same shapes, and prints one JSON object per case, in the format SPEC.md gives.
Run it on the same machine, right next to `cargo xtask bench`, so that the two
are compared in one sitting:

    python3 -m pip install torch numpy
    python3 ../shared/bench/pytorch_reference.py            # all cases
    python3 ../shared/bench/pytorch_reference.py --quick    # fewer iterations
"""
import argparse, json, statistics, time

import torch
import torch.nn as nn
import torch.nn.functional as F

CASES = [
    # name, batch, seq_len, vocab, embed, hidden, classes, mode
    ("train_b32_t64", 32, 64, 20000, 128, 128, 2, "train"),
    ("train_b64_t256", 64, 256, 20000, 128, 128, 2, "train"),
    ("infer_b1_t32", 1, 32, 20000, 128, 128, 2, "infer"),
    ("infer_b256_t64", 256, 64, 20000, 128, 128, 2, "infer"),
]


class AttnLstmClassifier(nn.Module):
    def __init__(self, vocab, embed, hidden, classes):
        super().__init__()
        self.embedding = nn.Embedding(vocab, embed, padding_idx=0)
        self.lstm = nn.LSTM(embed, hidden, batch_first=True)
        self.score = nn.Linear(hidden, 1)
        self.out = nn.Linear(hidden, classes)

    def forward(self, tokens, mask):
        x = self.embedding(tokens)                      # [B, T, E]
        h, _ = self.lstm(x)                             # [B, T, H]
        s = self.score(h).squeeze(-1)                   # [B, T]
        s = s.masked_fill(~mask, float("-inf"))
        w = torch.softmax(s, dim=1)                     # [B, T]
        ctx = (w.unsqueeze(-1) * h).sum(dim=1)          # [B, H]
        return self.out(ctx)                            # [B, C]


def batch(b, t, vocab, classes, gen):
    tokens = torch.randint(1, vocab, (b, t), generator=gen)
    lengths = torch.randint(t // 2, t + 1, (b,), generator=gen)
    mask = torch.arange(t).unsqueeze(0) < lengths.unsqueeze(1)
    tokens = tokens.masked_fill(~mask, 0)
    labels = torch.randint(0, classes, (b,), generator=gen)
    return tokens, mask, labels


def run_case(name, b, t, vocab, embed, hidden, classes, mode, iters, warmup):
    torch.manual_seed(0)
    gen = torch.Generator().manual_seed(0)
    model = AttnLstmClassifier(vocab, embed, hidden, classes)
    opt = torch.optim.Adam(model.parameters(), lr=1e-3)
    tokens, mask, labels = batch(b, t, vocab, classes, gen)
    times = []
    for i in range(warmup + iters):
        start = time.perf_counter()
        if mode == "train":
            model.train()
            opt.zero_grad(set_to_none=True)
            loss = F.cross_entropy(model(tokens, mask), labels)
            loss.backward()
            opt.step()
            loss.item()
        else:
            model.eval()
            with torch.inference_mode():
                model(tokens, mask).argmax(dim=1).tolist()
        if i >= warmup:
            times.append(time.perf_counter() - start)
    med = statistics.median(times)
    return {
        "impl": "pytorch-" + torch.__version__.split("+")[0],
        "case": name,
        "backend": "cpu",
        "threads": torch.get_num_threads(),
        "batch": b,
        "seq_len": t,
        "median_ms": round(med * 1000, 3),
        "sequences_per_s": round(b / med, 1),
        "tokens_per_s": round(b * t / med, 1),
    }


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--quick", action="store_true", help="fewer iterations")
    ap.add_argument("--threads", type=int, default=None, help="torch threads (default: all cores)")
    ap.add_argument("--case", action="append", help="run only these cases")
    args = ap.parse_args()
    if args.threads:
        torch.set_num_threads(args.threads)
    iters, warmup = (5, 2) if args.quick else (20, 3)
    for case in CASES:
        if args.case and case[0] not in args.case:
            continue
        print(json.dumps(run_case(*case, iters=iters, warmup=warmup)), flush=True)


if __name__ == "__main__":
    main()
