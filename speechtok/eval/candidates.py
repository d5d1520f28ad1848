"""What `speechtok eval` can score: any tokenizer `speechtok.load` finds (bundled name, checkpoint directory,
`plugin[:spec]`), and pseudo-models that are not tokenizers (`identity`: decode = the original, the ceiling of
every metric).

A candidate resynthesizes a reference `[T]` at its native rate for several `n_q` at once: the audio is encoded
once with the largest `n_q`, and each `n_q` decodes the first `n_q` codebooks (residual codebooks are nested:
the first q codes of an n_q > q encoding are the codes of a q encoding). The resynthesis is resampled back to
the reference's rate (soxr HQ, `speechtok.audio.resample`) so that every model is scored against the same
reference signal.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
import torch
from torch import Tensor

from .. import audio
from ..registry import split_spec

__all__ = ["Resynthesis", "Candidate", "TokenizerCandidate", "IdentityCandidate", "OpusCandidate", "PSEUDO_MODELS",
           "load_candidate"]


@dataclass
class Resynthesis:
    codes: Tensor | None  # [Q_max, T_frames] int64 (None for pseudo-models)
    outputs: dict[int | None, np.ndarray]  # n_q -> float32 [T] at the reference's rate


class Candidate:
    spec: str  # as the user named it
    tok = None  # the Tokenizer, for tokenizers

    def describe(self) -> dict:
        raise NotImplementedError

    def n_qs(self, requested: Sequence[int]) -> list[int | None]:
        """The rows to score: the requested n_q (empty: all codebooks). Raises ValueError for one out of range."""
        raise NotImplementedError

    def resynthesize(self, wav: np.ndarray, sample_rate: int, n_qs: Sequence[int | None]) -> Resynthesis:
        raise NotImplementedError

    def measured_bps(self) -> float | None:
        """Bits per second of what it wrote, for candidates whose bitrate is a file size (classical codecs);
        tokenizers' comes from their codes."""
        return None


class IdentityCandidate(Candidate):
    """decode(encode(x)) = x: PESQ-wb about 4.64, STOI 1.0. No codes, no bitrate."""

    def __init__(self, spec: str = "identity"):
        self.spec = spec

    def describe(self) -> dict:
        return {"name": "identity", "family": "identity", "source": "pseudo-model: decode = the original"}

    def n_qs(self, requested: Sequence[int]) -> list[int | None]:
        return [None]

    def resynthesize(self, wav, sample_rate, n_qs):
        return Resynthesis(None, {None: np.asarray(wav, dtype=np.float32)})


class TokenizerCandidate(Candidate):
    def __init__(self, spec: str, tok):
        self.spec, self.tok = spec, tok

    def describe(self) -> dict:
        from ..registry import tokenizer_checkpoint

        tok = self.tok
        ckpt = tokenizer_checkpoint(tok)  # which weights this row used: path and content hash
        return {"checkpoint": None if ckpt is None else {"path": ckpt["path"], "sha256": ckpt["sha256"]},
                "name": tok.name, "family": tok.family, "source": tok.source, "sample_rate": tok.sample_rate,
                "frame_rate": tok.frame_rate, "hop_length": tok.hop_length, "num_codebooks": tok.num_codebooks,
                "codebook_size": tok.codebook_size, "bitrate": tok.bitrate, "config_hash": tok.config_hash,
                **({"codebook_sizes": tok.codebook_sizes} if tok.mixed_codebook_sizes else {}),
                "params": sum(p.numel() for p in tok.parameters()),
                "device": str(tok.device), "dtype": str(tok.dtype).replace("torch.", ""),
                "chunk_seconds": tok.chunk_seconds, "encode_only": tok.decoder is None}

    def n_qs(self, requested: Sequence[int]) -> list[int | None]:
        q = self.tok.num_codebooks
        chosen = list(dict.fromkeys(int(n) for n in requested)) or [q]
        bad = [n for n in chosen if not 1 <= n <= q]
        if bad:
            raise ValueError(f"n_q {bad} out of range 1..{q} for {self.spec}")
        return chosen

    def resynthesize(self, wav, sample_rate, n_qs):
        tok = self.tok
        codes = tok.encode(wav, sample_rate, n_q=max(n_qs))
        outputs = {}
        for n_q in n_qs if tok.decoder is not None else ():  # encode-only: codes, no audio to score
            out = tok.decode(dataclasses.replace(codes, codes=codes.codes[:, :n_q]))[0, 0]  # [T] at tok's rate
            outputs[n_q] = audio.resample(out.float().cpu().numpy(), tok.sample_rate, sample_rate)
        return Resynthesis(codes.item(0).codes[0].cpu(), outputs)


class OpusCandidate(Candidate):
    """A classical reference: Ogg Opus through libsndfile (soundfile's bundled build), at a compression level
    (`opus?level=1.0`, the lowest bitrate, about 8 kbps on speech at 16 kHz; 0.9: about 33 kbps). Its bitrate is
    measured: the Ogg file's bits over the audio's seconds, summed over the set."""

    def __init__(self, spec: str = "opus"):
        self.spec = spec
        options = split_spec(spec)[1]
        try:
            self.level = float(options.get("level", 1.0))
        except ValueError:
            raise ValueError(f"{spec}: level must be a number in [0, 1]") from None
        if not 0.0 <= self.level <= 1.0:
            raise ValueError(f"{spec}: level {self.level} is outside [0, 1]")
        self.bits, self.seconds = 0, 0.0

    def describe(self) -> dict:
        import soundfile as sf

        return {"name": f"opus (level {self.level:g})", "family": "reference",
                "source": f"Ogg Opus by libsndfile {sf.__libsndfile_version__}, compression level {self.level:g}"}

    def n_qs(self, requested: Sequence[int]) -> list[int | None]:
        return [None]

    def resynthesize(self, wav, sample_rate, n_qs):
        import io

        import soundfile as sf

        x = np.asarray(wav, dtype=np.float32).reshape(-1)
        rate = min((r for r in (8000, 12000, 16000, 24000, 48000) if r >= sample_rate), default=48000)
        pcm = x if rate == sample_rate else audio.resample(x, sample_rate, rate)
        buf = io.BytesIO()
        sf.write(buf, pcm, rate, format="OGG", subtype="OPUS", compression_level=self.level)
        self.bits += 8 * buf.tell()
        self.seconds += x.size / sample_rate
        buf.seek(0)
        y, _ = sf.read(buf, dtype="float32")
        y = y if rate == sample_rate else audio.resample(y, rate, sample_rate)
        return Resynthesis(None, {None: _to_length(y, x.size)})

    def measured_bps(self) -> float | None:
        return self.bits / self.seconds if self.seconds else None


class Codec2Candidate(Candidate):
    """A classical reference: Codec 2 (David Rowe's low-bitrate speech vocoder, 8 kHz) through its command-line
    tools `c2enc` / `c2dec` (Debian / Ubuntu: `apt-get install codec2`), at a mode (`codec2?mode=3200`, the
    default, down to 700C / 450). The input is resampled to 8 kHz and back, as a user of Codec 2 would."""

    MODES = {"3200": 3200, "2400": 2400, "1600": 1600, "1400": 1400, "1300": 1300, "1200": 1200, "700C": 700,
             "450": 450}

    def __init__(self, spec: str = "codec2"):
        import shutil

        self.spec = spec
        options = split_spec(spec)[1]
        self.mode = options.get("mode", "3200")
        if self.mode not in self.MODES:
            raise ValueError(f"{spec}: mode {self.mode!r}; choose one of {', '.join(self.MODES)}")
        self.tools = [shutil.which("c2enc"), shutil.which("c2dec")]
        if None in self.tools:
            raise ValueError(f"{spec}: needs Codec 2's c2enc and c2dec on PATH (Debian / Ubuntu: apt-get install "
                             "codec2)")

    def describe(self) -> dict:
        return {"name": f"codec2 ({self.mode})", "family": "reference",
                "source": f"Codec 2 mode {self.mode} by {self.tools[0]} / {self.tools[1]}, 8 kHz"}

    def n_qs(self, requested: Sequence[int]) -> list[int | None]:
        return [None]

    def resynthesize(self, wav, sample_rate, n_qs):
        import subprocess
        import tempfile
        from pathlib import Path

        x = np.asarray(wav, dtype=np.float32).reshape(-1)
        pcm = np.clip(audio.resample(x, sample_rate, 8000) * 32768, -32768, 32767).astype("<i2")
        with tempfile.TemporaryDirectory() as tmp:
            raw, bits, out = Path(tmp) / "in.raw", Path(tmp) / "c2.bit", Path(tmp) / "out.raw"
            raw.write_bytes(pcm.tobytes())
            for cmd in ([self.tools[0], self.mode, raw, bits], [self.tools[1], self.mode, bits, out]):
                run = subprocess.run([str(c) for c in cmd], capture_output=True, text=True)
                if run.returncode != 0:
                    raise RuntimeError(f"{Path(cmd[0]).name} failed: {' '.join(run.stderr.split())[:200]}")
            y = np.frombuffer(out.read_bytes(), dtype="<i2").astype(np.float32) / 32768
        return Resynthesis(None, {None: _to_length(audio.resample(y, 8000, sample_rate), x.size)})

    def measured_bps(self) -> float | None:
        return float(self.MODES[self.mode])


def _to_length(y: np.ndarray, n: int) -> np.ndarray:
    """A classical codec's output cut or zero-padded to the input's `n` samples."""
    return np.pad(y[:n], (0, max(0, n - y.size)))


PSEUDO_MODELS = {"identity": IdentityCandidate, "opus": OpusCandidate, "codec2": Codec2Candidate}


def load_candidate(spec: str, device: str | torch.device | None = None) -> Candidate:
    """`identity`, or anything `speechtok.load` takes (a checkpoint directory or plugin wins over a pseudo-model
    of the same name only when it is a directory)."""
    from pathlib import Path

    name = spec.partition("?")[0]
    if name in PSEUDO_MODELS and not Path(spec).is_dir():
        return PSEUDO_MODELS[name](spec)
    from ..registry import load

    return TokenizerCandidate(spec, load(spec, device=device))
