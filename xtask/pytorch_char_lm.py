#!/usr/bin/env python3
# Copied from the team's shared/bench/pytorch_char_lm.py (2026-12-03), unchanged
# below this header, so that `cargo xtask bench --compare-pytorch` works from a
# clone of this repository alone. Its case char_lm_train_b32_t64 is our train_lm_b32_t64.
"""PyTorch reference for the character language model's training speed.

The same model as the project's default `train lm`: a 64-wide character
embedding, two LSTM layers of 256 with dropout 0.2 after each, a Linear to the
characters; batches of 32 streams x 64 characters, Adam 2e-3, gradient norm
clipped at 5, the state carried from one window to the next and detached.
Prints one JSON line: median ms per training step and characters per second.

    python3 pytorch_char_lm.py --threads 2 [--vocab 76] [--steps 60]
"""
import argparse, json, statistics, time

import torch
import torch.nn as nn
import torch.nn.functional as F


class CharLm(nn.Module):
    def __init__(self, vocab, embed=64, hidden=256, layers=2, dropout=0.2):
        super().__init__()
        self.embedding = nn.Embedding(vocab, embed)
        self.lstm = nn.LSTM(embed, hidden, num_layers=layers, batch_first=True, dropout=dropout)
        self.drop = nn.Dropout(dropout)
        self.out = nn.Linear(hidden, vocab)

    def forward(self, x, state=None):
        h, state = self.lstm(self.embedding(x), state)
        return self.out(self.drop(h)), state


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--threads", type=int, default=None)
    ap.add_argument("--vocab", type=int, default=76)
    ap.add_argument("--batch", type=int, default=32)
    ap.add_argument("--seq-len", type=int, default=64)
    ap.add_argument("--steps", type=int, default=60)
    ap.add_argument("--warmup", type=int, default=5)
    args = ap.parse_args()
    if args.threads:
        torch.set_num_threads(args.threads)
    torch.manual_seed(0)
    model = CharLm(args.vocab)
    opt = torch.optim.Adam(model.parameters(), lr=2e-3)
    gen = torch.Generator().manual_seed(0)
    text = torch.randint(0, args.vocab, (args.batch, (args.steps + args.warmup + 1) * args.seq_len + 1), generator=gen)
    state, times = None, []
    model.train()
    for i in range(args.warmup + args.steps):
        a = i * args.seq_len
        x, y = text[:, a:a + args.seq_len], text[:, a + 1:a + 1 + args.seq_len]
        start = time.perf_counter()
        if state is not None:
            state = tuple(s.detach() for s in state)
        logits, state = model(x, state)
        loss = F.cross_entropy(logits.reshape(-1, args.vocab), y.reshape(-1))
        opt.zero_grad(set_to_none=True)
        loss.backward()
        nn.utils.clip_grad_norm_(model.parameters(), 5.0)
        opt.step()
        loss.item()
        if i >= args.warmup:
            times.append(time.perf_counter() - start)
    med = statistics.median(times)
    print(json.dumps({
        "impl": "pytorch-" + torch.__version__.split("+")[0], "case": "char_lm_train_b32_t64",
        "threads": torch.get_num_threads(), "median_ms": round(med * 1000, 3),
        "chars_per_s": round(args.batch * args.seq_len / med, 1),
    }))


if __name__ == "__main__":
    main()
