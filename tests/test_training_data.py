"""Training data: manifests, directories, crops, reproducible and resumable batch streams, packed crops."""

from __future__ import annotations

import dataclasses
import json
import logging
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf
import torch

from speechtok.config import from_dict
from speechtok.corpora import Item, read_manifest
from speechtok.errors import AudioError
from speechtok.training import data
from speechtok.training.data import (
    CropDataset,
    DataConfig,
    PackedCropDataset,
    batches,
    epoch_order,
    make_dataset,
    make_loader,
    pack_crops,
)

from .conftest import DATA, NEEDS_DATA

SR = 16000


def write_tone(path: Path, seconds: float, sample_rate: int = SR, freq: float = 440.0) -> Path:
    """A 16-bit sine with a slow ramp (so that every crop offset gives different samples)."""
    t = np.arange(int(seconds * sample_rate)) / sample_rate
    wav = 0.5 * np.sin(2 * np.pi * freq * t) * (0.2 + 0.8 * t / max(seconds, 1e-9))
    path.parent.mkdir(parents=True, exist_ok=True)
    sf.write(path, wav, sample_rate, subtype="PCM_16")
    return path


@pytest.fixture()
def corpus(tmp_path) -> Path:
    """audio/ with 10 files of 0.3-1.2 s at 16 kHz, in two subfolders."""
    root = tmp_path / "audio"
    for k in range(10):
        write_tone(root / f"spk{k % 2}" / f"utt{k}.wav", 0.3 + 0.1 * k, freq=200 + 50 * k)
    return root


def cfg_for(*sources, **kw) -> DataConfig:
    return DataConfig(sources=tuple(str(s) for s in sources), **{"segment_seconds": 0.25, "min_seconds": 0.0, **kw})


# -- manifests -------------------------------------------------------------------------------------------------


def test_tsv_manifest_relative_to_its_directory_and_split_filter(tmp_path):
    write_tone(tmp_path / "a.wav", 0.5)
    write_tone(tmp_path / "sub" / "b.wav", 0.5)
    (tmp_path / "m.tsv").write_text("path\tspeaker\tduration_s\tsplit\ttext\n"
                                    "a.wav\tx\t0.5\ttrain\thello\n\nsub/b.wav\ty\t\tdev\t\n")
    items = read_manifest(tmp_path / "m.tsv")
    assert items == [Item(tmp_path / "a.wav", "x", 0.5, "train", "hello"),
                     Item(tmp_path / "sub/b.wav", "y", None, "dev")]
    assert [it.speaker for it in read_manifest(tmp_path / "m.tsv", splits=("dev",))] == ["y"]


def test_manifest_relative_to_its_parent_or_given_root(tmp_path):
    write_tone(tmp_path / "set" / "audio" / "a.wav", 0.5)
    (tmp_path / "set" / "manifest.tsv").write_text("path\nset/audio/a.wav\n")
    assert read_manifest(tmp_path / "set" / "manifest.tsv")[0].path == tmp_path / "set/audio/a.wav"
    (tmp_path / "lists").mkdir()
    (tmp_path / "lists" / "m.tsv").write_text("path\naudio/a.wav\n")
    assert read_manifest(tmp_path / "lists" / "m.tsv", root=tmp_path / "set")[0].path == tmp_path / "set/audio/a.wav"


def test_jsonl_manifest(tmp_path):
    write_tone(tmp_path / "a.flac", 0.5)
    lines = [{"path": str(tmp_path / "a.flac"), "speaker": 7, "duration": 0.5, "text": "hi"}, {"path": "a.flac"}]
    (tmp_path / "m.jsonl").write_text("\n".join(json.dumps(x) for x in lines) + "\n")
    items = read_manifest(tmp_path / "m.jsonl")
    assert items[0] == Item(tmp_path / "a.flac", "7", 0.5, None, "hi")
    assert items[1].path == tmp_path / "a.flac"


@pytest.mark.parametrize("name, text, match", [
    ("bad.tsv", "file\tspeaker\na.wav\tx\n", r"bad\.tsv:1: header .* no 'path' column"),
    ("bad.tsv", "path\tspeaker\na.wav\n", r"bad\.tsv:2: 1 tab-separated fields, the header has 2"),
    ("bad.tsv", "path\tduration_s\na.wav\tlong\n", r"bad\.tsv:2: duration 'long' is not a number"),
    ("bad.jsonl", '{"path": "a.wav"}\n{"file": "b.wav"}\n', r"bad\.jsonl:2: expected an object with a 'path'"),
    ("bad.jsonl", '{"path": "a.wav"\n', r"bad\.jsonl:1: invalid JSON"),
    ("bad.csv", "path\na.wav\n", r"bad\.csv: not a manifest"),
])
def test_bad_manifests_name_file_and_line(tmp_path, name, text, match):
    write_tone(tmp_path / "a.wav", 0.1)
    (tmp_path / name).write_text(text)
    with pytest.raises(ValueError, match=match):
        read_manifest(tmp_path / name)


def test_missing_files_raise_or_are_skipped(tmp_path, caplog):
    write_tone(tmp_path / "a.wav", 0.5)
    (tmp_path / "m.tsv").write_text("path\na.wav\ngone1.wav\ngone2.wav\n")
    with pytest.raises(FileNotFoundError, match=r"m\.tsv: 2 of 3 listed files are missing \(first: .*gone1\.wav"):
        read_manifest(tmp_path / "m.tsv")
    with caplog.at_level(logging.WARNING):
        assert [it.path.name for it in read_manifest(tmp_path / "m.tsv", skip_missing=True)] == ["a.wav"]
    assert "2 of 3" in caplog.text


def test_split_filter_needs_split_labels(tmp_path):
    write_tone(tmp_path / "a.wav", 0.5)
    (tmp_path / "m.tsv").write_text("path\na.wav\n")
    with pytest.raises(ValueError, match="no split labels"):
        read_manifest(tmp_path / "m.tsv", splits=("train",))


@pytest.mark.skipif(not (DATA / "fsdd" / "manifest.tsv").is_file(), reason=NEEDS_DATA)
def test_shared_manifest_resolves_to_its_parent_and_filters():
    cfg = DataConfig(sources=(str(DATA / "fsdd" / "manifest.tsv"),), splits=("dev",), segment_seconds=0.5)
    everything = read_manifest(DATA / "fsdd" / "manifest.tsv", splits=("dev",))
    assert len(everything) == 500 and {it.speaker for it in everything} == {"theo"}
    assert everything[0].path == DATA / "fsdd" / "audio" / "theo" / "0_theo_0.flac"
    items = cfg.items()  # min_seconds None: the segment length
    assert 0 < len(items) < 500 and all(it.duration_s >= 0.5 for it in items)
    ds = CropDataset(items[:3], SR, 8000, seed=0)  # 8 kHz FLAC -> 16 kHz
    first = ds.waveform(0)
    assert abs(len(first) - round(items[0].duration_s * SR)) <= 16
    assert ds[0].shape == (1, 8000)


# -- directories, crops ----------------------------------------------------------------------------------------


def test_directory_scan_and_duration_filter(corpus, tmp_path):
    items = cfg_for(corpus).items()
    assert [it.path.name for it in items] == [f"utt{k}.wav" for k in (0, 2, 4, 6, 8, 1, 3, 5, 7, 9)]
    assert all(it.speaker is None and it.duration_s is None for it in items)
    (tmp_path / "m.tsv").write_text("path\tduration_s\naudio/spk0/utt0.wav\t0.3\naudio/spk1/utt9.wav\t1.2\n")
    assert [it.path.name for it in cfg_for(tmp_path / "m.tsv", min_seconds=None, segment_seconds=1).items()] \
        == ["utt9.wav"]
    assert len(cfg_for(tmp_path / "m.tsv", corpus).items()) == 12


def test_crop_shape_and_zero_padding(tmp_path):
    write_tone(tmp_path / "short.wav", 0.5)
    write_tone(tmp_path / "long.wav", 3.0)
    ds = CropDataset([Item(tmp_path / "short.wav"), Item(tmp_path / "long.wav")], SR, SR, seed=0)
    short, long = ds[0], ds[1]
    assert short.shape == long.shape == (1, SR) and short.dtype == torch.float32
    assert short[0, : SR // 2].abs().max() > 0.05 and short[0, SR // 2 :].abs().max() == 0
    assert long[0, -100:].abs().max() > 0
    full = sf.read(tmp_path / "short.wav", dtype="float32")[0]
    torch.testing.assert_close(short[0, : SR // 2], torch.from_numpy(full))  # 16-bit audio comes back exactly


def test_crops_are_a_function_of_seed_epoch_and_index(tmp_path):
    items = [Item(write_tone(tmp_path / f"{k}.wav", 2.0, freq=300 + 100 * k)) for k in range(2)]
    a, b = CropDataset(items, SR, 4000, seed=5), CropDataset(items, SR, 4000, seed=5, cache=False)
    torch.testing.assert_close(a[1], b[1])
    b.set_epoch(3)
    torch.testing.assert_close(a[(3, 1)], b[1])
    assert not torch.equal(a[(0, 1)], a[(1, 1)])
    assert not torch.equal(a[1], CropDataset(items, SR, 4000, seed=6)[1])
    assert epoch_order(10, 5, 0) == epoch_order(10, 5, 0) != epoch_order(10, 5, 1)
    assert sorted(epoch_order(10, 5, 0)) == list(range(10))
    with pytest.raises(IndexError):
        a[2]


def test_crops_by_duration_weigh_files_by_their_hours_and_read_each_once(tmp_path, monkeypatch):
    write_tone(tmp_path / "long.wav", 2.0)
    write_tone(tmp_path / "short.wav", 0.5)
    write_tone(tmp_path / "unknown.wav", 0.5)
    (tmp_path / "m.tsv").write_text("path\tduration_s\nlong.wav\t2.0\nshort.wav\t0.5\nunknown.wav\t\n")
    ds = make_dataset(cfg_for(tmp_path / "m.tsv", crops_by_duration=True), seed=0)
    assert [it.path.name for it in ds.items] == ["long.wav"] * 8 + ["short.wav"] * 2 + ["unknown.wav"]  # 0.25 s crops
    assert len(make_dataset(cfg_for(tmp_path / "m.tsv"), seed=0)) == 3  # default: one crop per file
    reads = []
    real_load = data.load
    monkeypatch.setattr(data, "load", lambda path, sr: reads.append(path.name) or real_load(path, sr))
    crops = [ds[i] for i in range(8)]
    assert reads == ["long.wav"]  # one cached copy serves all eight crops
    assert len({c.numpy().tobytes() for c in crops}) == 8  # each at its own offset


def test_resampling_8k_to_16k(tmp_path):
    write_tone(tmp_path / "8k.wav", 1.0, sample_rate=8000, freq=500)
    ds = CropDataset([Item(tmp_path / "8k.wav")], SR, 2 * SR)
    wav = ds.waveform(0)
    assert wav.dtype == np.int16 and len(wav) == SR
    spectrum = np.abs(np.fft.rfft(wav.astype(np.float32)))
    assert abs(np.argmax(spectrum) * SR / len(wav) - 500) < 2  # the tone stays at 500 Hz
    assert ds[0][0, SR:].abs().max() == 0


def test_bad_file_is_logged_once_and_replaced(tmp_path, caplog):
    (tmp_path / "bad.wav").write_bytes(b"RIFF not really a wave file")
    good = write_tone(tmp_path / "good.wav", 0.5)
    ds = CropDataset([Item(tmp_path / "bad.wav"), Item(good)], SR, 4000)
    with caplog.at_level(logging.WARNING, logger="speechtok.training.data"):
        first, again = ds[0], ds[0]
    assert first.shape == (1, 4000) and first.abs().max() > 0
    torch.testing.assert_close(first, again)
    warnings = [r for r in caplog.records if "bad.wav" in r.getMessage()]
    assert len(warnings) == 1 and "unreadable" in warnings[0].getMessage()
    with pytest.raises(AudioError, match="none of the 1 training items is readable"):
        CropDataset([Item(tmp_path / "bad.wav")], SR, 4000)[0]


# -- loaders and streams ---------------------------------------------------------------------------------------


def test_loader_shapes_and_stream_equals_epochs(corpus):
    cfg = cfg_for(corpus)
    loader = make_loader(cfg, batch_size=3, seed=1, epoch=1)
    epoch1 = list(loader)
    assert len(loader) == len(epoch1) == 3 and all(b.shape == (3, 1, 4000) for b in epoch1)
    stream = batches(cfg, batch_size=3, seed=1)
    seen = [next(stream) for _ in range(6)]
    for got, want in zip(seen[3:], epoch1):
        torch.testing.assert_close(got, want)


def test_resume_at_step_k_matches_uninterrupted_stream(corpus):
    cfg = cfg_for(corpus)
    ds = make_dataset(cfg, seed=3)
    stream = batches(cfg, batch_size=4, seed=3, dataset=ds)  # 10 items: 2 batches per epoch
    reference = [next(stream) for _ in range(7)]
    for k in (0, 1, 2, 5, 6):
        resumed = batches(cfg, batch_size=4, seed=3, start_step=k)  # a fresh dataset, as after a restart
        torch.testing.assert_close(next(resumed), reference[k])
        if k + 1 < len(reference):
            torch.testing.assert_close(next(resumed), reference[k + 1])


def test_resume_reads_no_skipped_audio(corpus, monkeypatch):
    reads: list[Path] = []
    real_load = data.load
    monkeypatch.setattr(data, "load", lambda path, sr: reads.append(Path(path)) or real_load(path, sr))
    stream = batches(cfg_for(corpus), batch_size=2, seed=0, start_step=1003)  # epoch 200, batch 3
    next(stream)
    assert len(reads) == 2


def test_workers_give_the_same_batches(corpus):
    one = list(make_loader(cfg_for(corpus), batch_size=5, seed=2))
    two = list(make_loader(cfg_for(corpus, num_workers=2), batch_size=5, seed=2))
    assert len(one) == len(two) == 2
    for a, b in zip(one, two):
        torch.testing.assert_close(a, b)


def test_no_global_rng_is_used(corpus):
    torch.manual_seed(0)
    before = torch.get_rng_state()
    next(batches(cfg_for(corpus), batch_size=2, seed=0))
    list(make_loader(cfg_for(corpus), batch_size=2, seed=0))
    assert torch.equal(before, torch.get_rng_state())


def test_ranks_share_no_items(corpus):
    keys = [next(iter(data.EpochBatches(10, 2, seed=0, rank=r, world_size=2))) for r in range(2)]
    assert not {i for _, i in keys[0]} & {i for _, i in keys[1]}
    assert data.EpochBatches(10, 2, seed=0, world_size=2).batches_per_epoch == 2
    with pytest.raises(ValueError, match="10 items make no batch of 11"):
        batches(cfg_for(corpus), batch_size=11, seed=0)


def test_config_round_trips_json():
    cfg = DataConfig(sources=("a.tsv", "dir"), splits=("train",), segment_seconds=0.5)
    back = from_dict(DataConfig, json.loads(json.dumps(dataclasses.asdict(cfg))))
    assert back == cfg and back.segment_samples == 8000 and back.min_duration_s == 0.5
    assert DataConfig(sources="one.tsv").sources == ("one.tsv",)


# -- packed crops ----------------------------------------------------------------------------------------------


def test_pack_crops_round_trip(corpus, tmp_path):
    cfg = cfg_for(corpus)
    out = pack_crops(cfg, tmp_path / "crops.npy", num_crops=13, seed=4)
    array = np.load(out)
    assert array.shape == (13, 4000) and array.dtype == np.int16
    assert sorted(p.name for p in tmp_path.iterdir()) == ["audio", "crops.npy"]  # no temp file left
    source = make_dataset(cfg, seed=4)
    order0, order1 = epoch_order(10, 4, 0), epoch_order(10, 4, 1)
    torch.testing.assert_close(torch.from_numpy(array[0] / 32768.0).float()[None], source[(0, order0[0])])
    torch.testing.assert_close(torch.from_numpy(array[12] / 32768.0).float()[None], source[(1, order1[2])])

    packed = PackedCropDataset(out)
    assert len(packed) == 13 and packed[12].shape == (1, 4000)
    torch.testing.assert_close(packed[5], torch.from_numpy(array[5] / 32768.0).float()[None])
    sub = PackedCropDataset(out, segment_samples=1000, seed=0)
    assert sub[(0, 3)].shape == (1, 1000) and not torch.equal(sub[(0, 3)], sub[(1, 3)])
    with pytest.raises(ValueError, match="cannot give 8000-sample segments"):
        PackedCropDataset(out, segment_samples=8000)

    stream = batches(cfg_for(out), batch_size=4, seed=0, start_step=3)  # a .npy source streams packed crops
    assert next(stream).shape == (4, 1, 4000)
    np.save(tmp_path / "floats.npy", np.zeros((2, 3), np.float32))
    with pytest.raises(ValueError, match="expected int16"):
        PackedCropDataset(tmp_path / "floats.npy")
