"""The `qwen-tts` package's 12 Hz tokenizer, built small, run in a process of its own:
`python qwen_tts_official.py OUT [--layout-only]`.

Run with transformers 4.57.3 first on the path (the package's pin: its modules do not import on transformers 5).
Writes OUT/official/config.json + model.safetensors (the publisher's layout, as Qwen/Qwen3-TTS-Tokenizer-12Hz) and
OUT/expected.safetensors: for each test input, the codes of the package's `Qwen3TTSTokenizer.encode` and the audio
of its `decode`.
"""

from __future__ import annotations

import sys
import warnings
from pathlib import Path

import numpy as np
import torch
from safetensors.torch import save_file

warnings.simplefilter("ignore")
import transformers  # noqa: E402
from qwen_tts import Qwen3TTSTokenizer  # noqa: E402
from qwen_tts.core import Qwen3TTSTokenizerV2Config, Qwen3TTSTokenizerV2Model  # noqa: E402

# 3 s; 7.3 s (92 frames, off the frame grid) passes the decoder's 72-frame sliding window; 25 s (313 frames) is
# decoded in two chunks
LENGTHS = (72000, 175217, 600000)
Q_ENCODER, Q_USED, CODEBOOK = 12, 8, 64  # the encoder's codebooks, the ones kept (published: 32, 16, 2048)


def build() -> torch.nn.Module:
    encoder = dict(hidden_size=32, num_filters=4, num_hidden_layers=2, num_attention_heads=4, num_key_value_heads=4,
                   intermediate_size=64, codebook_size=CODEBOOK, codebook_dim=16, num_quantizers=Q_ENCODER,
                   vector_quantization_hidden_dimension=16, upsample_groups=32, frame_rate=12.5,
                   sliding_window=250, use_cache=False)
    decoder = dict(codebook_size=CODEBOOK, codebook_dim=32, hidden_size=32, latent_dim=48, num_attention_heads=4,
                   num_key_value_heads=2, num_hidden_layers=2, intermediate_size=64, num_quantizers=Q_USED,
                   decoder_dim=64, sliding_window=72)
    config = Qwen3TTSTokenizerV2Config(encoder_config=encoder, decoder_config=decoder,
                                       encoder_valid_num_quantizers=Q_USED)
    torch.manual_seed(0)
    model = Qwen3TTSTokenizerV2Model(config)
    with torch.no_grad():  # codebooks start as zeros: make them codebooks, so that codes vary with the input
        for name, t in [*model.named_parameters(), *model.named_buffers()]:
            if name.endswith(("embed_sum", "embedding_sum")):
                t.normal_(0, 1.0)
            elif name.endswith("cluster_usage"):
                t.uniform_(0.5, 2.0)
            elif name.endswith(("alpha", "beta")):  # SnakeBeta's log-parameters
                t.normal_(0, 0.3)
            elif name.startswith("decoder.") and name.endswith("weight") and t.ndim > 1:  # audible output
                t.normal_(0, t[0].numel() ** -0.5)
        model.decoder.decoder[-1].conv.weight.mul_(0.02)  # ... and mostly inside the final clamp to [-1, 1]
    return model.eval()


def main(out: Path, layout_only: bool = False) -> None:
    assert transformers.__version__ == "4.57.3", transformers.__version__
    model = build()
    model.save_pretrained(out / "official")
    if layout_only:
        return
    tokenizer = Qwen3TTSTokenizer()
    tokenizer.model, tokenizer.config, tokenizer.device = model, model.config, torch.device("cpu")
    # Qwen/Qwen3-TTS-Tokenizer-12Hz's preprocessor: Mimi's (Encodec's) feature extractor at 24 kHz
    tokenizer.feature_extractor = transformers.EncodecFeatureExtractor(feature_size=1, sampling_rate=24000)
    expected = {}
    for n in LENGTHS:
        wav = 0.1 * np.random.default_rng(n).standard_normal(n).astype(np.float32)
        codes = tokenizer.encode(wav, sr=24000).audio_codes[0]  # [T, Q]
        audio, rate = tokenizer.decode({"audio_codes": [codes]})
        assert rate == 24000
        expected[f"wav_{n}"], expected[f"codes_{n}"] = torch.from_numpy(wav), codes.T.contiguous()
        expected[f"audio_{n}"] = torch.from_numpy(audio[0])
    save_file(expected, out / "expected.safetensors")


if __name__ == "__main__":
    main(Path(sys.argv[1]), layout_only="--layout-only" in sys.argv[2:])
