"""Stable Codec (Stability AI; Parker et al. 2024, "Scaling Transformers for Low-bitrate High-Quality Speech
Coding") as a speechtok tokenizer: `speechtok.load("stable-codec:DIR[?posthoc=2x15625_700bps]")`, or the zoo's
`stable-codec` / `stable-codec-400bps`.

A transformer audio autoencoder (TAAE): 16 kHz audio cut into patches (320 samples), strided convolutions and
sliding-window transformer blocks down to a 6-d latent at 25 Hz, a mirrored decoder. The latent is tanh-bounded
and quantised by FSQ: the training bottleneck (one codebook of 17^6 = 24,137,569 codes, `posthoc=none`) or, as the
publisher recommends for language models, a post-hoc residual FSQ of presets `1x46656_400bps`,
`2x15625_700bps` (default) and `4x729_1000bps`: one codebook per stage, so `?q=N` keeps the first N stages and
decoding fewer of them is a coarser residual, as with RVQ.

DIR is the publisher's folder (stabilityai/stable-codec-speech-16k: `model_config.json`, stable-audio-tools'
autoencoder config, and `model.ckpt`, `{"state_dict": ...}` read with `weights_only=True`, or `model.safetensors`).
The modules are written here from stable-audio-tools 0.0.19's TAAE and stable-codec 0.1.2's residual FSQ (whose
packages pin torch 2.4 and import the whole diffusion stack); parity with them: tests/test_stable_codec.py.

Attention is windowed as the config says (`sliding_window` [left, right] frames, FlashAttention's `window_size`),
on any device: the publisher's code windows only through FlashAttention on a GPU and attends to every frame
elsewhere, which its README warns degrades the output. `window=full` reproduces that fallback.

Each item is first brought to -20 LUFS, as the publisher's `encode` of a file does (stable-audio-tools'
VolumeNorm: BS.1770 loudness, `audio.loudness`; near-silence left alone; scaled to a 0.95 peak where the gain would
clip); `loudness=DB` sets another target, `loudness=off` encodes the audio as given (the publisher's `encode` of a
tensor). The loudness is BS.1770's (pyloudnorm's figure); torchaudio's, which the publisher uses, clips the
K-weighted signal at full scale, so the two differ for inputs near 0 dBFS.
"""

from __future__ import annotations

import math
from pathlib import Path

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from .. import audio
from ..errors import CheckpointError
from ..fileio import checkpoint_identity
from ..layers.seanet import fold_weight_norm_keys
from ..tokenizer import Tokenizer
from .base import (
    PeerConfig,
    PeerParts,
    canonical,
    load_weights,
    parse_spec,
    peer_tokenizer,
    read_json,
    read_state,
    select_q,
)

CONFIG = "model_config.json"
WEIGHTS = ("model.safetensors", "model.ckpt")  # stable-audio-tools' order of preference
# stable-codec 0.1.2's presets: (levels, scale) per stage; the first stage quantises the latent, the rest residuals
PRESETS: dict[str, tuple[tuple[tuple[int, ...], float], ...]] = {
    "1x46656_400bps": (((6,) * 6, 1.0),),
    "2x15625_700bps": (((5,) * 6, 1.0), ((5,) * 6, 0.25)),
    "4x729_1000bps": (((3,) * 6, 1.0), ((3,) * 6, 0.5), ((3,) * 6, 0.25), ((3,) * 6, 0.125)),
}
DEFAULT_PRESET = "2x15625_700bps"
TARGET_LUFS = -20.0  # StableCodec.encode's VolumeNorm([-20, 0]) (the model trained on -20 +- 5 LUFS)
SILENCE_ENERGY = 1e-6  # VolumeNorm leaves items with a mean square below it alone
HEAD_DIM = 128  # TAAEBlock's dim_heads
NORM_EPS, QK_NORM_EPS = 1e-2, 1e-6
ATTENTION_CHUNK = 512  # queries per windowed-attention call: the mask stays chunk x (chunk + window)


def load(spec: str | None, device=None) -> Tokenizer:
    path, options = parse_spec(spec, "stable-codec")
    folder = path if path.is_dir() else path.parent
    config_file = folder / CONFIG
    weights = next((folder / w for w in WEIGHTS if (folder / w).is_file()), None)
    if weights is None or not config_file.is_file():
        raise CheckpointError(f"{folder}: expected {CONFIG} and {' or '.join(WEIGHTS)} "
                              "(stabilityai/stable-codec-speech-16k's files)")
    arch = arch_from_config(read_json(config_file), config_file)
    window = options.get("window")
    if window is not None:
        arch["sliding_window"] = _window_option(window, spec)
    stages = _stages(options.get("posthoc", DEFAULT_PRESET), arch, spec)
    model = StableCodecModel(arch, stages, posthoc=options.get("posthoc") != "none",
                             loudness=_loudness_option(options.get("loudness", str(TARGET_LUFS)), spec))
    load_weights(model, _model_state(read_state(weights), weights), weights)
    q = select_q(options, spec, len(stages))
    return tokenizer(model, q, checkpoint_identity([config_file, weights]), device)


def tokenizer(model: StableCodecModel, q: int, checkpoint: dict, device=None) -> Tokenizer:
    sizes = [math.prod(levels) for levels, _ in model.stages[:q]]
    cfg = PeerConfig("stable-codec", "stable-audio-tools", model.sample_rate, model.hop_length, q, max(sizes),
                     canonical({**model.arch, "stages": model.stages[:q], "loudness": model.loudness}))
    parts = PeerParts(encode=lambda m, wav: m.encode(wav), quantize=lambda m, z, n_q: m.quantize(z, n_q),
                      dequantize=lambda m, codes: m.dequantize(codes), decode=lambda m, z: m.decode(z))
    window = model.arch["sliding_window"]
    level = "as given" if model.loudness is None else f"each item brought to {model.loudness:g} LUFS first"
    notes = ("stable-audio-tools' TAAE and stable-codec's FSQ, written in torch here; "
             f"FSQ stages {[f'{len(lv)}x{lv[0]} levels, scale {s:g}' for lv, s in model.stages[:q]]}; attention "
             f"window {'every frame' if window is None else f'{window[0]} left, {window[1]} right'}; input {level}")
    tok = peer_tokenizer(model, parts, cfg, dim=model.arch["latent_dim"], checkpoint=checkpoint,
                         package="speechtok", device=device, pad_to_hop=True, notes=notes,
                         codebook_sizes=sizes if len(set(sizes)) > 1 else None)
    tok.name = f"stable-codec-{model.frame_rate:g}hz-q{q}"
    return tok


def arch_from_config(config: dict, path: Path) -> dict:
    """stable-audio-tools' autoencoder config (TAAE encoder and decoder, patched pretransform, dithered FSQ) ->
    the few numbers that build the model."""
    try:
        model = config["model"]
        enc, dec = model["encoder"], model["decoder"]
        bottleneck, pretransform = model.get("bottleneck") or {}, model.get("pretransform")
        if enc["type"] != "taae" or dec["type"] != "taae":
            raise CheckpointError(f"{path}: encoder {enc['type']!r}, decoder {dec['type']!r}; Stable Codec's are "
                                  "'taae'")
        if bottleneck and bottleneck.get("type") != "dithered_fsq":
            raise CheckpointError(f"{path}: bottleneck {bottleneck.get('type')!r}; expected dithered_fsq")
        if pretransform is not None and (pretransform.get("type") != "patched"
                                         or pretransform["config"].get("oversampling", 1) != 1):
            raise CheckpointError(f"{path}: pretransform {pretransform}; only 'patched' without oversampling is "
                                  "supported")
        e = enc["config"]
        if e.get("conformer") or dec["config"].get("conformer"):
            raise CheckpointError(f"{path}: TAAE with conformer=true is not supported")
        fsq = bottleneck.get("config", {})
        if fsq.get("num_codebooks", 1) != 1:
            raise CheckpointError(f"{path}: an FSQ bottleneck of {fsq['num_codebooks']} codebooks is not supported")
        dim, levels = fsq.get("dim", model["latent_dim"]), fsq.get("levels", 17)
        return {
            "sample_rate": int(config["sample_rate"]),
            "patch_size": int(pretransform["config"]["patch_size"]) if pretransform else 1,
            "in_channels": int(e.get("in_channels", 2)),  # the TAAE's own defaults where the config is silent
            "out_channels": int(dec["config"].get("out_channels", 2)),
            "channels": int(e.get("channels", 128)),
            "c_mults": list(e.get("c_mults", [1, 2, 4, 8])),
            "strides": list(e.get("strides", [2, 4, 8, 8])),
            "transformer_depths": list(e.get("transformer_depths", [3, 3, 3, 3])),
            "latent_dim": int(e.get("latent_dim", model["latent_dim"])),
            "use_snake": bool(e.get("use_snake", False)),
            "layer_scale": bool(e.get("layer_scale", True)),
            "use_dilated_conv": bool(e.get("use_dilated_conv", False)),
            "sliding_window": list(e.get("sliding_window", [63, 64])),
            "soft_clip": bool(dec.get("soft_clip", False)),
            "fsq_levels": [int(levels)] * int(dim) if isinstance(levels, int) else [int(v) for v in levels],
        }
    except (KeyError, TypeError, ValueError) as err:
        raise CheckpointError(f"{path}: not a stable-audio-tools TAAE config ({type(err).__name__}: {err})") from None


def _loudness_option(text: str, spec: str | None) -> float | None:
    if text == "off":
        return None
    try:
        return float(text)
    except ValueError:
        raise CheckpointError(f"{spec}: loudness={text!r}; give a target in LUFS (e.g. -20) or 'off'") from None


def _window_option(text: str, spec: str | None) -> list[int] | None:
    if text == "full":
        return None
    try:
        left, right = (int(v) for v in text.split(","))
    except ValueError:
        raise CheckpointError(f"{spec}: window={text!r}; give LEFT,RIGHT frames (e.g. 63,64) or 'full'") from None
    return [left, right]


def _stages(name: str, arch: dict, spec: str | None) -> list[tuple[tuple[int, ...], float]]:
    if name == "none":  # the training bottleneck: one FSQ over the latent
        return [(tuple(arch["fsq_levels"]), 1.0)]
    if name not in PRESETS:
        raise CheckpointError(f"{spec}: posthoc={name!r}; choose one of {', '.join(PRESETS)} or none")
    stages = list(PRESETS[name])
    if any(len(levels) != arch["latent_dim"] for levels, _ in stages):
        raise CheckpointError(f"{spec}: posthoc={name} quantises 6 dimensions; this model's latent has "
                              f"{arch['latent_dim']}")
    return stages


def _model_state(ckpt: object, path: Path) -> dict[str, Tensor]:
    """The autoencoder's encoder and decoder weights (weight norm folded); a CTC head or the rope's stored
    frequencies are not needed."""
    state = ckpt.get("state_dict", ckpt) if isinstance(ckpt, dict) else None
    if not isinstance(state, dict) or not any(k.startswith("encoder.") for k in state):
        raise CheckpointError(f"{path}: not a Stable Codec checkpoint (a state dict with encoder.* and decoder.*)")
    keep = {k: v for k, v in state.items()
            if k.startswith(("encoder.", "decoder.")) and not k.endswith(".rope.inv_freq")}
    return fold_weight_norm_keys(keep)


# -- the model --------------------------------------------------------------------------------------------------


class StableCodecModel(nn.Module):
    """Patching, the TAAE encoder and decoder (the checkpoint's `encoder.*` / `decoder.*`) and the FSQ stages."""

    def __init__(self, arch: dict, stages: list[tuple[tuple[int, ...], float]], posthoc: bool = True,
                 loudness: float | None = None) -> None:
        super().__init__()
        self.arch, self.stages = arch, [(tuple(levels), float(scale)) for levels, scale in stages]
        self.posthoc = posthoc  # False: the training bottleneck
        self.loudness = loudness  # LUFS each item is brought to before encoding; None: as given
        self.sample_rate, self.patch_size = arch["sample_rate"], arch["patch_size"]
        self.hop_length = self.patch_size * math.prod(arch["strides"])
        self.frame_rate = self.sample_rate / self.hop_length
        window = arch["sliding_window"]
        widths = [arch["channels"] * m for m in arch["c_mults"]]
        widths = [widths[0], *widths]
        common = dict(snake=arch["use_snake"], layer_scale=arch["layer_scale"], dilated=arch["use_dilated_conv"],
                      window=window)
        self.encoder = _Layers(
            nn.Conv1d(arch["in_channels"], widths[0], 7, padding=3),
            *(TAAEBlock(widths[i], widths[i + 1], s, d, "encoder", **common)
              for i, (s, d) in enumerate(zip(arch["strides"], arch["transformer_depths"]))),
            _activation(arch["use_snake"], widths[-1]),
            nn.Conv1d(widths[-1], arch["latent_dim"], 3, padding=1))
        depth = len(arch["strides"])
        self.decoder = _Layers(
            nn.Conv1d(arch["latent_dim"], widths[-1], 3, padding=1),
            *(TAAEBlock(widths[i], widths[i - 1], arch["strides"][i - 1], arch["transformer_depths"][i - 1],
                        "decoder", **common) for i in range(depth, 0, -1)),
            _activation(arch["use_snake"], widths[0]),
            nn.Conv1d(widths[0], arch["out_channels"], 7, padding=3, bias=False))
        self.quantizers = [FSQ(levels, scale) for levels, scale in self.stages]

    def encode(self, wav: Tensor) -> Tensor:
        """[B, C, T] (T a multiple of the hop) -> pre-bottleneck latents [B, latent, T / hop]"""
        if self.loudness is not None:
            wav = torch.stack([self.normalize(item) for item in wav])
        b, c, t = wav.shape
        patches = wav.reshape(b, c, t // self.patch_size, self.patch_size).permute(0, 1, 3, 2)
        return self.encoder(patches.reshape(b, c * self.patch_size, -1))

    def normalize(self, item: Tensor) -> Tensor:
        """[C, T] at `self.loudness` LUFS, as stable-audio-tools' VolumeNorm does it."""
        if item.pow(2).mean() < SILENCE_ENERGY:
            return item
        lufs = audio.loudness(item, self.sample_rate)
        if not math.isfinite(lufs):  # shorter than one 400 ms block, or gated out
            return item
        out = item * 10 ** ((self.loudness - lufs) / 20)
        peak = out.abs().max()
        return out / peak * 0.95 if peak > 1.0 else out

    def quantize(self, z: Tensor, n_q: int) -> Tensor:
        """The training bottleneck on tanh(z) as the model computes it, or stable-codec's residual FSQ: tanh in
        float64, then stage after stage on the residual."""
        if not self.posthoc:
            return self.quantizers[0].quantize(torch.tanh(z).transpose(1, 2), clip=False)[1][:, None]
        codes, residual = [], torch.tanh(z.double()).transpose(1, 2)
        for fsq in self.quantizers[:n_q]:
            values, ids = fsq.quantize(residual, clip=True)
            residual = residual - values
            codes.append(ids)
        return torch.stack(codes, dim=1)

    def dequantize(self, codes: Tensor) -> Tensor:
        return sum(fsq.values(codes[:, i]) for i, fsq in enumerate(self.quantizers[:codes.shape[1]])).transpose(1, 2)

    def decode(self, z: Tensor) -> Tensor:
        y = self.decoder(z.float())
        b, ch, n = y.shape
        c = ch // self.patch_size
        wav = y.reshape(b, c, self.patch_size, n).permute(0, 1, 3, 2).reshape(b, c, n * self.patch_size)
        return torch.tanh(wav) if self.arch["soft_clip"] else wav


class _Layers(nn.Module):
    """A module chain under `layers` (TAAEEncoder / TAAEDecoder's names)."""

    def __init__(self, *layers: nn.Module) -> None:
        super().__init__()
        self.layers = nn.Sequential(*layers)

    def forward(self, x: Tensor) -> Tensor:
        return self.layers(x)


class FSQ:
    """stable-audio-tools' dithered FSQ at inference: `levels` values from -scale to scale per dimension (no
    centring: an even count has no zero), codes mixed-radix with the first dimension least significant."""

    def __init__(self, levels: tuple[int, ...], scale: float) -> None:
        self.scale = scale
        self.levels = torch.tensor(levels, dtype=torch.int64)
        self.basis = torch.cumprod(torch.tensor((1, *levels[:-1])), dim=0)
        self.step = scale * 2 / (self.levels - 1)  # float32, as the package's buffer

    def quantize(self, z: Tensor, clip: bool) -> tuple[Tensor, Tensor]:
        """z [B, T, D] (tanh-bounded) -> (values [B, T, D] in z's dtype, codes [B, T]); `clip`: the residual
        stages' leaky clip to +-scale (the package's skip_tanh path)."""
        if clip:
            z = ((1 - 1e-3) * torch.clamp(z / self.scale, -1, 1) + 1e-3 * (z / self.scale)) * self.scale
        step = self.step.to(z.device)
        values = torch.round((z + self.scale) / step) * step - self.scale
        level = torch.round((values + self.scale) / step).long()  # the package rounds twice: value, then index
        return values, (level * self.basis.to(z.device)).sum(-1)

    def values(self, ids: Tensor) -> Tensor:
        """[B, T] -> [B, T, D] float32"""
        level = (ids[..., None] // self.basis.to(ids.device)) % self.levels.to(ids.device)
        return level * self.step.to(ids.device) - self.scale


def _activation(snake: bool, channels: int) -> nn.Module:
    return SnakeBeta(channels) if snake else nn.Identity()


class SnakeBeta(nn.Module):
    """x + sin^2(a x) / b with log-scale a and b (stable-audio-tools' SnakeBeta)."""

    def __init__(self, channels: int) -> None:
        super().__init__()
        self.alpha, self.beta = nn.Parameter(torch.zeros(channels)), nn.Parameter(torch.zeros(channels))

    def forward(self, x: Tensor) -> Tensor:
        a, b = self.alpha.exp()[:, None], self.beta.exp()[:, None]
        return x + torch.sin(x * a).pow(2) / (b + 1e-9)


class ResidualUnit(nn.Module):
    def __init__(self, channels: int, dilation: int, snake: bool) -> None:
        super().__init__()
        act = (lambda: SnakeBeta(channels)) if snake else nn.ELU
        self.layers = nn.Sequential(act(), nn.Conv1d(channels, channels, 7, dilation=dilation,
                                                     padding=3 * dilation), act(), nn.Conv1d(channels, channels, 1))

    def forward(self, x: Tensor) -> Tensor:
        return x + self.layers(x)


class TAAEBlock(nn.Module):
    """Encoder: [residual units], activation, strided conv (kernel 2s), transformer blocks at the new width.
    Decoder: transformer blocks, activation, transposed conv, [residual units]. Indices as in the checkpoint."""

    def __init__(self, cin: int, cout: int, stride: int, depth: int, kind: str, snake: bool, layer_scale: bool,
                 dilated: bool, window: list[int] | None) -> None:
        super().__init__()
        width = cout if kind == "encoder" else cin
        transformers = nn.Sequential(_Transpose(), *(TransformerBlock(width, layer_scale, window)
                                                     for _ in range(depth)), _Transpose())
        resample = stride > 1 or cin != cout
        pad = math.ceil(stride / 2)
        units = [ResidualUnit(cin if kind == "encoder" else cout, d, snake) for d in (1, 3, 9)] if dilated else []
        if kind == "encoder":
            conv = nn.Conv1d(cin, cout, 2 * stride, stride=stride, padding=pad) if resample else nn.Identity()
            layers = [*units, _activation(snake, cin), conv, transformers]
        else:
            conv = nn.ConvTranspose1d(cin, cout, 2 * stride, stride=stride, padding=pad) if resample else nn.Identity()
            layers = [transformers, _activation(snake, cin), conv, *units]
        self.layers = nn.Sequential(*layers)

    def forward(self, x: Tensor) -> Tensor:
        return self.layers(x)


class _Transpose(nn.Module):
    def forward(self, x: Tensor) -> Tensor:
        return x.transpose(-1, -2)


class _LayerNorm(nn.Module):
    """Bias-free LayerNorm: the checkpoint stores the zero bias as a buffer."""

    def __init__(self, dim: int) -> None:
        super().__init__()
        self.gamma = nn.Parameter(torch.ones(dim))
        self.register_buffer("beta", torch.zeros(dim))

    def forward(self, x: Tensor) -> Tensor:
        return F.layer_norm(x, x.shape[-1:], self.gamma, self.beta, eps=NORM_EPS)


class _LayerScale(nn.Module):
    def __init__(self, dim: int) -> None:
        super().__init__()
        self.scale = nn.Parameter(torch.ones(dim))

    def forward(self, x: Tensor) -> Tensor:
        return x * self.scale


class _GLU(nn.Module):
    def __init__(self, dim: int, inner: int) -> None:
        super().__init__()
        self.proj = nn.Linear(dim, 2 * inner)

    def forward(self, x: Tensor) -> Tensor:
        x, gate = self.proj(x).chunk(2, dim=-1)
        return x * F.silu(gate)


class _FeedForward(nn.Module):
    def __init__(self, dim: int) -> None:
        super().__init__()
        self.ff = nn.Sequential(_GLU(dim, 4 * dim), nn.Identity(), nn.Linear(4 * dim, dim), nn.Identity())

    def forward(self, x: Tensor) -> Tensor:
        return self.ff(x)


class Attention(nn.Module):
    """Fused qkv, LayerNorm on each head's q and k, rotary embedding on the first half of each head, windowed
    attention."""

    def __init__(self, dim: int, window: list[int] | None) -> None:
        super().__init__()
        self.heads, self.head_dim = dim // min(HEAD_DIM, dim), min(HEAD_DIM, dim)
        self.window = window
        self.to_qkv, self.to_out = nn.Linear(dim, 3 * dim, bias=False), nn.Linear(dim, dim, bias=False)
        self.q_norm = nn.LayerNorm(self.head_dim, eps=QK_NORM_EPS)
        self.k_norm = nn.LayerNorm(self.head_dim, eps=QK_NORM_EPS)

    def forward(self, x: Tensor, freqs: Tensor) -> Tensor:
        b, n, _ = x.shape
        q, k, v = (t.reshape(b, n, self.heads, self.head_dim).transpose(1, 2) for t in self.to_qkv(x).chunk(3, -1))
        q, k = _rotate(self.q_norm(q), freqs), _rotate(self.k_norm(k), freqs)
        out = windowed_attention(q, k, v, self.window)
        return self.to_out(out.transpose(1, 2).reshape(b, n, -1))


def _rotate(t: Tensor, freqs: Tensor) -> Tensor:
    """Rotary embedding on the first freqs.shape[-1] features (GPT-J's partial rotary, halves rotated)."""
    rot = freqs.shape[-1]
    head, rest = t[..., :rot].float(), t[..., rot:]
    x1, x2 = head.chunk(2, dim=-1)
    turned = head * freqs.cos() + torch.cat((-x2, x1), dim=-1) * freqs.sin()
    return torch.cat((turned.to(t.dtype), rest), dim=-1)


def windowed_attention(q: Tensor, k: Tensor, v: Tensor, window: list[int] | None) -> Tensor:
    """Each query i attends to keys i - left .. i + right (FlashAttention's window_size); None or a window wider
    than the sequence: every key. Queries go in chunks with their halo of keys, so no N x N mask is built."""
    n = q.shape[-2]
    if window is None or (window[0] >= n - 1 and window[1] >= n - 1):
        return F.scaled_dot_product_attention(q, k, v)
    left, right = window
    out = []
    for start in range(0, n, ATTENTION_CHUNK):
        stop = min(n, start + ATTENTION_CHUNK)
        k0, k1 = max(0, start - left), min(n, stop + right)
        offset = torch.arange(k0, k1, device=q.device)[None] - torch.arange(start, stop, device=q.device)[:, None]
        mask = (offset >= -left) & (offset <= right)
        out.append(F.scaled_dot_product_attention(q[..., start:stop, :], k[..., k0:k1, :], v[..., k0:k1, :],
                                                  attn_mask=mask))
    return torch.cat(out, dim=-2)


class _Rope(nn.Module):
    def __init__(self, dim: int) -> None:
        super().__init__()
        self.register_buffer("inv_freq", 1.0 / (10000 ** (torch.arange(0, dim, 2).float() / dim)), persistent=False)

    def forward(self, n: int) -> Tensor:
        freqs = torch.arange(n, device=self.inv_freq.device, dtype=torch.float32)[:, None] * self.inv_freq
        return torch.cat((freqs, freqs), dim=-1)


class TransformerBlock(nn.Module):
    """Pre-norm attention and SwiGLU feed-forward, each scaled per channel (LayerScale) into the residual."""

    def __init__(self, dim: int, layer_scale: bool, window: list[int] | None) -> None:
        super().__init__()
        self.pre_norm, self.ff_norm = _LayerNorm(dim), _LayerNorm(dim)
        self.self_attn, self.ff = Attention(dim, window), _FeedForward(dim)
        self.self_attn_scale = _LayerScale(dim) if layer_scale else nn.Identity()
        self.ff_scale = _LayerScale(dim) if layer_scale else nn.Identity()
        self.rope = _Rope(min(HEAD_DIM, dim) // 2)

    def forward(self, x: Tensor) -> Tensor:
        x = x + self.self_attn_scale(self.self_attn(self.pre_norm(x), self.rope(x.shape[-2])))
        return x + self.ff_scale(self.ff(self.ff_norm(x)))
