"""NeuCodec (Neuphonic; NeuTTS's codec) as a speechtok tokenizer: `speechtok.load("neucodec:PATH")`, or the zoo's
`neucodec`.

X-Codec2's architecture (`adapters/xcodec2.py`: w2v-BERT 2.0 semantic + acoustic encoder, one FSQ codebook of
65,536 codes at 50 Hz from 16 kHz speech) with a decoder that synthesises 24 kHz. PATH is either

- the publisher's weights file (neuphonic/neucodec's `pytorch_model.bin`, read with `weights_only=True`, or a
  `.safetensors` of the same keys), converted in memory into `transformers.NeuCodecModel`, or
- a `transformers` NeuCodec directory (`config.json` with model_type "neucodec" + `model.safetensors`).

The front end is the `neucodec` package's: the waveform padded by `hop - T % hop` samples and its fbank features
without X-Codec2's half-hop padding, so the semantic branch is a frame short and T samples give T // 320 codes.
The tokenizer works at 16 kHz: decoded audio is the decoder's 24 kHz resampled to 16 kHz (soxr), so that encode
and decode share one rate.
"""

from __future__ import annotations

from ..errors import CheckpointError
from ..fileio import checkpoint_identity
from ..tokenizer import Tokenizer
from .base import hf_files, parse_spec, read_json, read_state, require, single_file
from .xcodec2 import convert_official, tokenizer


def load(spec: str | None, device=None) -> Tokenizer:
    path, _ = parse_spec(spec, "neucodec")
    transformers = require("transformers", "neucodec", spec)
    config = read_json(path / "config.json") if (path / "config.json").is_file() else {}
    if config.get("model_type") == "neucodec":
        files = hf_files(path)
        model = transformers.NeuCodecModel.from_pretrained(path, local_files_only=True)
    else:
        file = single_file(path, (".bin", ".safetensors", ".pt", ".pth"), "NeuCodec weights file (pytorch_model.bin)",
                           prefix="pytorch_model" if path.is_dir() else "")
        state = read_state(file)  # weights_only=True, or the safetensors of the same keys
        if not isinstance(state, dict):
            raise CheckpointError(f"{file}: not a state dict")
        model = convert_official(state, file, family="neucodec")
        files = [file]
    return tokenizer(model, checkpoint_identity(files), device)
