"""speechtok: discrete speech tokenizers and neural audio codecs.

    tok = speechtok.load("speechtok-codec-16k")        # or a checkpoint directory
    codes = tok.encode(wav, sample_rate)              # Codes: [B, Q, T] + lengths + timing
    wav_hat = tok.decode(codes)                       # [B, 1, T_samples] at tok.sample_rate

Names are imported on first use, so `speechtok --help` starts without importing torch.
"""

from importlib import import_module

__version__ = "0.1.0"

_EXPORTS = {
    "load": "registry", "available": "registry", "Tokenizer": "tokenizer", "Codes": "codes",
    "SpeechtokError": "errors", "AudioError": "errors", "CheckpointError": "errors", "CodesError": "errors",
    "UnknownTokenizerError": "errors", "pretokenize": "pretokenize", "tune_malloc": "runtime",
    "EncodeStream": "streaming", "DecodeStream": "streaming",
}

__all__ = ["__version__", *_EXPORTS]


def __getattr__(name: str):
    if name in _EXPORTS:
        return getattr(import_module(f".{_EXPORTS[name]}", __name__), name)
    raise AttributeError(f"module 'speechtok' has no attribute {name!r}")
