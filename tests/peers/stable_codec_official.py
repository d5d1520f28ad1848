"""stable-codec 0.1.2's `StableCodec` on stable-audio-tools 0.0.19's TAAE, built small, run in a process of its
own: `python stable_codec_official.py OUT [--layout-only]`.

Run with both packages first on the path (.ci/run installs them with --no-deps in .venv/pinned/stable-codec-0.1.2:
they pin torch 2.4, and stable-audio-tools' package import pulls its whole diffusion stack, down to torchvision).
So the packages' own files are imported under stand-in parent packages, and what the codec never runs (diffusion,
samplers, torchaudio's resampler, hub download, loudness) is stubbed. Two things in the released code need a hand:
- 0.0.19's TAAEBlock passes `sliding_window` to an `Attention` that takes no such argument: it is dropped, which is
  what the package's CPU path does anyway (it windows only through FlashAttention; elsewhere every frame attends to
  every frame), so the adapter is compared with `window=full`.
- the package's factory is replaced by the few lines that build the autoencoder from the config (its own classes).

Writes OUT/stable-codec (`model_config.json` + `model.ckpt`, as stabilityai/stable-codec-speech-16k) and
OUT/expected.safetensors: for each input, the pre-bottleneck latents, and for each bottleneck, the codes of
`StableCodec.encode` and the audio of its `decode`.
"""

from __future__ import annotations

import functools
import importlib
import json
import sys
import types
import warnings
from pathlib import Path

import torch
from safetensors.torch import save_file

warnings.simplefilter("ignore")
LENGTHS = (16000, 8560)  # whole hops (the package's encode expects padded input)
BOTTLENECKS = ("none", "2x15625_700bps", "4x729_1000bps")
CONFIG = {
    "model_type": "autoencoder", "sample_rate": 16000, "audio_channels": 1,
    "model": {
        "io_channels": 1, "latent_dim": 6, "downsampling_ratio": 80,
        "pretransform": {"type": "patched", "config": {"channels": 1, "patch_size": 20}},
        "encoder": {"type": "taae", "config": {
            "in_channels": 20, "channels": 32, "c_mults": [1, 8], "strides": [2, 2], "transformer_depths": [1, 2],
            "latent_dim": 6, "use_snake": True, "use_dilated_conv": True, "sliding_window": [3, 4]}},
        "decoder": {"type": "taae", "config": {
            "out_channels": 20, "channels": 32, "c_mults": [1, 8], "strides": [2, 2], "transformer_depths": [1, 2],
            "latent_dim": 6, "use_snake": True, "use_dilated_conv": True, "sliding_window": [3, 4]}},
        "bottleneck": {"type": "dithered_fsq", "config": {"dim": 6, "levels": 17, "num_codebooks": 1}},
    },
}


def stub(name: str, **attrs) -> types.ModuleType:
    module = types.ModuleType(name)
    module.__dict__.update(attrs)
    sys.modules[name] = module
    return module


def package(name: str) -> None:
    """A parent package whose __init__ is not run: its submodules import from its folder."""
    spec = importlib.util.find_spec(name)
    assert spec is not None and spec.submodule_search_locations, f"{name} is not installed"
    stub(name).__path__ = list(spec.submodule_search_locations)


@functools.cache
def official_modules():
    package("stable_audio_tools")
    package("stable_audio_tools.models")
    never = lambda *a, **k: (_ for _ in ()).throw(RuntimeError("not used by the codec"))  # noqa: E731
    stub("torchaudio", transforms=stub("torchaudio.transforms", Resample=never))
    stub("alias_free_torch", Activation1d=never)
    stub("stable_audio_tools.inference")
    stub("stable_audio_tools.inference.sampling", sample=never)
    stub("stable_audio_tools.inference.utils", prepare_audio=never)
    stub("stable_audio_tools.models.diffusion", ConditionedDiffusionModel=object, DAU1DCondWrapper=object,
         UNet1DCondWrapper=object, DiTWrapper=object)
    stub("stable_audio_tools.models.factory", create_pretransform_from_config=never,
         create_bottleneck_from_config=never)
    transformer = importlib.import_module("stable_audio_tools.models.transformer")
    init = transformer.Attention.__init__

    def attention_init(self, *args, sliding_window=None, **kwargs):  # see the module docstring
        init(self, *args, **kwargs)

    transformer.Attention.__init__ = attention_init
    ae = importlib.import_module("stable_audio_tools.models.autoencoders")
    bottleneck = importlib.import_module("stable_audio_tools.models.bottleneck")
    pretransforms = importlib.import_module("stable_audio_tools.models.pretransforms")
    return ae, bottleneck, pretransforms


def build(config: dict) -> torch.nn.Module:
    ae, bottleneck, pretransforms = official_modules()
    m = config["model"]
    torch.manual_seed(0)  # the same model in every run: a fixture, not a lottery
    model = ae.AudioAutoencoder(
        ae.TAAEEncoder(**m["encoder"]["config"]), ae.TAAEDecoder(**m["decoder"]["config"]),
        latent_dim=m["latent_dim"], downsampling_ratio=m["downsampling_ratio"], sample_rate=config["sample_rate"],
        io_channels=m["io_channels"], bottleneck=bottleneck.DitheredFSQBottleneck(**m["bottleneck"]["config"]),
        pretransform=pretransforms.PatchedPretransform(**m["pretransform"]["config"]))
    with torch.no_grad():  # trained-looking weights: layer scales, norms and snakes away from their inits
        for name, p in model.named_parameters():
            if name.endswith(("scale", "gamma", "q_norm.weight", "k_norm.weight")):
                p.uniform_(0.5, 1.5)
            elif name.endswith(("alpha", "beta", "q_norm.bias", "k_norm.bias")):
                p.normal_(0, 0.3)
        model.encoder.layers[0].weight_g.mul_(20)  # the input, not the biases, decides the latents: codes vary
    return model.eval()


def stable_codec_class(model: torch.nn.Module):
    stub("stable_audio_tools.training")
    stub("stable_audio_tools.training.utils", copy_state_dict=lambda m, state: m.load_state_dict(state))
    stub("stable_audio_tools.data")
    stub("stable_audio_tools.data.utils", VolumeNorm=lambda *a, **k: None)
    sys.modules["stable_audio_tools"].get_pretrained_model = None
    sys.modules["stable_audio_tools.models"].create_model_from_config = lambda config: model
    package("stable_codec")
    return importlib.import_module("stable_codec.model").StableCodec


def main(out: Path, layout_only: bool = False) -> None:
    model = build(CONFIG)
    folder = out / "stable-codec"
    folder.mkdir(parents=True, exist_ok=True)
    (folder / "model_config.json").write_text(json.dumps(CONFIG, indent=1))
    torch.save({"state_dict": model.state_dict()}, folder / "model.ckpt")
    if layout_only:
        return
    codec = stable_codec_class(build(CONFIG))(model_config_path=str(folder / "model_config.json"),
                                              ckpt_path=str(folder / "model.ckpt"))
    expected = {}
    with torch.no_grad():
        for n in LENGTHS:
            wav = 0.1 * torch.randn(1, 1, n, generator=torch.Generator().manual_seed(n))
            expected[f"wav_{n}"] = wav
            for name in BOTTLENECKS:
                posthoc = name != "none"
                if posthoc:
                    codec.set_posthoc_bottleneck(name)
                latents, tokens = codec.encode(wav, posthoc_bottleneck=posthoc)
                expected[f"latents_{n}"] = latents
                codes = torch.cat(tokens, dim=-1) if posthoc else tokens  # [B, T, stages]
                expected[f"codes_{name}_{n}"] = codes.transpose(1, 2)
                expected[f"audio_{name}_{n}"] = codec.decode(tokens, posthoc_bottleneck=posthoc)
    save_file({k: v.contiguous() for k, v in expected.items()}, out / "expected.safetensors")


if __name__ == "__main__":
    main(Path(sys.argv[1]), layout_only="--layout-only" in sys.argv[2:])
