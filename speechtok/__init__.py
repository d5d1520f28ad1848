"""speechtok: discrete speech tokenizers and neural audio codecs.

    tok = speechtok.load("speechtok-codec-16k")        # or a checkpoint directory
    codes = tok.encode(wav, sample_rate)              # Codes: [B, Q, T] + lengths + timing
    wav_hat = tok.decode(codes)                       # [B, 1, T_samples] at tok.sample_rate
"""

__version__ = "0.1.0"

from .codes import Codes  # noqa: E402
from .errors import AudioError, CheckpointError, CodesError, SpeechtokError, UnknownTokenizerError  # noqa: E402
from .registry import available, load  # noqa: E402
from .tokenizer import Tokenizer  # noqa: E402

__all__ = [
    "__version__", "load", "available", "Tokenizer", "Codes",
    "SpeechtokError", "AudioError", "CheckpointError", "CodesError", "UnknownTokenizerError",
]
