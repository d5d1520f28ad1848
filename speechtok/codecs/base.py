"""The encoder interface every tokenizer family implements, and what it declares about how the one `Tokenizer`
runs it (frames per input length, frame-0 offset, batch policy, windows of long inputs): families differ here,
not in Tokenizer subclasses."""

from __future__ import annotations

from abc import ABC, abstractmethod

import torch
from torch import Tensor, nn

MASKED, OWN_LENGTHS, PER_ITEM = "masked", "own_lengths", "per_item"  # batching
TOKENIZER_WINDOWS, OWN_WINDOWS, ONE_PASS = "tokenizer", "own", "one_pass"  # windows


class Encoder(nn.Module, ABC):
    """waveform `[B, 1, T_samples]` -> continuous latents `[B, D, T_frames]`."""

    hop_length: int  # input samples per output frame
    dim: int  # D
    frame_offset: int = 0  # samples from i * hop_length to where frame i's window is centred (HuBERT: 40)
    frame_name: str = "frame"  # what "audio too short" says one frame is
    # A padded batch: MASKED zeroes each item's padding and passes its length in whole frames' samples;
    # OWN_LENGTHS passes the exact lengths and the encoder reads each item at its own length (up to one chunk);
    # PER_ITEM runs each item alone, unpadded (encoders with no padding mask).
    batching: str = MASKED
    # A long input: TOKENIZER_WINDOWS cuts overlapping chunks of `Tokenizer.chunk_seconds` with `receptive_field`
    # of context; OWN_WINDOWS hands the whole input to the encoder, which windows it itself; ONE_PASS never cuts.
    windows: str = TOKENIZER_WINDOWS
    pad_to_frames: bool = True  # the input is zero-padded to whole frames before the encoder sees it
    # Segmented encoders (the 48 kHz EnCodec): {"length", "stride"} in samples, each segment divided by its RMS
    # when `normalize_segments`; codes then carry one gain a segment (`Codes.scales`).
    segments: dict | None = None
    normalize_segments: bool = True
    # False when a frame depends on the whole past (a recurrent layer): `receptive_field` then bounds only the
    # convolutions, so windows reproduce the offline codes only where the offline path cuts them too
    finite_context: bool = True

    @abstractmethod
    def forward(self, wav: Tensor, lengths: Tensor | None = None) -> Tensor:
        """wav [B, 1, T] (T a multiple of hop_length), lengths [B] valid samples -> z [B, D, T // hop_length]."""

    @property
    @abstractmethod
    def receptive_field(self) -> int:
        """Input samples that influence one output frame (both sides together); chunked encoding overlaps by this."""

    @property
    def lookahead(self) -> int:
        """Input samples past a frame's own hop that influence it (a stream's right context); by default the
        whole receptive field, as if it were all ahead. 0 for a causal encoder."""
        return self.receptive_field

    @property
    def min_samples(self) -> int:
        """The shortest input that gives one frame."""
        return self.hop_length

    def num_frames(self, num_samples: Tensor) -> Tensor:
        """[B] samples -> [B] frames: ceil(T / hop_length) (the input is padded to whole frames)."""
        num_samples = torch.as_tensor(num_samples)
        return (num_samples + self.hop_length - 1) // self.hop_length
