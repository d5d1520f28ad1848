"""Peers that encode fixed, slightly overlapping segments, each normalised by its own gain (the 48 kHz EnCodec).

Each segment is divided by its RMS (+1e-8) and run through the peer's bare encoder and quantizer; its codes are
the segments' frames one after the other, with one float per segment in `Codes.scales` (it travels in codes files
and pre-tokenized datasets too). Decoding runs each segment through the decoder, multiplies its gain back and
cross-fades the overlaps linearly, as the peer's own decode does. Segments start every `stride` samples while the
start is inside the signal (`codes.segment_bounds`), so a file's codes never depend on the rest of its batch.
"""

from __future__ import annotations

import numpy as np
import torch
from torch import Tensor

from ..codes import Codes, segment_bounds
from ..errors import CodesError
from .base import PeerTokenizer


class SegmentedPeerTokenizer(PeerTokenizer):
    """A `PeerTokenizer` whose encode and decode go segment by segment, around its `encoder` / `quantizer` /
    `decoder` parts (the bare model forward, which the speed benchmark times). `normalize=False`: every gain
    is 1."""

    def __init__(self, *args, segment_length: int, segment_stride: int, normalize: bool = True, **kwargs):
        super().__init__(*args, **kwargs)
        self.segments = {"length": int(segment_length), "stride": int(segment_stride)}
        self.normalize = normalize
        self.adapter_info["segments"] = (f"{segment_length} samples every {segment_stride}, each normalised by its "
                                         "own gain (Codes.scales); decode cross-fades the overlaps")

    def identity(self) -> dict:
        return {**super().identity(), "segments": dict(self.segments)}

    def encode(self, wav: Tensor | np.ndarray, sample_rate: int, n_q: int | None = None,
               lengths: Tensor | None = None) -> Codes:
        """As `Tokenizer.encode`; the Codes also carry each segment's gain in `scales` [B, S]."""
        n_q = self._check_n_q(n_q)
        x, num_samples = self._input(wav, sample_rate, lengths, self.hop_length)
        with torch.inference_mode():
            if bool((num_samples == x.shape[-1]).all()):  # equal lengths: the segments line up across the batch
                codes, scales = self._encode_segments(x, n_q)
                items = list(zip(codes, scales))
            else:
                items = [tuple(t[0] for t in self._encode_segments(x[i : i + 1, :, :n], n_q))
                         for i, n in enumerate(num_samples.tolist())]
        frames = torch.tensor([c.shape[-1] for c, _ in items])
        codes = torch.zeros(len(items), n_q, int(frames.max()), dtype=torch.long)
        scales = torch.zeros(len(items), max(s.numel() for _, s in items))
        for i, (c, s) in enumerate(items):
            codes[i, :, : c.shape[-1]] = c.cpu()
            scales[i, : s.numel()] = s.float().cpu()
        return Codes(codes=codes, lengths=frames, sample_rate=self.sample_rate, hop_length=self.hop_length,
                     num_samples=num_samples.cpu(), tokenizer=self.identity(), scales=scales)

    def _encode_segments(self, x: Tensor, n_q: int) -> tuple[Tensor, Tensor]:
        """x [B, 1, N] -> codes [B, n_q, F] (the segments' frames in order), gains [B, S]."""
        codes, gains = [], []
        for start, size in segment_bounds(x.shape[-1], **self.segments):
            segment = x[..., start : start + size]
            gain = segment.pow(2).mean(dim=(1, 2)).sqrt() + 1e-8 if self.normalize else segment.new_ones(len(x))
            codes.append(self._forward_codes(segment / gain[:, None, None], None, n_q))
            gains.append(gain)
        return torch.cat(codes, dim=-1), torch.stack(gains, dim=-1)

    def decode(self, codes: Codes | Tensor, *, steps: int | None = None, method: str | None = None) -> Tensor:
        """Codes from `encode` (or a codes file) -> wav [B, 1, T]; bare code tensors lack the segment gains."""
        if steps is not None or method is not None:
            raise ValueError(f"the decoder of {self.name} takes no steps or method")
        if not isinstance(codes, Codes) or codes.scales is None or codes.num_samples is None:
            raise CodesError(f"{self.name}: decoding needs the Codes that encode gave (with their per-segment "
                             "scales and lengths), not a bare code tensor")
        self.check_codes(codes)
        tokens = self._check_tokens(codes.codes).to(self.device)
        scales = codes.scales.to(self.device)
        with torch.inference_mode():
            wavs = [self._decode_segments(tokens[i : i + 1], scales[i : i + 1], n)
                    for i, n in enumerate(codes.num_samples.tolist())]
        out = torch.zeros(len(wavs), 1, max(w.shape[-1] for w in wavs), device=self.device)
        for i, w in enumerate(wavs):
            out[i, :, : w.shape[-1]] = w[0]
        return out

    def _decode_segments(self, tokens: Tensor, scales: Tensor, num_samples: int) -> Tensor:
        bounds = segment_bounds(num_samples, **self.segments)
        frames = [-(-size // self.hop_length) for _, size in bounds]
        if scales.shape[-1] < len(bounds) or tokens.shape[-1] < sum(frames):
            raise CodesError(f"{self.name}: {num_samples} samples need {len(bounds)} segments of {sum(frames)} "
                             f"frames; the codes have {scales.shape[-1]} scales and {tokens.shape[-1]} frames")
        pieces, first = [], 0
        for k, count in enumerate(frames):
            wav = self.decoder(self.quantizer.decode(tokens[..., first : first + count]))
            pieces.append(wav * scales[:, k, None, None])
            first += count
        return linear_overlap_add(pieces, self.segments["stride"])[..., :num_samples]


def linear_overlap_add(pieces: list[Tensor], stride: int) -> Tensor:
    """Segments [..., L_k] placed every `stride` samples, each weighted by a triangle over the first segment's
    length (a shorter last segment takes the triangle's start), summed and divided by the summed weights: where
    two segments overlap, the output fades linearly from one to the other."""
    size = pieces[0].shape[-1]
    ramp = torch.arange(1, size + 1, device=pieces[0].device, dtype=pieces[0].dtype) / (size + 1)
    weight = 0.5 - (ramp - 0.5).abs()
    total = stride * (len(pieces) - 1) + pieces[-1].shape[-1]
    out = pieces[0].new_zeros(*pieces[0].shape[:-1], total)
    norm = pieces[0].new_zeros(total)
    for k, piece in enumerate(pieces):
        start, n = k * stride, piece.shape[-1]
        out[..., start : start + n] += weight[:n] * piece
        norm[start : start + n] += weight[:n]
    return out / norm
