"""Streams over an ONNX export in numpy and onnxruntime alone (no torch, no speechtok model code): the protocol of
config.json's `streaming` section, as a runtime elsewhere (C++, the web) would implement it.

    enc = OnnxEncodeStream("export-dir")       # speechtok export-onnx MODEL -o export-dir --stream-step 1
    codes = [enc.push(chunk) for chunk in chunks] + [enc.flush()]   # each [Q, k]: the offline codes
    dec = OnnxDecodeStream("export-dir")
    audio = [dec.push(c) for c in codes] + [dec.flush()]           # each [k * hop]: the offline audio

Frames with less left context than the graphs' state holds (the first ones) and the last ones go through the
whole-input graphs on their shorter windows; all others through the step graphs, whose state is fed back.
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np

__all__ = ["OnnxEncodeStream", "OnnxDecodeStream"]


def _session(path: Path):
    import onnxruntime as ort

    return ort.InferenceSession(str(path), providers=["CPUExecutionProvider"])


class _Stream:
    def __init__(self, directory: str | Path, part: str):
        self.dir = Path(directory)
        self.config = json.loads((self.dir / "config.json").read_text())
        section = self.config.get("streaming", {}).get(part)
        if section is None:
            raise ValueError(f"{self.dir}: no streaming {part} (export it with --stream-step)")
        self.section, self.hop = section, int(self.config["hop_length"])
        self.step = int(self.config["streaming"]["step_frames"])
        self.whole = _session(self.dir / self.config[part]["file"])
        self.stepper = _session(self.dir / section["file"])


class OnnxEncodeStream(_Stream):
    """Mono float32 samples at the export's rate, in chunks of any size -> codes [Q, k] of completed frames."""

    def __init__(self, directory: str | Path):
        super().__init__(directory, "encoder")
        self.left, self.right = int(self.section["left_frames"]), int(self.section["right_frames"])
        self.audio = np.zeros(0, np.float32)  # samples from frame `base` on, not yet consumed by a step graph
        self.base = 0  # the frame where `audio` starts
        self.next = 0  # the first frame not yet out
        self.state: np.ndarray | None = None  # the step graph's state, once past the first frames

    def push(self, samples: np.ndarray) -> np.ndarray:
        self.audio = np.concatenate([self.audio, np.asarray(samples, np.float32).reshape(-1)])
        out = []
        while (self.base * self.hop + self.audio.size) >= (self.next + self.step + self.right) * self.hop:
            out.append(self._frames())
        return np.concatenate(out, axis=-1) if out else np.zeros((self.config["num_codebooks"], 0), np.int64)

    def flush(self) -> np.ndarray:
        """The remaining frames (the input zero-padded to whole frames, as offline)."""
        end_samples = self.base * self.hop + self.audio.size
        end = -(-end_samples // self.hop)
        if self.next >= end:
            return np.zeros((self.config["num_codebooks"], 0), np.int64)
        s = max(0, self.next - self.left)
        window = self._samples(s, end)
        codes = self.whole.run(None, {"audio": window[None, None]})[0][0]
        out = codes[:, self.next - s : end - s]
        self.next = end
        return out

    def _frames(self) -> np.ndarray:
        a, b = self.next, self.next + self.step
        if a < self.left:  # not enough left context yet: the whole-input graph on [0, b + right)
            codes = self.whole.run(None, {"audio": self._samples(0, b + self.right)[None, None]})[0][0][:, a:b]
            if b >= self.left:  # from the next step on, the state holds frames [b - left, b + right)
                self.state = self._samples(b - self.left, b + self.right)[None, None]
                self._drop(b + self.right)
        else:
            chunk = self._samples(a + self.right, b + self.right)[None, None]
            codes, self.state = self.stepper.run(None, {"state": self.state, "chunk": chunk})
            codes = codes[0]
            self._drop(b + self.right)
        self.next = b
        return codes

    def _samples(self, a: int, b: int) -> np.ndarray:
        """Samples of frames [a, b), from the state and the unconsumed audio, zero-padded past the input's end."""
        held = self.audio if self.state is None else np.concatenate([self.state[0, 0], self.audio])
        start = self.base if self.state is None else self.base - self.left - self.right
        x = held[(a - start) * self.hop : (b - start) * self.hop]
        return np.pad(x, (0, (b - a) * self.hop - x.size))

    def _drop(self, frame: int) -> None:
        """Forget the samples before `frame` (the state holds the context the next step needs)."""
        self.audio, self.base = self.audio[(frame - self.base) * self.hop :], frame


class OnnxDecodeStream(_Stream):
    """Codes [q, k] in pieces -> audio [m] of the frames whose look-ahead is in."""

    def __init__(self, directory: str | Path):
        super().__init__(directory, "decoder")
        self.context = int(self.section["context_frames"])
        self.codes: np.ndarray | None = None  # [q, frames from `base` on]
        self.base, self.next = 0, 0
        self.state: np.ndarray | None = None

    def push(self, codes: np.ndarray) -> np.ndarray:
        codes = np.asarray(codes, np.int64)
        self.codes = codes if self.codes is None else np.concatenate([self.codes, codes], axis=-1)
        out = []
        while self.base + self.codes.shape[-1] >= self.next + self.step + self.context:
            out.append(self._frames())
        return np.concatenate(out) if out else np.zeros(0, np.float32)

    def flush(self) -> np.ndarray:
        if self.codes is None:
            raise ValueError("no codes were pushed")
        end = self.base + self.codes.shape[-1]
        out = []
        while self.next < end:  # windows of `step` frames, each with whatever context the end leaves
            a, b = self.next, min(self.next + self.step, end)
            s, e = max(0, a - self.context), min(end, b + self.context)
            audio = self.whole.run(None, {"codes": self._codes(s, e)[None]})[0][0, 0]
            out.append(audio[(a - s) * self.hop : (b - s) * self.hop])
            self.next = b
        return np.concatenate(out) if out else np.zeros(0, np.float32)

    def _frames(self) -> np.ndarray:
        a, b = self.next, self.next + self.step
        if a < self.context:
            audio = self.whole.run(None, {"codes": self._codes(0, b + self.context)[None]})[0][0, 0]
            audio = audio[a * self.hop : b * self.hop]
            if b >= self.context:
                self.state = self._codes(b - self.context, b + self.context)[None]
                self._drop(b + self.context)
        else:
            new = self._codes(a + self.context, b + self.context)[None]
            audio, self.state = self.stepper.run(None, {"state": self.state, "codes": new})
            audio = audio[0, 0]
            self._drop(b + self.context)
        self.next = b
        return audio

    def _codes(self, a: int, b: int) -> np.ndarray:
        assert self.codes is not None
        held = self.codes if self.state is None else np.concatenate([self.state[0], self.codes], axis=-1)
        start = self.base if self.state is None else self.base - 2 * self.context
        return held[:, a - start : b - start]

    def _drop(self, frame: int) -> None:
        assert self.codes is not None
        self.codes, self.base = self.codes[:, frame - self.base :], frame
