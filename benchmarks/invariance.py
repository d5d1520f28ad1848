"""What tests/test_invariance.py checks, as figures for this machine: per codec, the RVQ tie shares per layer,
and for the padded-batch and chunked paths the latents' difference from one pass alone, the raw frame agreement
(reported, never asserted: it depends on the CPU's rounding) and the real disagreements (asserted 0).

    python benchmarks/invariance.py                         # this CPU's best kernels, 1 and 2 threads
    ATEN_CPU_CAPABILITY=default ONEDNN_MAX_CPU_ISA=SSE41 python benchmarks/invariance.py
"""

from __future__ import annotations

import argparse
import os
import platform
import sys
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import speechtok  # noqa: E402
from tests.conftest import TINY_CODEC, speech  # noqa: E402
from tests.test_invariance import padded_batch  # noqa: E402
from tests.ties import latent_difference, real_disagreements, tie_shares  # noqa: E402

LENGTHS = [48000, 30001, 16320, 7000]


def batch_figures(tok) -> tuple[float, float, int]:
    """(largest latent difference, raw frame agreement, real disagreements) of items in a padded batch."""
    batch = padded_batch(speech(3.5), LENGTHS)
    together = tok.encode(batch, 16000, lengths=torch.tensor(LENGTHS))
    z_together = tok.encode_latents(batch, 16000, lengths=torch.tensor(LENGTHS))
    diff, agree, frames, real = 0.0, 0, 0, 0
    for i, n in enumerate(LENGTHS):
        alone = tok.encode(batch[i, :, :n], 16000).codes[0]
        z_alone = tok.encode_latents(batch[i, :, :n], 16000)[0]
        t = alone.shape[-1]
        diff = max(diff, latent_difference(z_alone, z_together[i, :, :t]))
        agree += int((alone == together.codes[i, :, :t]).all(0).sum())
        frames += t
        real += real_disagreements(tok, z_alone, alone, together.codes[i, :, :t], z_together[i, :, :t])
    return diff, agree / frames, real


def chunk_figures(tok, seconds: float = 12.0) -> tuple[float, float, int]:
    wav = speech(seconds)
    full, z_full = tok.encode(wav, 16000).codes[0], tok.encode_latents(wav, 16000)[0]
    tok.chunk_seconds = 0.7
    chunked, z_chunked = tok.encode(wav, 16000).codes[0], tok.encode_latents(wav, 16000)[0]
    tok.chunk_seconds = type(tok).chunk_seconds
    agree = float((full == chunked).all(0).double().mean())
    return latent_difference(z_full, z_chunked), agree, real_disagreements(tok, z_full, full, chunked, z_chunked)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--threads", type=int, nargs="+", default=[1, 2])
    args = parser.parse_args()
    isa = os.environ.get("ATEN_CPU_CAPABILITY", "best"), os.environ.get("ONEDNN_MAX_CPU_ISA", "best")
    cpu = next((line.split(":", 1)[1].strip() for line in open("/proc/cpuinfo") if line.startswith("model name")),
               platform.processor())
    print(f"# {cpu}; torch {torch.__version__}; ATEN_CPU_CAPABILITY={isa[0]} ONEDNN_MAX_CPU_ISA={isa[1]}")
    for name in ("tiny", "speechtok-codec-16k"):
        tok = speechtok.load(TINY_CODEC if name == "tiny" else name)
        with torch.inference_mode():
            z = tok.encode_latents(speech(12.0), 16000)[0]
        shares = " ".join(f"{100 * s:.2f}" for s in tie_shares(tok, z))
        print(f"{name}: tie shares per layer (% of decisions within 1e-5 of the latent's norm): {shares}")
        for threads in args.threads:
            torch.set_num_threads(threads)
            for path, figures in (("padded batch", batch_figures), ("chunks", chunk_figures)):
                diff, agree, real = figures(tok)
                print(f"  {threads} thread(s), {path:12s}: latent difference {diff:.1e} of RMS, raw frame "
                      f"agreement {agree:.4f}, real disagreements {real}")


if __name__ == "__main__":
    main()
