"""HuBERT pre-training: masked prediction of frame targets (Hsu et al. 2021).

Spans of `mask_length` frames starting at about `mask_prob` x T / mask_length random frames are replaced by a learned
embedding after the conv extractor; the transformer's last layer predicts each masked frame's target (cross-entropy
over a linear head; unmasked frames weigh `unmasked_weight`, 0 in HuBERT: its alpha = 1). Iteration 1 targets are
k-means clusters of MFCCs, iteration 2 the units of an iteration-1 model (`targets.kind: units`); or the units of
another model computed once per file (`targets.kind: unit_codes`, e.g. Whisper's: `{kind: unit_codes, model:
speechtok-whisper-units, codes: DATASET}`, DATASET from `speechtok pretokenize`; a crop's Whisper units depend on
its whole file, and one 30 s Whisper pass per crop would cost far more than the step). With
`perturb_prob` > 0 the student hears some crops with their pitch and formants shifted while the targets come from
the clean crop (ContentVec's speaker perturbation), so that its features keep less of the speaker.

`export()` gives a hubert-units tokenizer of `export_layer` whose k-means is a placeholder (one zero centroid):
fit it on the model's features with `speechtok kmeans` before using its units.
"""

from __future__ import annotations

import copy
from dataclasses import dataclass, field

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from ...codecs.hubert import HubertConfig, HubertModel
from ...config import from_dict
from ...models import HubertUnitsConfig, build_hubert_units
from ...quantizers.kmeans import KMeansConfig, load_centroids
from ...tokenizer import Tokenizer
from ..augment import check_perturbation, perturb_speakers
from ..data import DataConfig
from ..targets import MFCC, GridUnits, KMeansTargets, UnitTargets
from ..unit_crops import UnitCropDataset, unit_crop_dataset
from .base import Batch, Task, Update


@dataclass(frozen=True)
class HubertTaskConfig:
    targets: dict = field(default_factory=lambda: {"kind": "mfcc", "kmeans": "runs/hubert/mfcc_km100.safetensors"})
    mask_prob: float = 0.8  # span starts per frame x mask_length (HuBERT's 0.8 masks about half the frames)
    mask_length: int = 10
    unmasked_weight: float = 0.0  # loss weight of unmasked frames (fairseq's pred_nomask_weight; HuBERT uses 0)
    export_layer: int = 3  # the layer whose features the exported tokenizer gives
    perturb_prob: float = 0.0  # share of crops the student hears with another voice (targets: the clean crop)
    perturb_max_ratio: float = 1.2  # pitch and formants scaled by one of 8 ratios log-spaced in [1 / r, r]
    seed: int = 0  # of the masks: step k draws from seed + k (no global RNG)
    name: str = "speechtok-hubert"


def span_mask(batch: int, frames: int, prob: float, length: int, gen: torch.Generator) -> Tensor:
    """[B, T] True where masked: round(prob x T / length) spans of `length` frames per item (at least one), their
    starts drawn without replacement; spans may overlap."""
    length = min(length, frames)
    starts_per_item = max(1, round(prob * frames / length))
    mask = torch.zeros(batch, frames, dtype=torch.bool)
    for b in range(batch):
        n_starts = frames - length + 1
        starts = torch.randperm(n_starts, generator=gen)[: min(starts_per_item, n_starts)]
        idx = (starts[:, None] + torch.arange(length)[None]).flatten()
        mask[b, idx] = True
    return mask


def build_targets(spec: dict) -> nn.Module:
    """The targets module of `task_config.targets`; for `unit_codes`, a GridUnits with the units model beside it
    (`.units_model`: the dataset's identity is checked against it, and validation encodes with it)."""
    kind = spec.get("kind")
    if kind == "mfcc":
        centroids, meta = load_centroids(spec["kmeans"])
        mfcc = MFCC()
        if centroids.shape[1] != mfcc.dim:
            raise ValueError(f"{spec['kmeans']}: centroids of dim {centroids.shape[1]}, MFCCs have {mfcc.dim}")
        return KMeansTargets(mfcc, centroids)
    if kind == "units":
        from ...models.loading import load_checkpoint

        return UnitTargets(load_checkpoint(spec["model"]))
    if kind == "unit_codes":
        from ...registry import load

        if not spec.get("codes"):
            raise ValueError("targets.kind unit_codes needs codes: a pre-tokenized dataset of its model")
        model = load(spec["model"]).eval().requires_grad_(False)
        grid = GridUnits(model.codebook_size, model.hop_length, model.encoder.frame_offset)
        grid.units_model.append(model)
        return grid
    raise ValueError("targets.kind must be 'mfcc' (with kmeans: FILE), 'units' (with model: DIR) or 'unit_codes' "
                     f"(with model: NAME or DIR, codes: DATASET), got {kind!r}")


class HubertTask(Task):
    name = "hubert"

    export_group = "hubert"

    def __init__(self, model: dict, task_config: dict):
        self.cfg = from_dict(HubertTaskConfig, task_config)
        self.model_cfg = from_dict(HubertConfig, model)
        if not 0 <= self.cfg.export_layer <= self.model_cfg.num_hidden_layers:
            raise ValueError(f"export_layer {self.cfg.export_layer} is out of range "
                             f"0..{self.model_cfg.num_hidden_layers}")
        check_perturbation(self.cfg.perturb_prob, self.cfg.perturb_max_ratio)
        self.targets = build_targets(dict(self.cfg.targets))
        self.net = nn.ModuleDict({
            "hubert": HubertModel(self.model_cfg),
            "head": nn.Linear(self.model_cfg.hidden_size, self.targets.num_classes),
        })

    def modules(self) -> dict[str, nn.Module]:
        return {"hubert": self.net}

    def frozen(self) -> dict[str, nn.Module]:
        return {"targets": self.targets}

    def dataset(self, data: DataConfig, seed: int) -> UnitCropDataset | None:
        if not isinstance(self.targets, GridUnits):
            return None
        return unit_crop_dataset(self.cfg.targets["codes"], self.targets.units_model[0], data, seed)

    def frame_targets(self, batch: Batch) -> tuple[Tensor, Tensor]:
        """(wav [B, 1, T], targets [B, T'] on HuBERT's grid) of a batch: audio, or (audio, its file's units)."""
        with torch.no_grad():
            if isinstance(batch, Tensor):
                return batch, self.targets(batch)
            wav, units = batch
            return wav, self.targets(units, self._frames(wav.shape[-1]))

    def _frames(self, num_samples: int) -> int:
        return int(self.net["hubert"].num_frames(torch.tensor(num_samples)))

    def step(self, batch: Batch, step: int, update: Update) -> dict[str, float]:
        batch, target = self.frame_targets(batch)  # [B, 1, T], [B, T']
        b, frames = target.shape
        gen = torch.Generator().manual_seed(self.cfg.seed + step)
        mask = span_mask(b, frames, self.cfg.mask_prob, self.cfg.mask_length, gen).to(batch.device)
        heard = perturb_speakers(batch, self.cfg.perturb_prob, self.cfg.perturb_max_ratio, gen)
        logits = self.net["head"](self.net["hubert"](heard[:, 0], time_mask=mask)[-1])  # [B, T', K]
        masked_ce = F.cross_entropy(logits[mask], target[mask])
        logs = {}
        loss = masked_ce
        if self.cfg.unmasked_weight > 0 and (~mask).any():
            unmasked_ce = F.cross_entropy(logits[~mask], target[~mask])
            loss = masked_ce + self.cfg.unmasked_weight * unmasked_ce
            logs["hubert/unmasked_ce"] = unmasked_ce.item()
        update("hubert", loss)
        acc = (logits[mask].argmax(-1) == target[mask]).float().mean()
        return {"hubert/masked_ce": masked_ce.item(), "hubert/masked_acc": acc.item(),
                "hubert/mask_fraction": mask.float().mean().item(), **logs}

    @torch.no_grad()
    def validate(self, subset, cfg, device):
        """Masked prediction on the dev subset (HuBERT decodes no audio): cross-entropy and accuracy on masked
        frames, with the masks of seed 0 so that successive validations compare."""
        from ..validation import Validation

        self.net.eval()
        gen = torch.Generator().manual_seed(self.cfg.seed)
        ce, acc, n = 0.0, 0.0, 0
        units_model = self.targets.units_model[0].to(device) if isinstance(self.targets, GridUnits) else None
        for _, wav in subset:
            batch = wav.to(device)[None, None]
            if batch.shape[-1] < self.model_cfg.window:
                continue
            if units_model is not None:  # the item is its own file: its units, moved to HuBERT's grid
                target = self.targets(units_model.encode(batch, 16000).codes[:, 0], self._frames(batch.shape[-1]))
            else:
                target = self.targets(batch)
            mask = span_mask(1, target.shape[1], self.cfg.mask_prob, self.cfg.mask_length, gen).to(device)
            logits = self.net["head"](self.net["hubert"](batch[:, 0], time_mask=mask)[-1][mask])
            ce += float(F.cross_entropy(logits, target[mask], reduction="sum"))
            acc += float((logits.argmax(-1) == target[mask]).sum())
            n += int(mask.sum())
        return Validation({"val/masked_ce": ce / max(n, 1), "val/masked_acc": acc / max(n, 1)}, {}, 16000)

    def init_from(self, checkpoint_dir) -> None:
        """Start from an exported HuBERT (iteration 2 continuing iteration 1 on a small budget): the encoder's
        weights only; the prediction head stays new, since the targets are other classes."""
        from ...models.loading import load_checkpoint

        tok = load_checkpoint(checkpoint_dir)
        model = getattr(getattr(tok, "encoder", None), "model", None)
        if not isinstance(model, HubertModel) or model.cfg != self.model_cfg:
            raise ValueError(f"{checkpoint_dir}: not a HuBERT of this recipe's model config")
        self.net["hubert"].load_state_dict(model.state_dict())

    def export(self) -> Tokenizer:
        cfg = HubertUnitsConfig(hubert=self.model_cfg, layer=self.cfg.export_layer,
                                kmeans=KMeansConfig(dim=self.model_cfg.hidden_size, codebook_size=1))
        tok = build_hubert_units(cfg, name=self.cfg.name)
        tok.encoder.model.load_state_dict(copy.deepcopy(self.net["hubert"]).cpu().state_dict())
        return tok.eval()
