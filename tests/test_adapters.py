"""Peer adapters: each peer is built with random weights in its own package (small configs where the package
allows), saved in its official layout, loaded through `speechtok.load("peer:path")`, and must give the codes of
the package's own encode and, within 1e-4, the audio of its own decode. A peer whose package is not installed
is skipped with the reason (.ci/run installs them from .ci/peers.txt)."""

from __future__ import annotations

import dataclasses
import json
import warnings

import pytest
import torch

import speechtok
from speechtok.errors import CheckpointError

ATOL = 1e-4


def _need(module: str):
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        return pytest.importorskip(module, reason=f"{module} not installed (see .ci/peers.txt)")


def _noise(sr: int, samples: int, batch: int = 1, seed: int = 0) -> torch.Tensor:
    g = torch.Generator().manual_seed(seed)
    return 0.1 * torch.randn(batch, 1, samples, generator=g)


def _check_decode(ours: torch.Tensor, theirs: torch.Tensor) -> None:
    n = ours.shape[-1]
    assert theirs.shape[-1] >= n
    torch.testing.assert_close(ours, theirs[..., :n], atol=ATOL, rtol=0)


def _check_batch(tok, sr: int, n: int) -> None:
    """Items of a padded batch get the codes they get alone (the adapters encode them one by one)."""
    wav = _noise(sr, n, batch=2, seed=1)
    lengths = torch.tensor([n, n - 3 * tok.hop_length - 7])
    batch = tok.encode(wav, sr, lengths=lengths)
    for i in range(2):
        alone = tok.encode(wav[i : i + 1, :, : int(lengths[i])], sr)
        torch.testing.assert_close(batch.item(i).codes, alone.codes, rtol=0, atol=0)


def _check_identity(tok, *files) -> None:
    ident = tok.identity()["checkpoint"]
    assert len(ident["sha256"]) == 64
    assert tok.adapter_info["checkpoint"]["files"] == [str(f.resolve()) for f in files]
    assert "per item" in tok.adapter_info["batching"]


# -- EnCodec ----------------------------------------------------------------------------------------------------


def test_encodec_package_24khz(tmp_path):
    encodec = _need("encodec")
    torch.manual_seed(0)
    model = encodec.EncodecModel.encodec_model_24khz(pretrained=False).eval()  # the package's only 24 kHz config
    file = tmp_path / "encodec_24khz-d7cc33bc.th"
    torch.save(model.state_dict(), file)
    tok = speechtok.load(f"encodec:{file}?q=8")
    assert (tok.sample_rate, tok.frame_rate, tok.num_codebooks, tok.codebook_size) == (24000, 75, 8, 1024)
    assert tok.bitrate == 6000
    wav = _noise(24000, 7200 + 123)  # the package's only 24 kHz model is full size: short clips keep it fast
    model.set_target_bandwidth(6.0)
    with torch.no_grad():
        frames = model.encode(wav)
        theirs = model.decode(frames)
    codes = tok.encode(wav, 24000)
    torch.testing.assert_close(codes.codes, frames[0][0].long(), rtol=0, atol=0)
    _check_decode(tok.decode(codes), theirs)
    _check_batch(tok, 24000, 4800)
    _check_identity(tok, file)
    assert speechtok.load(f"encodec:{tmp_path}").num_codebooks == 32  # the directory form, all codebooks


def _random_codebooks(rvq, seed: int = 0) -> None:
    """An untrained package RVQ has zero codebooks (k-means runs on the first batch): give it random ones so
    that codes differ from frame to frame."""
    g = torch.Generator().manual_seed(seed)
    for layer in rvq.vq.layers:
        book = layer._codebook
        book.embed.copy_(torch.randn(book.embed.shape, generator=g))
        book.inited.fill_(1)


def test_encodec_package_48khz_segments(tmp_path):
    """The stereo 48 kHz model: 1 s segments overlapping by 1%, each with its own gain. Codes and gains equal the
    package's encode (mono input on both channels), audio its decode averaged over channels; the gains travel in
    codes files; a bare tensor cannot be decoded; a padded batch gives each item its solo codes."""
    encodec = _need("encodec")
    torch.manual_seed(0)
    model = encodec.EncodecModel.encodec_model_48khz(pretrained=False).eval()
    _random_codebooks(model.quantizer)
    file = tmp_path / "encodec_48khz-7e698e3e.th"
    torch.save(model.state_dict(), file)
    tok = speechtok.load(f"encodec:{file}?q=4")
    assert (tok.sample_rate, tok.frame_rate, tok.num_codebooks, tok.bitrate) == (48000, 150, 4, 6000)
    model.set_target_bandwidth(6.0)
    for n in (48000 + 2000, 47600):  # a cut last segment; a first segment the signal's end cuts too
        wav = _noise(48000, n) * torch.linspace(0.2, 2.0, n)  # loudness changes: the segments' gains differ
        with torch.no_grad():
            frames = model.encode(wav.expand(-1, 2, -1))
            theirs = model.decode(frames).mean(dim=1, keepdim=True)
        codes = tok.encode(wav, 48000)
        torch.testing.assert_close(codes.codes, torch.cat([c for c, _ in frames], dim=-1).long(), rtol=0, atol=0)
        torch.testing.assert_close(codes.scales, torch.cat([s for _, s in frames], dim=-1), rtol=0, atol=0)
        assert len(set(codes.codes[0, 0].tolist())) > 1 and codes.scales[0, 0] != codes.scales[0, 1]
        _check_decode(tok.decode(codes), theirs)
        assert codes.frame_times()[150 if n > 48000 else 149] == pytest.approx(47520 / 48000)
    saved = speechtok.Codes.load(codes.save(tmp_path / "x.npy"))
    torch.testing.assert_close(saved.scales, codes.scales, rtol=0, atol=0)
    torch.testing.assert_close(tok.decode(saved), tok.decode(codes), rtol=0, atol=0)
    with pytest.raises(speechtok.CodesError, match="per-segment scales"):
        tok.decode(codes.codes)
    _check_batch(tok, 48000, 48400)  # the short item has one segment, the long one two
    assert "48000 samples every 47520" in tok.adapter_info["segments"]


def test_encodec_transformers_directory(tmp_path):
    transformers = _need("transformers")
    torch.manual_seed(0)
    cfg = transformers.EncodecConfig(num_filters=4, hidden_size=16, codebook_size=64, codebook_dim=16,
                                     num_lstm_layers=1, upsampling_ratios=[8, 5, 4, 2], sampling_rate=24000,
                                     target_bandwidths=[1.5, 3.0], normalize=False, chunk_length_s=None)
    model = transformers.EncodecModel(cfg).eval()
    model.save_pretrained(tmp_path / "encodec_hf")
    nq = model.quantizer.get_num_quantizers_for_bandwidth(3.0)
    tok = speechtok.load(f"encodec:{tmp_path / 'encodec_hf'}?q={nq}")
    assert (tok.sample_rate, tok.hop_length, tok.num_codebooks) == (24000, 320, nq)
    wav = _noise(24000, 9600 + 5)
    with torch.no_grad():
        out = model.encode(wav, bandwidth=3.0)
        theirs = model.decode(out.audio_codes, out.audio_scales).audio_values
    codes = tok.encode(wav, 24000)
    torch.testing.assert_close(codes.codes, out.audio_codes[0].long(), rtol=0, atol=0)
    _check_decode(tok.decode(codes), theirs)
    _check_batch(tok, 24000, 9600)


def _hf_segmented(tmp_path, chunk_length_s: float | None = 0.04):
    transformers = _need("transformers")
    torch.manual_seed(0)
    cfg = transformers.EncodecConfig(num_filters=4, hidden_size=16, codebook_size=64, codebook_dim=16,
                                     num_lstm_layers=1, upsampling_ratios=[8, 5, 4, 2], sampling_rate=48000,
                                     audio_channels=2, target_bandwidths=[3.0, 6.0], normalize=True,
                                     chunk_length_s=chunk_length_s, overlap=0.01)  # 1920-sample chunks every 1900
    model = transformers.EncodecModel(cfg).eval()
    model.save_pretrained(tmp_path / "encodec_48k")
    nq = model.quantizer.get_num_quantizers_for_bandwidth(6.0)
    return model, f"encodec:{tmp_path / 'encodec_48k'}?q={nq}"


def test_encodec_transformers_normalised_without_chunks(tmp_path):
    """A transformers EnCodec that normalises the whole input (no chunks): one segment per file, its gain kept."""
    model, spec = _hf_segmented(tmp_path, chunk_length_s=None)
    tok = speechtok.load(spec)
    wav = _noise(48000, 3000) * 3
    with torch.no_grad():
        out = model.encode(wav.expand(-1, 2, -1), bandwidth=6.0)
        theirs = model.decode(out.audio_codes, out.audio_scales).audio_values.mean(1, keepdim=True)
    codes = tok.encode(wav, 48000)
    torch.testing.assert_close(codes.codes, out.audio_codes[0].long(), rtol=0, atol=0)
    torch.testing.assert_close(codes.scales, out.audio_scales[0], rtol=0, atol=0)
    _check_decode(tok.decode(codes), theirs)


def test_encodec_transformers_48khz_style_segments(tmp_path):
    """A stereo, per-chunk-normalised transformers EnCodec (the layout of facebook/encodec_48khz, tiny and with
    short chunks): codes, gains and audio equal transformers' own chunked encode / decode."""
    model, spec = _hf_segmented(tmp_path)
    tok = speechtok.load(spec)
    assert tok.encoder.segments == {"length": 1920, "stride": 1900}
    wav = _noise(48000, 5000) * torch.linspace(0.2, 2.0, 5000)
    with torch.no_grad():
        out = model.encode(wav.expand(-1, 2, -1), bandwidth=6.0)
        theirs = model.decode(out.audio_codes, out.audio_scales,
                              last_frame_pad_length=out.last_frame_pad_length).audio_values.mean(1, keepdim=True)
    chunks = list(out.audio_codes)
    chunks[-1] = chunks[-1][..., : chunks[-1].shape[-1] - out.last_frame_pad_length]
    codes = tok.encode(wav, 48000)
    torch.testing.assert_close(codes.codes, torch.cat(chunks, dim=-1).long(), rtol=0, atol=0)
    torch.testing.assert_close(codes.scales, torch.cat(out.audio_scales, dim=-1), rtol=0, atol=0)
    _check_decode(tok.decode(codes), theirs)


# -- DAC --------------------------------------------------------------------------------------------------------


DAC_SMALL = dict(sample_rate=16000, encoder_dim=8, encoder_rates=[2, 4, 5, 8], decoder_dim=32,
                 decoder_rates=[8, 5, 4, 2], n_codebooks=4, codebook_size=64, codebook_dim=8)


def _dac(tmp_path):
    dac = _need("dac")
    torch.manual_seed(0)
    model = dac.model.DAC(**DAC_SMALL).eval()
    file = tmp_path / "weights_16khz.pth"
    model.save(str(file), package=False)  # the released weights' layout: {"state_dict", "metadata": {"kwargs"}}
    return model, file


def test_dac(tmp_path):
    model, file = _dac(tmp_path)
    tok = speechtok.load(f"dac:{file}")
    assert (tok.sample_rate, tok.frame_rate, tok.num_codebooks, tok.codebook_size) == (16000, 50, 4, 64)
    wav = _noise(16000, 16000 + 77)
    with torch.no_grad():
        _, theirs_codes, *_ = model.encode(model.preprocess(wav, 16000))
        theirs = model.decode(model.quantizer.from_codes(theirs_codes)[0])
    codes = tok.encode(wav, 16000)
    torch.testing.assert_close(codes.codes, theirs_codes.long(), rtol=0, atol=0)
    _check_decode(tok.decode(codes), theirs)
    with torch.no_grad():  # fewer codebooks: the package's n_quantizers
        _, two, *_ = model.encode(model.preprocess(wav, 16000), n_quantizers=2)
    torch.testing.assert_close(tok.encode(wav, 16000, n_q=2).codes, two.long(), rtol=0, atol=0)
    _check_batch(tok, 16000, 8000)
    _check_identity(tok, file)


def test_pickled_checkpoint_is_refused_then_converted(tmp_path):
    model, file = _dac(tmp_path)
    obj = torch.load(file, weights_only=True)
    obj["metadata"]["kwargs"]["codebook_size"] = __import__("numpy").int64(64)  # a numpy scalar needs an unpickle
    pickled = tmp_path / "pickled.pth"
    torch.save(obj, pickled)
    with pytest.raises(CheckpointError, match="speechtok convert torch-pickle"):
        speechtok.load(f"dac:{pickled}")
    from speechtok.convert import convert

    with pytest.raises(CheckpointError, match="--unpickle"):
        convert("torch-pickle", pickled, tmp_path / "safe.safetensors")
    safe = convert("torch-pickle", pickled, tmp_path / "safe.safetensors", trust_pickle=True)
    wav = _noise(16000, 8000)
    ours = speechtok.load(f"dac:{safe}").encode(wav, 16000).codes
    torch.testing.assert_close(ours, speechtok.load(f"dac:{file}").encode(wav, 16000).codes, rtol=0, atol=0)


# -- Mimi -------------------------------------------------------------------------------------------------------


def test_mimi(tmp_path):
    transformers = _need("transformers")
    torch.manual_seed(0)
    cfg = transformers.MimiConfig(hidden_size=64, num_filters=8, codebook_dim=32,
                                  vector_quantization_hidden_dimension=32, codebook_size=64, num_quantizers=4,
                                  num_hidden_layers=2, intermediate_size=128, num_attention_heads=4,
                                  num_key_value_heads=4, head_dim=16, sliding_window=50, upsample_groups=64)
    model = transformers.MimiModel(cfg).eval()
    model.save_pretrained(tmp_path / "mimi")
    tok = speechtok.load(f"mimi:{tmp_path / 'mimi'}?q=3")
    assert (tok.sample_rate, tok.frame_rate, tok.num_codebooks, tok.codebook_size) == (24000, 12.5, 3, 64)
    assert tok.bitrate == 12.5 * 3 * 6
    wav = _noise(24000, 24000 + 77)
    with torch.no_grad():
        theirs_codes = model.encode(wav, num_quantizers=3).audio_codes
        theirs = model.decode(theirs_codes).audio_values
    codes = tok.encode(wav, 24000)
    torch.testing.assert_close(codes.codes, theirs_codes.long(), rtol=0, atol=0)
    _check_decode(tok.decode(codes), theirs)
    _check_batch(tok, 24000, 24000)
    with pytest.raises(CheckpointError, match="q=5 is out of range"):
        speechtok.load(f"mimi:{tmp_path / 'mimi'}?q=5")


# -- SNAC -------------------------------------------------------------------------------------------------------


SNAC_SMALL = dict(sampling_rate=24000, encoder_dim=8, encoder_rates=[2, 4, 8, 8], decoder_dim=32,
                  decoder_rates=[8, 8, 4, 2], attn_window_size=None, codebook_size=64, codebook_dim=8,
                  vq_strides=[4, 2, 1], noise=True, depthwise=True)


def test_snac(tmp_path):
    snac = _need("snac")
    torch.manual_seed(0)
    model = snac.SNAC(**SNAC_SMALL).eval()
    (tmp_path / "snac").mkdir()
    (tmp_path / "snac" / "config.json").write_text(json.dumps(SNAC_SMALL))  # hubertsiuzdak/snac_24khz layout
    torch.save(model.state_dict(), tmp_path / "snac" / "pytorch_model.bin")
    tok = speechtok.load(f"snac:{tmp_path / 'snac'}")
    assert (tok.sample_rate, tok.hop_length, tok.num_codebooks) == (24000, 512, 3)
    assert tok.bitrate == pytest.approx((46.875 / 4 + 46.875 / 2 + 46.875) * 6)  # each code counted once
    wav = _noise(24000, 512 * 4 * 12)  # whole coarse frames: the package pads to them itself
    with torch.no_grad():
        theirs_codes = model.encode(wav)
        torch.manual_seed(0)  # the decoder's noise, as the adapter seeds it
        theirs = model.decode(theirs_codes)
    codes = tok.encode(wav, 24000)
    for i, (stride, theirs_i) in enumerate(zip([4, 2, 1], theirs_codes)):
        torch.testing.assert_close(codes.codes[:, i, ::stride], theirs_i.long(), rtol=0, atol=0)
        assert (codes.codes[:, i] == theirs_i.repeat_interleave(stride, -1)).all()
    _check_decode(tok.decode(codes), theirs)
    torch.testing.assert_close(tok.decode(codes), tok.decode(codes), rtol=0, atol=0)  # seeded noise
    odd = tok.encode(_noise(24000, 24000 + 5), 24000)  # not whole coarse frames: trimmed, still decodable
    assert odd.codes.shape[-1] == 47 and tok.decode(odd).shape[-1] == 24005
    _check_batch(tok, 24000, 24000)


# -- SpeechTokenizer --------------------------------------------------------------------------------------------


ST_SMALL = {"n_filters": 4, "strides": [8, 5, 4, 2], "dimension": 32, "semantic_dimension": 16,
            "bidirectional": True, "dilation_base": 2, "residual_kernel_size": 3, "n_residual_layers": 1,
            "lstm_layers": 2, "activation": "ELU", "codebook_size": 64, "n_q": 4, "sample_rate": 16000}


def test_speechtokenizer(tmp_path):
    st = _need("speechtokenizer")
    torch.manual_seed(0)
    model = st.SpeechTokenizer(ST_SMALL).eval()
    ckpt = tmp_path / "speechtokenizer_hubert_avg"
    ckpt.mkdir()
    (ckpt / "config.json").write_text(json.dumps(ST_SMALL))  # the release layout: config.json + a .pt state dict
    torch.save(model.state_dict(), ckpt / "SpeechTokenizer.pt")
    tok = speechtok.load(f"speechtokenizer:{ckpt}")
    assert (tok.sample_rate, tok.frame_rate, tok.num_codebooks, tok.codebook_size) == (16000, 50, 4, 64)
    wav = _noise(16000, 16000 + 5)
    with torch.no_grad():
        theirs_codes = model.encode(wav)  # [Q, B, T]
        theirs = model.decode(theirs_codes)
    codes = tok.encode(wav, 16000)
    torch.testing.assert_close(codes.codes, theirs_codes.transpose(0, 1).long(), rtol=0, atol=0)
    _check_decode(tok.decode(codes), theirs)
    _check_batch(tok, 16000, 8000)
    _check_identity(tok, ckpt / "config.json", ckpt / "SpeechTokenizer.pt")
    assert speechtok.load(f"speechtokenizer:{ckpt / 'SpeechTokenizer.pt'}?q=1").num_codebooks == 1


# -- common -----------------------------------------------------------------------------------------------------


@pytest.mark.parametrize("peer", ["encodec", "dac", "mimi", "snac", "speechtokenizer"])
def test_a_plugin_without_a_path_asks_for_one(tmp_path, peer):
    # (`speechtok.load("mimi")`, a zoo name, fetches the official weights: tests/test_zoo.py)
    with pytest.raises(CheckpointError, match="local path"):
        speechtok.load(f"{peer}:")
    with pytest.raises(CheckpointError, match="no such file"):
        speechtok.load(f"{peer}:{tmp_path / 'nowhere'}")


def test_resampling_and_codes_file_roundtrip(tmp_path):
    """Any rate in, like every tokenizer; codes saved with the checkpoint's identity decode without flags."""
    model, file = _dac(tmp_path)
    tok = speechtok.load(f"dac:{file}")
    codes = tok.encode(_noise(44100, 44100), 44100)
    assert codes.codes.shape[-1] == 50
    codes.save(tmp_path / "x.npy")
    loaded = speechtok.Codes.load(tmp_path / "x.npy")
    assert loaded.tokenizer["source"] == f"dac:{file}"
    assert loaded.tokenizer["checkpoint"]["sha256"] == tok.checkpoint["sha256"]
    torch.testing.assert_close(tok.decode(loaded), tok.decode(codes), atol=ATOL, rtol=0)


def test_pretokenize_through_an_adapter(tmp_path):
    """Pre-tokenization takes a peer like any tokenizer; batched items get the codes they get alone."""
    import soundfile as sf

    _model, file = _dac(tmp_path)
    spec = f"dac:{file}"
    corpus = tmp_path / "corpus"
    corpus.mkdir()
    for i, n in enumerate((16000, 9000, 12345)):
        sf.write(corpus / f"u{i}.wav", _noise(16000, n, seed=i)[0, 0].numpy(), 16000)
    speechtok.pretokenize(spec, corpus, tmp_path / "tokens", num_workers=0)
    import pandas as pd

    rows = pd.read_parquet(tmp_path / "tokens").set_index("id")
    tok = speechtok.load(spec)
    for i in range(3):
        row = rows.loc[next(k for k in rows.index if k.endswith(f"u{i}"))]
        alone = tok.encode_file(corpus / f"u{i}.wav").codes[0]
        assert [list(c) for c in row["codes"]] == alone.tolist()


def test_pretokenize_keeps_segment_scales(tmp_path):
    """A segmented codec's dataset rows carry each file's segment gains: codes and gains equal the file's solo
    encode (in padded batches too), and a row decodes as the solo codes do."""
    import pandas as pd
    import soundfile as sf

    _model, spec = _hf_segmented(tmp_path)
    corpus = tmp_path / "corpus"
    corpus.mkdir()
    for i, n in enumerate((5000, 4100, 2500)):
        sf.write(corpus / f"u{i}.wav", (_noise(48000, n, seed=i) * (1 + i))[0, 0].numpy(), 48000)
    speechtok.pretokenize(spec, corpus, tmp_path / "tokens", num_workers=0)
    rows = pd.read_parquet(tmp_path / "tokens").set_index("id")
    tok = speechtok.load(spec)
    for i in range(3):
        row = rows.loc[next(k for k in rows.index if k.endswith(f"u{i}"))]
        alone = tok.encode_file(corpus / f"u{i}.wav")
        assert [list(c) for c in row["codes"]] == alone.codes[0].tolist()
        assert list(row["segment_scales"]) == alone.scales[0].tolist()
        restored = dataclasses.replace(alone, codes=torch.tensor([[list(c) for c in row["codes"]]]),
                                       scales=torch.tensor([list(row["segment_scales"])]))
        torch.testing.assert_close(tok.decode(restored), tok.decode(alone), rtol=0, atol=0)
