"""SpeechTokenizer (Zhang et al.) as a speechtok tokenizer: `speechtok.load("speechtokenizer:DIR[?q=N]")`.

DIR is its official release layout (fnlp/SpeechTokenizer, speechtokenizer_hubert_avg/): `config.json` and one
`.pt` state dict (`SpeechTokenizer.pt`), read with `weights_only=True` (or its `.safetensors` twin from
`speechtok convert torch-pickle`). PATH may also name the `.pt` file, with config.json beside it.
Codebook 1 is the semantic (HuBERT-distilled) one, 2..Q add acoustic detail (`codes.stream("semantic")`).

It runs on speechtok's native implementation (speechtok/models/speechtokenizer.py, codecs/speechtokenizer.py), so
neither the `speechtokenizer` package nor torchaudio is needed; tests check it against the package.
"""

from __future__ import annotations

from ..errors import CheckpointError
from ..fileio import checkpoint_identity
from ..tokenizer import Tokenizer
from .base import parse_spec, read_json, read_state, select_q, single_file
from .speechtokenizer_release import speechtokenizer_from_release


def load(spec: str | None, device=None) -> Tokenizer:
    path, options = parse_spec(spec, "speechtokenizer")
    directory = path if path.is_dir() else path.parent
    config = read_json(directory / "config.json")
    weights = single_file(path, (".pt", ".pth", ".safetensors"), ".pt state dict beside config.json")
    if "n_q" not in config or "strides" not in config:
        raise CheckpointError(f"{directory / 'config.json'}: not a SpeechTokenizer config (no n_q / strides)")
    q = select_q(options, spec, config["n_q"])
    tok = speechtokenizer_from_release(config, read_state(weights), source=weights, name=f"speechtokenizer-q{q}",
                                       n_q=q)
    tok.checkpoint = checkpoint_identity([directory / "config.json", weights])
    tok.adapter_info = {"peer": "speechtokenizer", "format": "release (config.json + state dict)",
                        "implementation": "native (speechtok.models.speechtokenizer)", "checkpoint": tok.checkpoint,
                        "batching": "per item: reflect padding and the BiLSTM see where each item ends"}
    return tok.to(device or "cpu")
