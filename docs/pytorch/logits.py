#!/usr/bin/env python3
"""Loads the weights `infer export` wrote into the PyTorch module of the team's
reference (`AttnLstmClassifier` of xtask/pytorch_reference.py, a copy of
../shared/bench/pytorch_reference.py; with concat pooling, the default, when the
output layer reads three times the LSTM's width) and prints the logits, one JSON
line per input.

    python3 -m pip install torch numpy tokenizers
    cargo run --release -p infer -- export --artifact-dir artifacts/mr --to mr.safetensors
    python3 docs/pytorch/logits.py --weights mr.safetensors \\
        --tokenizer artifacts/mr/tokenizer.json "an utterly charming film" "a dull, lifeless plot"
    python3 docs/pytorch/logits.py --weights mr.safetensors --ids '[[12, 7, 301]]'

With --tokenizer, sentences are turned into ids by Hugging Face's `tokenizers`
from the artifact's own tokenizer.json (the library our tokenizer is built on),
cut to the model's max_seq_len; a sentence of no known word is read as one
[UNK], as `infer` reads it. The file is parsed with the standard library (the
safetensors format is an 8-byte length, a JSON header and the raw tensors).
"""
import argparse, json, os, struct, sys

import torch

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "..", "xtask"))
from pytorch_reference import AttnLstmClassifier  # noqa: E402

UNK_ID = 1


class ConcatPoolLstmClassifier(AttnLstmClassifier):
    """The reference module with concat pooling (`train --pooling concat`, the
    default): attention, the maximum and the mean over the real steps,
    concatenated before the output layer, as `model::Pooling::Concat` does."""

    def __init__(self, vocab, embed, hidden, classes):
        super().__init__(vocab, embed, hidden, classes)
        self.out = torch.nn.Linear(3 * hidden, classes)

    def forward(self, tokens, mask):
        h, _ = self.lstm(self.embedding(tokens))        # [B, T, H]
        s = self.score(h).squeeze(-1).masked_fill(~mask, float("-inf"))
        w = torch.softmax(s, dim=1)                     # [B, T]
        attended = (w.unsqueeze(-1) * h).sum(dim=1)     # [B, H]
        real = mask.unsqueeze(-1)                       # [B, T, 1]
        largest = h.masked_fill(~real, float("-inf")).amax(dim=1)  # [B, H]
        mean = (h * real).sum(dim=1) / real.sum(dim=1)  # [B, H]
        return self.out(torch.cat([attended, largest, mean], dim=1))  # [B, C]
DTYPES = {"F32": torch.float32, "F16": torch.float16, "BF16": torch.bfloat16}


def read_safetensors(path):
    with open(path, "rb") as f:
        (length,) = struct.unpack("<Q", f.read(8))
        header = json.loads(f.read(length))
        data = f.read()
    metadata = header.pop("__metadata__", {})
    tensors = {}
    for name, info in header.items():
        start, end = info["data_offsets"]
        flat = torch.frombuffer(bytearray(data[start:end]), dtype=DTYPES[info["dtype"]])
        tensors[name] = flat.reshape(info["shape"]).float()
    return tensors, metadata


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--weights", required=True, help="the safetensors file of `infer export`")
    ap.add_argument("--tokenizer", help="the artifact's tokenizer.json (needs `pip install tokenizers`)")
    ap.add_argument("--ids", help="token ids instead of sentences: a JSON list of lists")
    ap.add_argument("sentences", nargs="*")
    args = ap.parse_args()

    state, metadata = read_safetensors(args.weights)
    config = json.loads(metadata.get("config", "{}"))
    vocab, embed = state["embedding.weight"].shape
    hidden = state["lstm.weight_hh_l0"].shape[1]
    classes, pooled = state["out.weight"].shape
    # The output layer's width tells the pooling: the LSTM's alone, or three times it.
    module = ConcatPoolLstmClassifier if pooled == 3 * hidden else AttnLstmClassifier
    model = module(vocab, embed, hidden, classes)
    model.load_state_dict(state, strict=True)
    model.eval()

    if args.ids is not None:
        rows = json.loads(args.ids)
    else:
        from tokenizers import Tokenizer

        tokenizer = Tokenizer.from_file(args.tokenizer)
        max_len = config.get("max_seq_len", 64)
        rows = [(tokenizer.encode(s).ids[:max_len] or [UNK_ID]) for s in args.sentences]
    labels = config.get("labels")
    with torch.inference_mode():
        for ids in rows:
            tokens = torch.tensor([ids], dtype=torch.long)
            mask = torch.ones_like(tokens, dtype=torch.bool)
            logits = model(tokens, mask)[0].tolist()
            line = {"ids": ids, "logits": logits}
            if labels:
                line["label"] = labels[max(range(len(logits)), key=logits.__getitem__)]
            print(json.dumps(line))


if __name__ == "__main__":
    main()
