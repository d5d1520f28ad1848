"""The flow task: a flow-matching decoder trained on the codes of a frozen tokenizer (any family), so that its
decoder can be swapped. Rectified flow: x_t = (1 - t) x0 + t x1 with x0 ~ N(0, I), x1 the spectrum of the audio
(`FlowDecoder.spectrum`), t ~ U(0, 1); the network predicts x1 from x_t (MSE), which fixes the velocity
(x1_hat - x_t) / (1 - t) that the sampler integrates (see vocoders/flow.py for why x1 and not the velocity)."""

from __future__ import annotations

from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from ...config import from_dict, to_dict
from ...models import FlowDecodedConfig, build_flow_decoded
from ...registry import load
from ...tokenizer import Tokenizer
from ...vocoders.flow import FlowConfig, FlowDecoder
from .base import Task, Update


@dataclass(frozen=True)
class FlowTaskConfig:
    tokenizer: str = "speechtok-codec-16k"  # the frozen tokenizer: a bundled name, a checkpoint directory or a plugin
    name: str = "speechtok-codec-16k-flow"
    random_n_q: bool = True  # condition each batch on a random 1..Q codebooks: one decoder serves every n_q


class FlowTask(Task):
    name = "flow"

    export_group = "decoder"

    def __init__(self, model: dict, task_config: dict):
        self.cfg = from_dict(FlowTaskConfig, task_config)
        self.base = load(self.cfg.tokenizer).eval().requires_grad_(False)  # frozen: its codes are the contract
        self.model_cfg = FlowDecodedConfig(base_family=self.base.family, base=to_dict(self.base.config),
                                           decoder=from_dict(FlowConfig, model))
        build_flow_decoded(self.model_cfg)  # checks that the decoder fits the tokenizer (hop) before training
        self.decoder = FlowDecoder(self.model_cfg.decoder)

    def modules(self) -> dict[str, nn.Module]:
        return {"decoder": self.decoder}

    def frozen(self) -> dict[str, nn.Module]:
        return {"base": self.base}

    @torch.no_grad()
    def condition(self, batch: Tensor) -> Tensor:
        """batch [B, 1, T] -> z_q [B, D, T / hop]: the frozen tokenizer's inference path, codes and back."""
        q = self.base.num_codebooks
        device = self.rng.device if self.rng is not None else "cpu"
        n_q = int(torch.randint(1, q + 1, (), generator=self.rng, device=device)) if self.cfg.random_n_q else q
        return self.base.quantizer.decode(self.base.quantizer.encode(self.base.encoder(batch), n_q))

    def step(self, batch: Tensor, step: int, update: Update) -> dict[str, float]:
        batch = batch[..., : batch.shape[-1] // self.decoder.hop_length * self.decoder.hop_length]  # whole frames
        z_q = self.condition(batch)
        x1 = self.decoder.spectrum(batch)  # [B, 2F, T]
        x0 = torch.randn(x1.shape, generator=self.rng, device=x1.device, dtype=x1.dtype)
        t = torch.rand(x1.shape[0], generator=self.rng, device=x1.device)
        xt = torch.lerp(x0, x1, t[:, None, None])
        loss = F.mse_loss(self.decoder.denoise(xt, t, z_q).float(), x1.float())
        update("decoder", loss)
        return {"flow/mse": loss.item()}

    def export(self) -> Tokenizer:
        tok = build_flow_decoded(self.model_cfg, name=self.cfg.name)
        tok.encoder.load_state_dict(self.base.encoder.state_dict())
        tok.quantizer.load_state_dict(self.base.quantizer.state_dict())
        tok.decoder.load_state_dict(self.decoder.state_dict())
        return tok.eval()
