#!/usr/bin/env python3
"""The whole path from audio to a speech LM and back, at toy scale: pre-tokenize with LM-ready ids, train a tiny
GPT (transformers, CPU) on them, sample a continuation and turn it back into codes and audio.

    python examples/lm_tiny_gpt.py ../shared/data/librispeech_samples/manifest.tsv --split train --limit 60 \
        --model speechtok-codec-16k --n-q 2 --steps 300 -o runs/lm-example
    speechtok decode runs/lm-example/sample.npy -o runs/lm-example/sample.wav      # or read sample.wav directly

It shows the plumbing a user needs (vocabulary, pattern, masking each position to its codebook's ids), not
quality: a 2-layer GPT on an hour of speech babbles. Writes OUT/tokens/ (Parquet + .vocab.json), OUT/loss.csv,
OUT/sample.npy (+ sidecar) and OUT/sample.wav.
"""

from __future__ import annotations

import argparse
import csv
import sys
import time
from pathlib import Path

import numpy as np
import torch

import speechtok
from speechtok import Codes, audio
from speechtok.lm import LMTokens, LMVocab, get_pattern
from speechtok.pretokenize import pretokenize


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("inputs", nargs="+", help="audio directory or manifest (.tsv/.jsonl)")
    ap.add_argument("-o", "--output", type=Path, required=True)
    ap.add_argument("--model", default="speechtok-codec-16k")
    ap.add_argument("--n-q", type=int, default=2, help="codebooks the LM models (flatten: n_q tokens a frame)")
    ap.add_argument("--split", action="append", default=[], dest="splits")
    ap.add_argument("--limit", type=int, default=None, help="use the first N files of the inputs")
    ap.add_argument("--steps", type=int, default=300)
    ap.add_argument("--block", type=int, default=128, help="tokens per training sequence")
    ap.add_argument("--sample-seconds", type=float, default=2.0)
    ap.add_argument("--seed", type=int, default=0)
    args = ap.parse_args()
    torch.manual_seed(args.seed)

    tok = speechtok.load(args.model)
    tokens_dir = args.output / "tokens"
    inputs = limited_inputs(args.inputs, args.splits, args.limit, args.output)
    pretokenize(tok, inputs, tokens_dir, n_q=args.n_q, lm="flatten", splits=() if args.limit else args.splits,
                num_workers=0)
    vocab = LMVocab.load(tokens_dir / ".vocab.json")
    sequences = read_ids(tokens_dir)
    print(f"{len(sequences)} utterances, {sum(map(len, sequences))} tokens, vocabulary {vocab.size}", file=sys.stderr)

    model = tiny_gpt(vocab.size, args.block)
    train(model, sequences, args.block, args.steps, args.output / "loss.csv")
    codes = sample_codes(model, vocab, args.n_q, int(args.sample_seconds * tok.frame_rate), args.block)
    out = Codes(codes=torch.from_numpy(codes)[None], lengths=torch.tensor([codes.shape[1]]),
                sample_rate=tok.sample_rate, hop_length=tok.hop_length,
                num_samples=torch.tensor([codes.shape[1] * tok.hop_length]), tokenizer=tok.identity())
    out.save(args.output / "sample.npy")
    audio.write(args.output / "sample.wav", tok.decode(out)[0], tok.sample_rate)
    print(f"wrote {args.output / 'sample.npy'} and sample.wav: codes {list(codes.shape)}", file=sys.stderr)


def limited_inputs(inputs: list[str], splits: list[str], limit: int | None, out: Path) -> list[str]:
    """The inputs, or a manifest of their first `limit` files."""
    if limit is None:
        return inputs
    from speechtok.pretokenize import collect_inputs

    items = collect_inputs(inputs, splits=splits)[:limit]
    out.mkdir(parents=True, exist_ok=True)
    (out / "inputs.tsv").write_text("path\n" + "".join(f"{it.path}\n" for it in items))
    return [str(out / "inputs.tsv")]


def read_ids(tokens_dir: Path) -> list[np.ndarray]:
    import pyarrow.dataset

    table = pyarrow.dataset.dataset(tokens_dir, format="parquet").to_table(columns=["input_ids"])
    return [np.asarray(ids, dtype=np.int64) for ids in table.column("input_ids").to_pylist()]


def tiny_gpt(vocab_size: int, block: int):
    from transformers import GPT2Config, GPT2LMHeadModel

    cfg = GPT2Config(vocab_size=vocab_size, n_positions=block, n_embd=64, n_layer=2, n_head=2, bos_token_id=1,
                     eos_token_id=2, pad_token_id=0)
    return GPT2LMHeadModel(cfg)


def train(model, sequences: list[np.ndarray], block: int, steps: int, log_path: Path, batch: int = 8) -> None:
    """Next-token loss on random windows of the concatenated utterances (each bos ... eos)."""
    stream = torch.from_numpy(np.concatenate(sequences))
    if len(stream) <= block:
        raise SystemExit(f"only {len(stream)} tokens: give more audio or a smaller --block")
    opt = torch.optim.AdamW(model.parameters(), lr=1e-3)
    gen = torch.Generator().manual_seed(0)
    rows, t0 = [], time.time()
    model.train()
    for step in range(1, steps + 1):
        starts = torch.randint(0, len(stream) - block, (batch,), generator=gen)
        x = torch.stack([stream[s : s + block] for s in starts])
        loss = model(input_ids=x, labels=x).loss
        opt.zero_grad()
        loss.backward()
        opt.step()
        if step == 1 or step % 25 == 0 or step == steps:
            rows.append({"step": step, "loss": round(loss.item(), 4), "seconds": round(time.time() - t0, 1)})
            print(f"step {step}: loss {loss.item():.3f}", file=sys.stderr)
    with open(log_path, "w", newline="") as f:
        writer = csv.DictWriter(f, fieldnames=["step", "loss", "seconds"])
        writer.writeheader()
        writer.writerows(rows)


@torch.no_grad()
def sample_codes(model, vocab: LMVocab, n_q: int, frames: int, block: int) -> np.ndarray:
    """Sample frame after frame; position p after <bos> may only take codebook (p % n_q)'s ids, so that every
    sample decodes (an unconstrained sample could put a special or another codebook's id anywhere)."""
    model.eval()
    ids = [vocab.bos]
    for p in range(frames * n_q):
        q = p % n_q
        logits = model(input_ids=torch.tensor([ids[-block + 1 :]])).logits[0, -1]
        lo = vocab.offset + q * vocab.codebook_size
        allowed = logits[lo : lo + vocab.codebook_size]
        ids.append(lo + int(torch.multinomial(torch.softmax(allowed, -1), 1)))
    tokens = LMTokens(np.array(ids + [vocab.eos]), n_q)
    return get_pattern("flatten").decode(tokens, vocab)


if __name__ == "__main__":
    main()
