"""ABX (within / across speaker, within context) of MFCCs, MFCC k-means, every layer of a HuBERT and its units.

    python benchmarks/hubert_abx.py --model runs/hubert/it1-export --data LS-test \
        --mfcc-kmeans runs/hubert/mfcc_km100.safetensors --units 100=runs/hubert/km100.safetensors \
        --units-layer 3 --max-triplets 5000 -o runs/hubert/abx-ls.json

Rows: `mfcc` (speechtok abx's MFCC: 13 + deltas, CMVN, 10 ms), `mfcc-20ms` (the MFCCs HuBERT iteration 1
clusters, on HuBERT's grid: 25 ms windows every 20 ms), `mfcc-km` (their k-means centroids, K as fitted),
`hubert-L<i>` (hidden state i), `units-K<k>` (centroids of the units of `--units-layer`). Units and k-means are
compared through their centroid vectors, as `speechtok abx` compares codes through codebook embeddings. HuBERT
frames are centred on sample 320 i + 200 (offset 40 on the 320 grid).
"""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path

import torch
from einops import rearrange
from tqdm import tqdm

from speechtok.eval.abx import abx, items_from_alignments
from speechtok.eval.evaluate import load_references
from speechtok.eval.features import FrameFeatures, mfcc_features
from speechtok.eval.sets import alignments_path, utterances
from speechtok.quantizers.kmeans import load_centroids, nearest
from speechtok.registry import load
from speechtok.training.targets import MFCC


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--model", required=True, help="a hubert-units checkpoint (its HuBERT gives the layers)")
    p.add_argument("--data", required=True)
    p.add_argument("--mfcc-kmeans", default=None)
    p.add_argument("--units", nargs="*", default=[], metavar="K=FILE", help="centroids fitted on --units-layer")
    p.add_argument("--units-layer", type=int, default=None)
    p.add_argument("--layers", default="all", help="comma-separated hidden states, or all")
    p.add_argument("--max-triplets", type=int, default=5000)
    p.add_argument("--limit", type=int, default=None)
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("-o", "--output", default=None)
    args = p.parse_args()
    torch.set_num_threads(1)

    tok = load(args.model)
    layers = list(range(tok.encoder.model.num_layers + 1)) if args.layers == "all" else \
        [int(x) for x in args.layers.split(",")]
    units_layer = tok.encoder.layer if args.units_layer is None else args.units_layer
    units = {k: load_centroids(f)[0] for k, f in (u.split("=", 1) for u in args.units)}
    mfcc_km = load_centroids(args.mfcc_kmeans)[0] if args.mfcc_kmeans else None
    mfcc20 = MFCC()

    utts = utterances(args.data)[: args.limit]
    refs, _ = load_references(utts)
    items = items_from_alignments(alignments_path(args.data), {r.utt.id: r.utt.speaker for r in refs})
    rows: dict[str, dict[str, FrameFeatures]] = {}

    def put(name, uid, feats, sr, hop, offset):
        rows.setdefault(name, {})[uid] = FrameFeatures(feats.float().numpy(), sr, hop, offset)

    for ref in tqdm(refs, desc="features", unit="utt"):
        uid, wav = ref.utt.id, torch.from_numpy(ref.wav)
        if ref.sample_rate != 16000:
            raise SystemExit(f"{uid}: {ref.sample_rate} Hz; this benchmark is for 16 kHz sets")
        put("mfcc", uid, torch.from_numpy(mfcc_features(ref.wav, 16000).features), 16000, 160, -80)
        with torch.inference_mode():
            m = rearrange(mfcc20(wav[None, None])[0], "d t -> t d")
            put("mfcc-20ms", uid, m, 16000, 320, 40)
            if mfcc_km is not None:
                put(f"mfcc-km{mfcc_km.shape[0]}", uid, mfcc_km[nearest(m, mfcc_km)], 16000, 320, 40)
            states = tok.encoder.model(wav[None], last_layer=max(layers + [units_layer]))
            for i in layers:
                put(f"hubert-L{i}", uid, states[i][0], 16000, 320, 40)
            for k, cent in units.items():
                put(f"units-L{units_layer}-K{k}", uid, cent[nearest(states[units_layer][0], cent)], 16000, 320, 40)

    result = {"model": args.model, "data": args.data, "max_triplets": args.max_triplets, "context": "within",
              "utterances": len(refs), "scores": {}}
    for name, feats in rows.items():
        t = time.time()
        scores = {m: abx(feats, items, m, args.max_triplets, args.seed, "within").error for m in ("within", "across")}
        result["scores"][name] = scores
        print(f"{name:>20}\twithin {100 * scores['within']:.2f}%\tacross {100 * scores['across']:.2f}%"
              f"\t({time.time() - t:.0f} s)", flush=True)
    if args.output:
        Path(args.output).write_text(json.dumps(result, indent=1) + "\n")


if __name__ == "__main__":
    main()
