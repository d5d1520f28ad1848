"""The speechtokenizer family (hybrid): RVQ layer 1 carries content (distilled from a HuBERT teacher), layers 2..Q
the acoustic rest. Their codes name the two streams (`codes.stream("semantic")`, `codes.stream("acoustic")`) for
LM pipelines that model them apart. The official release loads through `speechtok.adapters.speechtokenizer`.
"""

from __future__ import annotations

from torch import Tensor

from ..codecs.speechtokenizer import SemanticProjection, SpeechTokenizerConfig, SpeechTokenizerEncoder
from ..quantizers.rvq import RVQ, RVQConfig
from ..tokenizer import Tokenizer
from ..vocoders.seanet import SEANetDecoder, SEANetDecoderConfig
from .registry import register_family

SEMANTIC_STREAM = "semantic"
ACOUSTIC_STREAM = "acoustic"


def semantic_features(tok: Tokenizer, wav: Tensor, lengths: Tensor | None = None) -> Tensor:
    """wav [B, 1, T] at the tokenizer's rate -> RVQ layer 1 in the teacher's space [B, T_frames, D_teacher]."""
    z = tok.encoder(wav, lengths)
    first = tok.quantizer.decode(tok.quantizer.encode(z, 1))
    return tok.semantic(first)


@register_family("speechtokenizer", SpeechTokenizerConfig)
def build_speechtokenizer(cfg: SpeechTokenizerConfig, norm: bool = False, name: str | None = None,
                          inference: bool = False) -> Tokenizer:
    """The SpeechTokenizer layout: SEANet + BiLSTM encoder, RVQ searched in the latent space itself (EnCodec's),
    SEANet decoder, and the projection of RVQ layer 1 towards the teacher."""
    quantizer = RVQ(RVQConfig(dim=cfg.dimension, num_codebooks=cfg.n_q, codebook_size=cfg.codebook_size,
                              codebook_dim=None, quantizer_dropout=False), inference=inference)
    decoder = SEANetDecoder(SEANetDecoderConfig(
        dimension=cfg.dimension, n_filters=cfg.n_filters, strides=cfg.strides, lstm_layers=cfg.lstm_layers,
        n_residual_layers=cfg.n_residual_layers, residual_kernel_size=cfg.residual_kernel_size,
        dilation_base=cfg.dilation_base,
        lstm_context_frames=round(cfg.lstm_context_s * cfg.sample_rate / cfg.hop_length),
    ), norm=norm)
    semantic = SemanticProjection(cfg.dimension, cfg.semantic_dimension)
    return Tokenizer(SpeechTokenizerEncoder(cfg, norm=norm), quantizer, decoder, sample_rate=cfg.sample_rate,
                     family="speechtokenizer", config=cfg, name=name, modules={"semantic": semantic},
                     streams={SEMANTIC_STREAM: (0, 1), ACOUSTIC_STREAM: (1, cfg.n_q)})
