"""`Tokenizer` = encoder + quantizer + decoder, with the inference contract of DESIGN.md:
any shape and rate in, `Codes` out; batch- and chunk-invariant codes; bounded memory on long files."""

from __future__ import annotations

import dataclasses
import hashlib
import itertools
import math
import os
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any, final

import numpy as np
import torch
from torch import Tensor, nn

from . import audio
from .codecs.base import MASKED, ONE_PASS, OWN_LENGTHS, PER_ITEM, TOKENIZER_WINDOWS, Encoder
from .codes import Codes, segment_bounds
from .config import config_hash
from .errors import ArgumentError, AudioError, CheckpointError, CodesError
from .layers import lengths_to_mask, linear_overlap_add
from .quantizers.base import Quantizer
from .streaming import EncodeStream, encode_blocker, frame_windows
from .vocoders.base import Decoder

__all__ = ["Tokenizer", "Codes"]


@final
class Tokenizer(nn.Module):
    """waveform -> Encoder -> Quantizer -> codes [B, Q, T] -> Quantizer.decode -> Decoder -> waveform.

    The one tokenizer of every family and peer: nothing subclasses it. What differs between families is declared
    by the encoder (`codecs.base.Encoder`: frames for a number of samples, frame-0 offset, batch policy, windows
    of long inputs, segments) or given here by the family's builder (`streams`, extra `modules` such as the
    hybrid's semantic projection, `codebook_rates`, an official `checkpoint`).
    """

    chunk_seconds: float = 60.0  # longer inputs are encoded / decoded in overlapping chunks of this length

    def __init__(self, encoder: Encoder, quantizer: Quantizer, decoder: Decoder | None, *,
                 sample_rate: int, family: str, config: Any, name: str | None = None,
                 streams: dict[str, tuple[int, int]] | None = None, modules: dict[str, nn.Module] | None = None,
                 codebook_rates: list[float] | None = None, checkpoint: dict | None = None, savable: bool = True):
        """streams: named codebook ranges [a, b) (a hybrid's "semantic", "acoustic"). modules: more submodules
        under their names (their weights are the checkpoint's too). codebook_rates: codes per second of each
        codebook where a codebook repeats its codes on the grid (SNAC). checkpoint: {path, files, sha256} of the
        official file it was loaded from (adapters). savable: False for another package's model (peers)."""
        super().__init__()
        self.encoder, self.quantizer, self.decoder = encoder, quantizer, decoder
        for key, module in (modules or {}).items():
            self.add_module(key, module)
        self.sample_rate = int(sample_rate)
        self.family = family
        self.config = config
        self.config_hash = config_hash(config)
        # what codes carry and `check_codes` compares: a tokenizer whose decoder was swapped makes its base's codes
        self.codes_hash = self.config_hash
        # a units family's config with its vocoder left out: the same units, made before a vocoder was added
        self.units_hash = _units_hash(config)
        self.name = name or f"{family}-{self.config_hash}"
        self.source: str | None = None  # where it was loaded from: a registry name or a directory
        self.checkpoint = checkpoint
        self.savable = savable
        self.adapter_info: dict = {}  # an adapter's account of another project's model (package, format, batching)
        self._streams = {k: (int(a), int(b)) for k, (a, b) in (streams or {}).items()}
        self._codebook_rates = None if codebook_rates is None else [float(r) for r in codebook_rates]
        if encoder.windows == ONE_PASS:
            self.chunk_seconds = math.inf

    # -- identity -------------------------------------------------------------------------------------

    @property
    def hop_length(self) -> int:
        return self.encoder.hop_length

    @property
    def frame_rate(self) -> float:
        return self.sample_rate / self.hop_length

    @property
    def num_codebooks(self) -> int:
        return self.quantizer.num_codebooks

    @property
    def codebook_size(self) -> int:
        """The largest codebook's size (every codebook's, unless `codebook_sizes` differ)."""
        return self.quantizer.codebook_size

    @property
    def codebook_sizes(self) -> list[int]:
        """Each codebook's size: all `codebook_size`, unless the quantizer's differ (DualCodec: a 16384-code
        semantic codebook before 4096-code acoustic ones)."""
        sizes = getattr(self.quantizer, "codebook_sizes", None)
        return [self.codebook_size] * self.num_codebooks if sizes is None else [int(k) for k in sizes]

    @property
    def mixed_codebook_sizes(self) -> bool:
        return len(set(self.codebook_sizes)) > 1

    @property
    def codebook_rates(self) -> list[float]:
        """Codes per second of each codebook (all `frame_rate`, unless a codebook repeats its codes on the grid)."""
        return [self.frame_rate] * self.num_codebooks if self._codebook_rates is None else self._codebook_rates

    @property
    def bitrate(self) -> float:
        """Bits per second at full Q."""
        return sum(r * math.log2(k) for r, k in zip(self.codebook_rates, self.codebook_sizes))

    @property
    def device(self) -> torch.device:
        return self._first_tensor().device

    @property
    def dtype(self) -> torch.dtype:
        """The weights' dtype."""
        return self._first_tensor().dtype

    def _first_tensor(self) -> Tensor:
        # buffers too: a tokenizer may hold only buffers (a k-means table)
        return next(itertools.chain(self.parameters(), self.buffers()))

    @property
    def streams(self) -> dict[str, tuple[int, int]]:
        """Named codebook ranges [a, b) (hybrid tokenizers: "semantic", "acoustic"); none by default."""
        return dict(self._streams)

    def num_frames(self, num_samples: Tensor | int) -> Tensor:
        """[B] samples (at this rate) -> [B] frames (the encoder's rule: ceil(T / hop) for the codecs)."""
        return self.encoder.num_frames(torch.as_tensor(num_samples))

    def identity(self) -> dict:
        """What travels with codes, so `decode` can find and check the tokenizer."""
        identity = {"name": self.name, "family": self.family, "config_hash": self.codes_hash,
                    "codebook_size": self.codebook_size, "source": self.source}
        if self.mixed_codebook_sizes:
            identity["codebook_sizes"] = self.codebook_sizes
        if self.streams:
            identity["streams"] = {k: list(v) for k, v in self.streams.items()}
        if self.checkpoint:  # an official checkpoint loaded by path: which weights made these codes
            identity["checkpoint"] = {"path": self.checkpoint["path"], "sha256": self.checkpoint["sha256"]}
        elif (weights := weights_hash(self)) is not None:  # same architecture, other weights: other codes
            identity["weights_hash"] = weights
        if self.encoder.segments is not None:
            identity["segments"] = dict(self.encoder.segments)
        return identity

    # -- encode ---------------------------------------------------------------------------------------

    def encode(self, wav: Tensor | np.ndarray, sample_rate: int, n_q: int | None = None,
               lengths: Tensor | None = None) -> Codes:
        """wav [T], [C, T] or [B, C, T] at `sample_rate` -> Codes [B, n_q, T_frames].

        `lengths` [B] are the valid samples of each item of a padded batch (at `sample_rate`); each item then
        gets the codes it gets alone. A segmented encoder's codes also carry each segment's gain (`scales` [B, S]).
        """
        n_q = self.check_n_q(n_q)
        x, num_samples = self.prepare_input(wav, sample_rate, lengths)
        if self.encoder.segments is not None:
            with torch.inference_mode():
                codes, frames, scales = self._encode_segmented(x, num_samples, n_q, self.encoder.segments)
        else:
            frames, scales = self.num_frames(num_samples), None
            with torch.inference_mode():
                codes = self._encode_frames(x, num_samples if lengths is not None else None, int(frames.max()), n_q)
        return Codes(codes=codes, lengths=frames.cpu(), sample_rate=self.sample_rate, hop_length=self.hop_length,
                     num_samples=num_samples.cpu(), offset=self.encoder.frame_offset, tokenizer=self.identity(),
                     scales=scales)

    def encode_file(self, path: str | os.PathLike, n_q: int | None = None, allow_truncated: bool = False) -> Codes:
        """An audio file -> Codes [1, n_q, T_frames]; a file shorter than its header says is an AudioError
        unless `allow_truncated` (see `audio.read`).

        A file longer than one chunk is streamed from disk (read, resampled and encoded chunk by chunk): the codes
        of `encode` on the whole file, in memory that does not grow with its duration."""
        n_q = self.check_n_q(n_q)  # before reading a file it would not be used for
        if self._streams_files() and audio.header_seconds(path) > self.chunk_seconds:
            return self._encode_stream(audio.stream(path, self.sample_rate, allow_truncated=allow_truncated), n_q)
        wav = audio.load(path, self.sample_rate, allow_truncated=allow_truncated)
        return self.encode(wav, self.sample_rate, n_q=n_q)

    def _streams_files(self) -> bool:
        """Whether a long file's codes are those of the tokenizer's own windows (`_latent_chunks`), which a stream
        of blocks can reproduce."""
        return encode_blocker(self) is None

    def _encode_stream(self, blocks: Iterator[np.ndarray], n_q: int) -> Codes:
        """Mono blocks [n] at this rate -> Codes [1, n_q, T_frames]: the chunks `_latent_chunks` cuts from the
        whole input, cut from a buffer that holds one chunk and its context, so the codes are those of `encode`."""
        stream = EncodeStream(self, n_q, step_frames=self._chunk_frames())
        codes = [stream.push(block) for block in blocks]
        codes.append(stream.flush())
        num_samples = stream.num_samples
        frames, samples = torch.tensor([-(-num_samples // self.hop_length)]), torch.tensor([num_samples])
        return Codes(codes=torch.cat(codes, dim=-1), lengths=frames, sample_rate=self.sample_rate,
                     hop_length=self.hop_length, num_samples=samples, tokenizer=self.identity())

    def _chunk_codes(self, x: np.ndarray, a: int, b: int, n_q: int) -> Tensor:
        """Samples [n] of one chunk -> the codes [1, n_q, b - a] of its frames [a, b)."""
        z = self._latents(torch.from_numpy(x)[None, None].to(self.device), None)[..., a:b]
        return self.quantizer.encode(z, n_q)

    def prepare_input(self, wav: Tensor | np.ndarray, sample_rate: int, lengths: Tensor | None = None
                      ) -> tuple[Tensor, Tensor]:
        """What every encode starts with: the input as mono [B, 1, T] at this rate on this device, and each item's
        valid samples [B] (at this rate); an item shorter than the encoder's one frame is an AudioError."""
        x = audio.prepare(wav, sample_rate, self.sample_rate).to(self.device)
        num_samples = self._lengths_at_rate(lengths, x, sample_rate)
        reason = audio.too_short(int(num_samples.min()), self.sample_rate, self.encoder.min_samples,
                                 self.encoder.frame_name)
        if reason is not None:
            raise AudioError(reason)
        return x, num_samples

    def _lengths_at_rate(self, lengths: Tensor | None, x: Tensor, sample_rate: int) -> Tensor:
        full = torch.full((x.shape[0],), x.shape[-1], dtype=torch.long)
        if lengths is None:
            return full
        lengths = torch.as_tensor(lengths, dtype=torch.long).flatten().cpu()
        if lengths.numel() != x.shape[0] or (lengths < 1).any():
            raise AudioError(f"lengths {lengths.tolist()} do not fit a batch of {x.shape[0]}")
        scaled = (lengths * self.sample_rate + sample_rate - 1) // sample_rate  # ceil, as soxr's output length
        return torch.minimum(scaled, full)

    def encode_latents(self, wav: Tensor | np.ndarray, sample_rate: int, lengths: Tensor | None = None) -> Tensor:
        """wav as for `encode` -> the encoder's continuous latents [B, D, T_frames], computed as `encode` computes
        the latents it quantizes (the same chunks of a long input, the same batch masks)."""
        if self.encoder.batching != MASKED or self.encoder.segments is not None:
            raise CodesError(f"{self.name} encodes {self.encoder.batching.replace('_', ' ')}"
                             f"{' in segments' if self.encoder.segments else ''}: it has no latents of one masked "
                             "batch pass")
        x, num_samples = self.prepare_input(wav, sample_rate, lengths)
        num_frames = int(self.num_frames(num_samples).max())
        with torch.inference_mode():
            chunks = self._latent_chunks(x, num_samples if lengths is not None else None, num_frames)
            return torch.cat(list(chunks), dim=-1)

    def _encode_frames(self, x: Tensor, num_samples: Tensor | None, num_frames: int, n_q: int) -> Tensor:
        """x [B, 1, T] -> codes [B, n_q, num_frames], by the encoder's batch policy."""
        enc = self.encoder
        if enc.batching == PER_ITEM:
            return self._encode_items(x, num_samples, num_frames, n_q)
        if enc.batching == OWN_LENGTHS and num_frames <= self._chunk_frames():
            lengths = torch.full((x.shape[0],), x.shape[-1]) if num_samples is None else num_samples
            return self.quantizer.encode(enc(self._padded(x, num_frames), lengths.to(x.device)), n_q)[..., :num_frames]
        chunks = self._latent_chunks(x, num_samples, num_frames)
        return torch.cat([self.quantizer.encode(z, n_q) for z in chunks], dim=-1)

    def _encode_items(self, x: Tensor, num_samples: Tensor | None, num_frames: int, n_q: int) -> Tensor:
        """Encoders without a padding mask: x [B, 1, T] -> codes [B, n_q, num_frames], a padded batch item by item
        (each unpadded)."""
        if num_samples is None or bool((num_samples == x.shape[-1]).all()):
            return self._one_pass_codes(x, num_frames, n_q)
        out = torch.zeros(x.shape[0], n_q, num_frames, dtype=torch.long, device=x.device)
        for i, n in enumerate(num_samples.tolist()):
            codes = self._one_pass_codes(x[i : i + 1, :, :n], int(self.num_frames(n)), n_q)
            out[i, :, : codes.shape[-1]] = codes[0]
        return out

    def _one_pass_codes(self, x: Tensor, num_frames: int, n_q: int) -> Tensor:
        codes = self.quantizer.encode(self.encoder(self._padded(x, num_frames)), n_q)
        if codes.shape[-1] < num_frames:
            raise RuntimeError(f"{self.name}: the encoder gave {codes.shape[-1]} frames for {x.shape[-1]} samples; "
                               f"expected {num_frames}")
        return codes[..., :num_frames]

    def _padded(self, x: Tensor, num_frames: int) -> Tensor:
        return _pad_to(x, num_frames * self.hop_length) if self.encoder.pad_to_frames else x

    def _latent_chunks(self, x: Tensor, num_samples: Tensor | None, num_frames: int) -> Iterator[Tensor]:
        """x [B, 1, T] -> the encoder's latents [B, D, frames], chunk after chunk: one when short (or when the
        encoder windows long inputs itself), else overlapping chunks (bounded memory), each trimmed to the frames
        it keeps. Chunks are cut on whole frames, so the input is padded to whole frames first."""
        hop = self.hop_length
        if num_samples is not None:  # zero past each item's end: batch padding must read as silence
            x = x * lengths_to_mask(num_samples.to(x.device), x.shape[-1])
        if self.encoder.windows != TOKENIZER_WINDOWS:
            yield self.encoder(self._padded(x, num_frames), None if num_samples is None else num_samples.to(x.device))
            return
        x = _pad_to(x, num_frames * hop)
        frame_lengths = None if num_samples is None else (num_samples + hop - 1) // hop
        step = self._chunk_frames()
        if num_frames <= step:
            yield self._latents(x, frame_lengths)
            return
        for a, b, s, e in frame_windows(num_frames, step, math.ceil(self.encoder.receptive_field / hop)):
            lens = None if frame_lengths is None else (frame_lengths - s).clamp(0, e - s)
            yield self._latents(x[..., s * hop : e * hop], lens)[..., a - s : b - s]

    def _latents(self, x: Tensor, frame_lengths: Tensor | None) -> Tensor:
        """The encoder alone: [B, 1, T] -> [B, D, T / hop]."""
        sample_lengths = None if frame_lengths is None else frame_lengths.to(x.device) * self.hop_length
        return self.encoder(x, sample_lengths)

    def _forward_codes(self, x: Tensor, frame_lengths: Tensor | None, n_q: int) -> Tensor:
        """The pure model forward: [B, 1, T] -> [B, n_q, T / hop]."""
        return self.quantizer.encode(self._latents(x, frame_lengths), n_q)

    def _chunk_frames(self) -> int:
        """Frames of one chunk of a long input (`chunk_seconds`; never cut when infinite)."""
        if not math.isfinite(self.chunk_seconds):
            return sys.maxsize
        return max(1, int(self.chunk_seconds * self.frame_rate))

    def _encode_segmented(self, x: Tensor, num_samples: Tensor, n_q: int, segments: dict
                          ) -> tuple[Tensor, Tensor, Tensor]:
        """A segmented encoder: x [B, 1, T] -> (codes [B, n_q, F] of the segments one after the other, frames [B],
        gains [B, S]); items of unequal length are encoded one by one, so their segments line up as alone."""
        if bool((num_samples == x.shape[-1]).all()):
            codes, gains = self._segments(x, n_q, segments)
            items = list(zip(codes, gains))
        else:
            items = []
            for i, n in enumerate(num_samples.tolist()):
                codes, gains = self._segments(x[i : i + 1, :, :n], n_q, segments)
                items.append((codes[0], gains[0]))
        frames = torch.tensor([c.shape[-1] for c, _ in items])
        codes = torch.zeros(len(items), n_q, int(frames.max()), dtype=torch.long)
        scales = torch.zeros(len(items), max(s.numel() for _, s in items))
        for i, (c, s) in enumerate(items):
            codes[i, :, : c.shape[-1]] = c.cpu()
            scales[i, : s.numel()] = s.float().cpu()
        return codes, frames, scales

    def _segments(self, x: Tensor, n_q: int, segments: dict) -> tuple[Tensor, Tensor]:
        """x [B, 1, N] -> codes [B, n_q, F] (the segments' frames in order), gains [B, S]."""
        codes, gains = [], []
        for start, size in segment_bounds(x.shape[-1], **segments):
            segment = x[..., start : start + size]
            gain = (segment.pow(2).mean(dim=(1, 2)).sqrt() + 1e-8 if self.encoder.normalize_segments
                    else segment.new_ones(len(x)))
            codes.append(self._forward_codes(segment / gain[:, None, None], None, n_q))
            gains.append(gain)
        return torch.cat(codes, dim=-1), torch.stack(gains, dim=-1)

    # -- decode ---------------------------------------------------------------------------------------

    def decode(self, codes: Codes | Tensor, *, steps: int | None = None, method: str | None = None) -> Tensor:
        """Codes (or an int tensor [B, q, T], q <= num_codebooks) -> wav [B, 1, T_samples] at sample_rate.

        Items of a padded batch are zero past their length; the output has the longest item's length (a bare code
        tensor: T * hop_length samples). `steps` and `method` ("euler", "midpoint") pick the ODE sampler of a flow
        decoder (default: its config's).
        """
        decoder = self._decoder()
        options = {k: v for k, v in {"steps": steps, "method": method}.items() if v is not None}
        unknown = sorted(set(options) - set(decoder.sampling_options))
        if unknown:
            raise ValueError(f"the decoder of {self.name} ({type(decoder).__name__}) takes no {', '.join(unknown)}")
        if self.encoder.segments is not None:
            return self._decode_segmented(codes, self.encoder.segments)
        if isinstance(codes, Codes):
            self.check_codes(codes)
            tokens, num_samples = codes.codes, codes.num_samples
            if num_samples is None:
                num_samples = codes.lengths * self.hop_length
        else:
            tokens, num_samples = codes, None
        tokens = self._check_tokens(tokens).to(self.device)
        with torch.inference_mode():
            wav = self._decode_frames(tokens, options)
        if num_samples is None:
            return wav
        wav = _fit(wav, int(num_samples.max()))  # HuBERT units: the last < 400 samples have no frame of their own
        if bool((num_samples == num_samples.max()).all()):  # no padded item: nothing to zero
            return wav
        keep = torch.arange(wav.shape[-1], device=wav.device) < num_samples.to(wav.device)[:, None, None]
        return wav * keep

    def _decode_frames(self, tokens: Tensor, options: dict | None = None) -> Tensor:
        """codes [B, q, T] -> wav [B, 1, T * hop]: in one pass, or in overlapping chunks when long."""
        num_frames, hop, options, decoder = tokens.shape[-1], self.hop_length, options or {}, self._decoder()
        step = self._chunk_frames()
        if num_frames <= step or decoder.receptive_field_frames >= sys.maxsize:
            return _fit(decoder(self.quantizer.decode(tokens), **options), num_frames * hop)
        chunks = []
        for a, b, s, e in frame_windows(num_frames, step, decoder.receptive_field_frames):
            wav = decoder(self.quantizer.decode(tokens[..., s:e]), **options)
            chunks.append(wav[..., (a - s) * hop : (b - s) * hop])
        return torch.cat(chunks, dim=-1)

    def _decoder(self) -> Decoder:
        if self.decoder is None:
            raise CodesError(f"tokenizer {self.name} has no decoder")
        return self.decoder

    def _decode_segmented(self, codes: Codes | Tensor, segments: dict) -> Tensor:
        """Codes from a segmented encode (or its codes file) -> wav [B, 1, T]: each segment decoded, its gain
        multiplied back, the overlaps cross-faded; bare code tensors lack the segment gains."""
        if not isinstance(codes, Codes) or codes.scales is None or codes.num_samples is None:
            raise CodesError(f"{self.name}: decoding needs the Codes that encode gave (with their per-segment "
                             "scales and lengths), not a bare code tensor")
        self.check_codes(codes)
        tokens = self._check_tokens(codes.codes).to(self.device)
        scales = codes.scales.to(self.device)
        with torch.inference_mode():
            wavs = [self._decode_segments(tokens[i : i + 1], scales[i : i + 1], n, segments)
                    for i, n in enumerate(codes.num_samples.tolist())]
        out = torch.zeros(len(wavs), 1, max(w.shape[-1] for w in wavs), device=self.device)
        for i, w in enumerate(wavs):
            out[i, :, : w.shape[-1]] = w[0]
        return out

    def _decode_segments(self, tokens: Tensor, scales: Tensor, num_samples: int, segments: dict) -> Tensor:
        bounds = segment_bounds(num_samples, **segments)
        frames = [-(-size // self.hop_length) for _, size in bounds]
        if scales.shape[-1] < len(bounds) or tokens.shape[-1] < sum(frames):
            raise CodesError(f"{self.name}: {num_samples} samples need {len(bounds)} segments of {sum(frames)} "
                             f"frames; the codes have {scales.shape[-1]} scales and {tokens.shape[-1]} frames")
        pieces, first = [], 0
        for k, count in enumerate(frames):
            wav = self._decoder()(self.quantizer.decode(tokens[..., first : first + count]))
            pieces.append(wav * scales[:, k, None, None])
            first += count
        return linear_overlap_add(pieces, segments["stride"])[..., :num_samples]

    def check_codes(self, codes: Codes) -> None:
        """Codes made by another tokenizer (another architecture or rate) cannot be decoded here."""
        theirs = codes.tokenizer.get("config_hash")
        if theirs is not None and theirs not in (self.codes_hash, self.units_hash):
            raise CodesError(
                f"codes of tokenizer {codes.tokenizer.get('name')!r} (config {theirs}) "
                f"cannot be decoded by {self.name!r} (config {self.codes_hash})"
            )
        theirs, ours = codes.tokenizer.get("weights_hash"), None if self.checkpoint else weights_hash(self)
        if theirs is not None and ours is not None and theirs != ours:
            raise CodesError(f"codes of {codes.tokenizer.get('name')!r} were made by other weights (weights {theirs}) "
                             f"than {self.name!r} has now ({ours}): decode them with the checkpoint that made them, "
                             "or encode the audio again")
        if codes.sample_rate != self.sample_rate or codes.hop_length != self.hop_length:
            raise CodesError(
                f"codes at {codes.sample_rate} Hz / hop {codes.hop_length} do not fit {self.name!r} "
                f"({self.sample_rate} Hz / hop {self.hop_length})"
            )

    def _check_tokens(self, tokens: Tensor) -> Tensor:
        tokens = torch.as_tensor(tokens)
        if tokens.ndim != 3 or tokens.is_floating_point() or tokens.is_complex():
            raise CodesError(f"codes must be an integer tensor [B, Q, T], got {tokens.dtype} {tuple(tokens.shape)}")
        if not 1 <= tokens.shape[1] <= self.num_codebooks:
            raise CodesError(f"codes have {tokens.shape[1]} codebooks; {self.name} has {self.num_codebooks}")
        if tokens.shape[-1] == 0:
            raise CodesError("codes have no frames")
        sizes = torch.tensor(self.codebook_sizes[:tokens.shape[1]], device=tokens.device)
        over = (tokens >= sizes[:, None]).any(-1).any(0)  # [Q]: a code past its codebook
        if int(tokens.min()) < 0 or bool(over.any()):
            size = f"the codebook size is {self.codebook_size}"
            if self.mixed_codebook_sizes and bool(over.any()):
                q = int(over.nonzero()[0, 0])
                size = f"codebook {q} has {self.codebook_sizes[q]} codes (sizes {self.codebook_sizes})"
            raise CodesError(f"codes out of range [{int(tokens.min())}, {int(tokens.max())}]; {size}")
        return tokens.long()

    def check_n_q(self, n_q: int | None) -> int:
        """How many codebooks a call uses: `n_q` (1..num_codebooks), all when None; an ArgumentError else."""
        n_q = self.num_codebooks if n_q is None else int(n_q)
        if not 1 <= n_q <= self.num_codebooks:
            raise ArgumentError(f"n_q={n_q} is out of range 1..{self.num_codebooks} (the codebooks of {self.name})")
        return n_q

    # -- checkpoints ----------------------------------------------------------------------------------

    def save(self, directory: str | os.PathLike, card: str | None = None, dtype: torch.dtype | None = None,
             dtype_modules: tuple[str, ...] = ()) -> Path:
        """Write `config.json` + `model.safetensors` (+ `README.md` model card) to `directory`; `dtype`
        (e.g. torch.float16) is how the weights are stored, of only `dtype_modules` (e.g. ("decoder",)) when
        given, and loading casts them back to float32."""
        if not self.savable:
            where = f" ({self.checkpoint['path']})" if self.checkpoint else ""
            raise CheckpointError(f"{self.name}: another package's model, loaded from its official checkpoint{where}; "
                                  "it is not saved as a speechtok checkpoint")
        from .checkpoint import save_checkpoint

        return save_checkpoint(self, directory, card=card, dtype=dtype, dtype_modules=dtype_modules)

    def extra_repr(self) -> str:
        text = (f"name={self.name!r}, sample_rate={self.sample_rate}, frame_rate={self.frame_rate:g}, "
                f"num_codebooks={self.num_codebooks}, codebook_size={self.codebook_size}")
        return text + (f", checkpoint={self.checkpoint['path']!r}" if self.checkpoint else "")


def _pad_to(x: Tensor, size: int) -> Tensor:
    return x if x.shape[-1] == size else torch.nn.functional.pad(x, (0, size - x.shape[-1]))


def _fit(x: Tensor, size: int) -> Tensor:
    """x [..., size]: a view of the first `size` samples when longer (no copy), zero-padded when shorter."""
    return x[..., :size] if x.shape[-1] >= size else torch.nn.functional.pad(x, (0, size - x.shape[-1]))


def _units_hash(config: Any) -> str | None:
    """The config hash without its `vocoder` (None when it has none): a unit vocoder does not change the units."""
    if not dataclasses.is_dataclass(config) or getattr(config, "vocoder", None) is None:
        return None
    return config_hash(dataclasses.replace(config, vocoder=None))  # type: ignore[type-var]


def weights_hash(tok) -> str | None:
    """16 hex digits of sha256 over the encoder's and quantizer's state as a checkpoint stores it (names, dtypes,
    shapes, bytes): the config hash names the architecture, this the weights that make the codes (a new decoder
    for the same codes keeps it). None for a tokenizer without those modules (an adapter names its checkpoint).
    Cached until a tensor changes (its storage or torch's in-place version counter), as training changes them."""
    encoder, quantizer = getattr(tok, "encoder", None), getattr(tok, "quantizer", None)
    if not isinstance(encoder, nn.Module) or not isinstance(quantizer, nn.Module):
        return None
    key = tuple((t.data_ptr(), t._version) for m in (encoder, quantizer) for t in m.state_dict().values())
    cached = getattr(tok, "_weights_hash", None)
    if cached is not None and cached[0] == key:
        return cached[1]
    h = hashlib.sha256()
    derived = getattr(quantizer, "derived_state_suffixes", ())  # recomputed on load: not part of the checkpoint
    for prefix, module in (("encoder.", encoder), ("quantizer.", quantizer)):
        for name, t in sorted(module.state_dict().items()):
            if name.endswith(derived):
                continue
            t = t.detach().cpu().contiguous()
            h.update(f"{prefix}{name}:{t.dtype}:{tuple(t.shape)};".encode())
            h.update(t.reshape(-1).view(torch.uint8).numpy().tobytes())
    tok._weights_hash = (key, h.hexdigest()[:16])
    return tok._weights_hash[1]
