"""The fault matrix of issue 36: each case once lost data, gave a silently wrong result or a traceback. Each now
gets a one-line error and a non-zero exit, leaves nothing half-written and clobbers nothing."""

from __future__ import annotations

import json
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest
import yaml
from safetensors.torch import load_file, save_file

import speechtok
from speechtok import Codes
from speechtok.codes import sidecar
from speechtok.errors import CheckpointError, CodesError
from speechtok.pretokenize import FAILURES_NAME, PretokenizeError, pretokenize
from speechtok.training.recipe import recipe_from_dict
from speechtok.training.trainer import Trainer, load_run

from .test_bad_inputs import cli, evil_pt, one_line, snapshot, warnings_of, wav_file
from .test_training import tiny_recipe

pytestmark = pytest.mark.usefixtures("one_thread")


def edited_ckpt(tiny_ckpt: Path, where: Path, edit) -> Path:
    ckpt = Path(shutil.copytree(tiny_ckpt, where))
    meta = json.loads((ckpt / "config.json").read_text())
    edit(meta)
    (ckpt / "config.json").write_text(json.dumps(meta))
    return ckpt


def edited_weights(tiny_ckpt: Path, where: Path, edit) -> Path:
    ckpt = Path(shutil.copytree(tiny_ckpt, where))
    state = load_file(ckpt / "model.safetensors")
    edit(state)
    save_file(state, str(ckpt / "model.safetensors"), metadata={"format": "pt"})
    return ckpt


# -- checkpoints (A7, A13, B17) ------------------------------------------------------------------------------


def test_an_edited_config_is_refused(tiny_ckpt, tmp_path):
    def to_8k(meta):
        meta["config"]["sample_rate"] = 8000

    ckpt = edited_ckpt(tiny_ckpt, tmp_path / "ckpt", to_8k)
    with pytest.raises(CheckpointError, match="config.json: the config was edited"):
        speechtok.load(ckpt)


@pytest.mark.parametrize("size", [2**26, 2**40])
def test_huge_dims_are_refused_before_allocating(tiny_ckpt, tmp_path, size):
    def huge(meta):
        meta["config"]["quantizer"]["codebook_size"] = size
        meta.pop("config_hash")  # not even the stored hash is there to catch it

    ckpt = edited_ckpt(tiny_ckpt, tmp_path / "ckpt", huge)
    with pytest.raises(CheckpointError, match=rf"tensor quantizer\..* is \[1, 64(, 8)?\] in the weights but "
                                              rf"\[1, {size}(, 8)?\] in config.json"):
        speechtok.load(ckpt)


def test_an_integer_tensor_in_a_float_slot_is_refused(tiny_ckpt, tmp_path):
    def to_int(state):
        key = next(k for k, v in state.items() if v.is_floating_point())
        state[key] = state[key].long()

    ckpt = edited_weights(tiny_ckpt, tmp_path / "ckpt", to_int)
    with pytest.raises(CheckpointError, match="is I64 in the weights; config.json needs float32"):
        speechtok.load(ckpt)


@pytest.mark.parametrize("shard", ["../outside.safetensors", "/etc/passwd", "sub/model.safetensors"])
def test_a_shard_index_cannot_point_outside_the_checkpoint(tiny_ckpt, tmp_path, shard):
    ckpt = Path(shutil.copytree(tiny_ckpt, tmp_path / "ckpt"))
    keys = load_file(ckpt / "model.safetensors").keys()
    (ckpt / "model.safetensors.index.json").write_text(json.dumps({"weight_map": {k: shard for k in keys}}))
    with pytest.raises(CheckpointError, match="is not a file name inside the checkpoint directory"):
        speechtok.load(ckpt)


def test_a_bad_checkpoint_is_one_line_at_the_cli(tiny_ckpt, tmp_path, caplog):
    ckpt = edited_ckpt(tiny_ckpt, tmp_path / "ckpt", lambda meta: meta["config"].update(sample_rate=8000))
    wav = wav_file(tmp_path / "a.wav")
    before = snapshot(tmp_path)
    code, errors = cli(caplog, "encode", wav, "-o", tmp_path / "a.npy", "--model", ckpt)
    assert code == 1
    one_line(errors, "config.json", "edited")
    assert snapshot(tmp_path) == before


# -- codes files (A1, A2, A3, A6, A11, B16) ------------------------------------------------------------------


def test_decode_does_not_replace_recordings(tiny_ckpt, tmp_path, caplog):
    recordings = tmp_path / "recordings"
    recordings.mkdir()
    wav_file(recordings / "a.wav")
    codes_dir = tmp_path / "codes"
    assert cli(caplog, "encode", recordings, "-o", codes_dir, "--model", tiny_ckpt)[0] == 0
    before = snapshot(recordings)
    code, errors = cli(caplog, "decode", codes_dir, "-o", recordings)
    assert code == 1
    one_line(errors, recordings / "a.wav", "not written by speechtok", "--overwrite")
    assert snapshot(recordings) == before
    # decoded files of an earlier run are replaced without asking; --overwrite replaces recordings too
    out = tmp_path / "decoded"
    assert cli(caplog, "decode", codes_dir, "-o", out)[0] == 0
    assert cli(caplog, "decode", codes_dir, "-o", out)[0] == 0
    assert cli(caplog, "decode", codes_dir, "-o", recordings, "--overwrite")[0] == 0
    assert snapshot(recordings) != before


def test_codes_of_other_weights_are_refused(tiny_ckpt, tmp_path, caplog):
    wav = wav_file(tmp_path / "a.wav")
    ckpt = Path(shutil.copytree(tiny_ckpt, tmp_path / "ckpt"))
    assert cli(caplog, "encode", wav, "-o", tmp_path / "a.npy", "--model", ckpt)[0] == 0

    def retrained(state):  # the same architecture, other weights: a re-export after more training
        key = next(k for k in sorted(state) if k.startswith("quantizer") and k.endswith("embed"))
        state[key] = state[key] + 0.1

    shutil.rmtree(ckpt)
    edited_weights(tiny_ckpt, ckpt, retrained)
    code, errors = cli(caplog, "decode", tmp_path / "a.npy", "-o", tmp_path / "a.decoded.wav")
    assert code == 1
    one_line(errors, "a.npy", "other weights")
    assert not (tmp_path / "a.decoded.wav").exists()


def test_a_sidecar_of_other_codes_is_refused(tok, tmp_path):
    wav = wav_file(tmp_path / "a.wav", seconds=1.0)
    tok.encode_file(wav).save(tmp_path / "old.npy")
    tok.encode_file(wav_file(tmp_path / "b.wav", seconds=1.0, gain=0.3)).save(tmp_path / "new.npy")
    # a kill between the two renames of a re-encode: the new sidecar beside the old codes
    shutil.copy(tmp_path / "new.npy.json", tmp_path / "old.npy.json")
    with pytest.raises(CodesError, match="old.npy: its metadata belongs to other codes"):
        Codes.load(tmp_path / "old.npy")


def test_format_and_suffix_must_agree(tiny_ckpt, tok, tmp_path, caplog):
    wav = wav_file(tmp_path / "a.wav")
    before = snapshot(tmp_path)
    code, errors = cli(caplog, "encode", wav, "-o", tmp_path / "x.pt", "--format", "safetensors", "--model", tiny_ckpt)
    assert code == 2
    one_line(errors, "x.pt", "--format safetensors", "x.safetensors")
    assert snapshot(tmp_path) == before
    with pytest.raises(CodesError, match="must end in .safetensors"):
        tok.encode_file(wav).save(tmp_path / "x.pt", "safetensors")


@pytest.mark.parametrize("edit, words", [
    (lambda m: m.pop("sample_rate"), "sample_rate must be a positive integer, got None"),
    (lambda m: m.update(sample_rate="16k"), "sample_rate must be a positive integer, got '16k'"),
    (lambda m: m.update(hop_length=0), "hop_length must be a positive integer, got 0"),
    (lambda m: m.update(num_samples=100), "num_samples 100 (0.006 s) does not fit 50 frames"),
    (lambda m: m.update(tokenizer=["x"]), "tokenizer must be an object"),
    (lambda m: [], "a JSON object expected, got list"),
], ids=["no-rate", "rate-str", "hop-0", "num-samples", "tokenizer-list", "list"])
def test_bad_sidecars_are_one_line_errors(tok, tmp_path, caplog, edit, words):
    path = tok.encode_file(wav_file(tmp_path / "a.wav")).save(tmp_path / "a.npy")
    meta = json.loads(sidecar(path).read_text())
    replaced = edit(meta)
    sidecar(path).write_text(json.dumps(replaced if isinstance(replaced, list) else meta))
    for command in ("decode", "info"):
        code, errors = cli(caplog, command, path)
        assert code == 1, command
        one_line(errors, "a.npy", words)


# -- training runs (A10, A12, B14, B15) ----------------------------------------------------------------------


def test_a_resume_with_another_architecture_or_batch_is_refused_and_changes_nothing(corpus, tmp_path, caplog):
    run = tmp_path / "run"
    Trainer(recipe_from_dict(tiny_recipe(corpus, steps=2)), run).fit()
    before = snapshot(run)
    for override in ("model.decoder.num_layers=4", "train.batch_size=4"):
        recipe = tmp_path / "tiny.yaml"
        recipe.write_text(yaml.safe_dump(tiny_recipe(corpus, steps=2)))
        code, errors = cli(caplog, "train", recipe, override, "--run-dir", run)
        assert code == 1
        one_line(errors, run, "cannot resume with another", override.split("=")[0])
        assert snapshot(run) == before
    # what a resume may change: how long it runs
    Trainer(recipe_from_dict(tiny_recipe(corpus, steps=3)), run).fit()
    assert cli(caplog, "export", run, "-o", tmp_path / "ckpt")[0] == 0


def test_a_resume_logs_each_step_once_and_its_seconds_go_on(corpus, tmp_path):
    run = tmp_path / "run"
    Trainer(recipe_from_dict(tiny_recipe(corpus, steps=3, checkpoint_every=2)), run).fit()
    (run / "checkpoints" / "step-00000003.pt").unlink()  # killed after logging step 3, before its checkpoint
    stale = run / "checkpoints" / ".step-00000004.pt.x1y2.tmp"
    stale.write_bytes(b"\0" * 1000)  # a checkpoint write cut by the kill
    Trainer(recipe_from_dict(tiny_recipe(corpus, steps=4, checkpoint_every=2)), run).fit()
    rows = [r.split(",") for r in (run / "log.csv").read_text().splitlines()[1:]]
    assert [int(r[0]) for r in rows] == [1, 2, 3, 4]
    seconds = [float(r[1]) for r in rows]
    assert seconds == sorted(seconds)
    assert not stale.exists()


def test_a_cut_latest_checkpoint_falls_back_to_the_previous_one(corpus, tmp_path, caplog):
    run = tmp_path / "run"
    Trainer(recipe_from_dict(tiny_recipe(corpus, steps=4, checkpoint_every=2)), run).fit()
    latest = run / "checkpoints" / "step-00000004.pt"
    latest.write_bytes(latest.read_bytes()[:5000])
    trainer = load_run(run)
    assert trainer.step == 2
    assert len(_lines(run / "log.csv")) == 4  # exporting changes nothing in the run
    assert any("step-00000004.pt: unreadable training checkpoint" in m for m in warnings_of(caplog))
    assert cli(caplog, "export", run, "-o", tmp_path / "ckpt")[0] == 0


def test_a_pickled_training_checkpoint_is_refused_in_one_line(corpus, tmp_path, caplog):
    run = tmp_path / "run"
    Trainer(recipe_from_dict(tiny_recipe(corpus, steps=2)), run).fit()
    marker = tmp_path / "ran"
    for path in (run / "checkpoints").glob("step-*.pt"):
        evil_pt(path, marker, codes_file=False)
    code, errors = cli(caplog, "export", run, "-o", tmp_path / "ckpt")
    assert code == 1
    one_line(errors, "none of the", "readable")
    assert any("full unpickle" in m for m in warnings_of(caplog)) and not marker.exists()


def test_train_takes_overrides_after_options(corpus, tmp_path, caplog):
    recipe = tmp_path / "tiny.yaml"
    recipe.write_text(yaml.safe_dump(tiny_recipe(corpus, steps=1)))
    assert cli(caplog, "train", recipe, "--run-dir", tmp_path / "run", "train.steps=2")[0] == 0
    assert load_run(tmp_path / "run").step == 2


# -- inputs and pretokenize (A4, A5, A8, A9) -----------------------------------------------------------------


def test_a_symlinked_folder_is_followed_once(tiny_ckpt, tmp_path, caplog):
    real = tmp_path / "elsewhere"
    real.mkdir()
    wav_file(real / "linked.wav")
    tree = tmp_path / "tree"
    tree.mkdir()
    wav_file(tree / "own.wav")
    (tree / "more").symlink_to(real, target_is_directory=True)
    (tree / "loop").symlink_to(tree, target_is_directory=True)  # a link back up: read once, no loop
    out = tmp_path / "codes"
    assert cli(caplog, "encode", tree, "-o", out, "--model", tiny_ckpt)[0] == 0
    assert sorted(p.relative_to(out).as_posix() for p in out.rglob("*.npy")) == ["more/linked.npy", "own.npy"]
    pretokenize(tiny_ckpt, [tree], tmp_path / "tokens", progress=False, num_workers=0)
    assert sorted(read_ids(tmp_path / "tokens")) == ["more/linked", "own"]


def read_ids(out: Path) -> list[str]:
    import pyarrow.dataset

    return [r["id"] for r in pyarrow.dataset.dataset(out, format="parquet").to_table().to_pylist()]


def test_pretokenize_uses_a_manifests_ids_and_refuses_duplicates(tiny_ckpt, tmp_path):
    for name in ("a.wav", "b.wav"):
        wav_file(tmp_path / name, 0.5)
    (tmp_path / "m.jsonl").write_text('{"path": "a.wav", "id": "utt-1"}\n{"path": "b.wav", "id": "utt-2"}\n')
    pretokenize(tiny_ckpt, [tmp_path / "m.jsonl"], tmp_path / "tokens", progress=False, num_workers=0)
    assert sorted(read_ids(tmp_path / "tokens")) == ["utt-1", "utt-2"]
    (tmp_path / "dup.jsonl").write_text('{"path": "a.wav", "id": "x"}\n{"path": "b.wav", "id": "x"}\n')
    with pytest.raises(PretokenizeError, match="id 'x' names two files"):
        pretokenize(tiny_ckpt, [tmp_path / "dup.jsonl"], tmp_path / "tokens2", progress=False, num_workers=0)


def test_failures_of_odd_file_names_stay_one_row_each(tiny_ckpt, tmp_path):
    src = tmp_path / "src"
    src.mkdir()
    for name in ("tab\there.wav", "new\nline.wav"):
        (src / name).write_bytes(b"RIFF\x00\x00\x00\x00WAVEnot really")
    wav_file(src / "good.wav", 0.5)
    out = tmp_path / "tokens"
    result = pretokenize(tiny_ckpt, [src], out, progress=False, num_workers=0)
    assert len(result.failures) == 2
    lines = (out / FAILURES_NAME).read_text().split("\n")
    rows = [line.split("\t") for line in lines[1:] if line]
    assert len(rows) == 2 and all(len(r) == 3 for r in rows)
    assert sorted(r[0] for r in rows) == ["new\\nline", "tab\\there"]


def test_a_shard_is_done_only_when_its_failures_name_all_its_items(tiny_ckpt, tmp_path):
    """A failing file named with a newline once counted as two failures: its shard passed for done on resume,
    and the shard's good files were never encoded."""
    src = tmp_path / "src"
    src.mkdir()
    (src / "bad\nname.wav").write_bytes(b"RIFF\x00\x00\x00\x00WAVEnot really")
    wav_file(src / "good.wav", 0.5)
    out = tmp_path / "tokens"
    pretokenize(tiny_ckpt, [src], out, progress=False, num_workers=0)
    for shard in out.glob("part-*.parquet"):  # a kill before the shard was written; its failures were
        shard.unlink()
    pretokenize(tiny_ckpt, [src], out, progress=False, num_workers=0)
    assert read_ids(out) == ["good"]


# -- signals (C23) -------------------------------------------------------------------------------------------


def test_sigterm_checkpoints_a_training_run_and_says_so(corpus, tmp_path):
    recipe = tmp_path / "tiny.yaml"
    recipe.write_text(yaml.safe_dump(tiny_recipe(corpus, steps=100000, checkpoint_every=100000)))
    run = tmp_path / "run"
    proc = subprocess.Popen([sys.executable, "-m", "speechtok.cli", "train", str(recipe), "--run-dir", str(run),
                             "train.threads=1"], stderr=subprocess.PIPE, text=True)
    stderr = _sigterm_once(proc, lambda: len(_lines(run / "log.csv")) >= 3)
    assert proc.returncode == 143, stderr
    step = int(_lines(run / "log.csv")[-1].split(",")[0])
    assert (run / "checkpoints" / f"step-{step:08d}.pt").is_file()
    assert f"stopped by SIGTERM at step {step}, checkpoint written" in stderr and "Traceback" not in stderr


def _sigterm_once(proc: subprocess.Popen, ready, seconds: float = 60) -> str:
    """SIGTERM `proc` once `ready()` (or after `seconds`); its stderr."""
    try:
        deadline = time.time() + seconds
        while time.time() < deadline and not ready():
            time.sleep(0.05)
        proc.send_signal(signal.SIGTERM)
        return proc.communicate(timeout=60)[1]
    finally:
        proc.kill()


def test_sigterm_ends_encode_with_one_line_and_no_temp_files(tiny_ckpt, tmp_path):
    src = tmp_path / "src"
    src.mkdir()
    for k in range(200):
        wav_file(src / f"{k:03d}.wav", 1.0)
    out = tmp_path / "codes"
    proc = subprocess.Popen([sys.executable, "-m", "speechtok.cli", "encode", str(src), "-o", str(out), "--model",
                             str(tiny_ckpt)], stderr=subprocess.PIPE, text=True)
    stderr = _sigterm_once(proc, lambda: len(list(out.glob("*.npy.json"))) >= 3)
    assert proc.returncode == 143, stderr
    assert "terminated (SIGTERM)" in stderr and "Traceback" not in stderr
    assert not list(out.glob(".*.tmp"))
    for codes in out.glob("*.npy"):  # every file written is whole
        Codes.load(codes)


def _lines(path: Path) -> list[str]:
    return path.read_text().splitlines()[1:] if path.is_file() else []


# -- messages (C20, C21) -------------------------------------------------------------------------------------


def test_info_of_a_plugin_spec_with_a_codes_suffix_loads_it(tmp_path, caplog):
    weights = tmp_path / "weights.pt"
    weights.write_bytes(b"not a checkpoint")
    code, errors = cli(caplog, "info", f"dac:{weights}")
    assert code == 1
    assert "no such file" not in one_line(errors, "weights.pt")


def test_train_names_its_own_flag_for_missing_files(tmp_path, caplog):
    (tmp_path / "m.tsv").write_text("path\nnot/there.wav\n")
    code, errors = cli(caplog, "train", "codec", f"data.sources=[{tmp_path / 'm.tsv'}]", "data.splits=[]",
                       "--run-dir", tmp_path / "run")
    assert code == 1
    line = one_line(errors, "not/there.wav", "data.root=")
    assert "skip_missing" not in line


@pytest.mark.parametrize("edit, words", [
    (lambda m: m.pop("config"), "no 'config' object"),
    (lambda m: m["config"]["quantizer"].update(dim="8"), "RVQConfig.dim must be int, got '8'"),
    (lambda m: m["config"].pop("encoder"), "config has no 'encoder' section"),
], ids=["no-config", "string-dim", "missing-section"])
def test_config_messages_say_what_is_wrong(tiny_ckpt, tmp_path, edit, words):
    ckpt = edited_ckpt(tiny_ckpt, tmp_path / "ckpt", edit)
    with pytest.raises(CheckpointError, match=words.replace("(", r"\(")):
        speechtok.load(ckpt)


def test_a_cut_flac_is_truncated_and_allow_truncated_reads_what_decodes(tiny_ckpt, tmp_path, caplog):
    import soundfile as sf

    from .conftest import speech

    sf.write(tmp_path / "full.flac", speech(4.0).numpy(), 16000)
    data = (tmp_path / "full.flac").read_bytes()
    (tmp_path / "cut.flac").write_bytes(data[: len(data) // 2])
    code, errors = cli(caplog, "encode", tmp_path / "cut.flac", "-o", tmp_path / "cut.npy", "--model", tiny_ckpt)
    assert code == 1
    one_line(errors, "cut.flac", "truncated", "--allow-truncated")
    code, _ = cli(caplog, "encode", tmp_path / "cut.flac", "-o", tmp_path / "cut.npy", "--model", tiny_ckpt,
                  "--allow-truncated")
    assert code == 0
    frames = Codes.load(tmp_path / "cut.npy").codes.shape[-1]
    assert 10 < frames < 200  # some of the 4 s, not all


def test_a_cut_pt_codes_file_says_truncated(tok, tmp_path):
    path = tok.encode_file(wav_file(tmp_path / "a.wav")).save(tmp_path / "a.pt")
    path.write_bytes(path.read_bytes()[:300])
    with pytest.raises(CodesError, match="a.pt: corrupt or truncated pt codes file"):
        Codes.load(path)


def test_two_runs_of_one_part_are_refused(tiny_ckpt, tmp_path):
    import fcntl

    wav_file(tmp_path / "a.wav", 0.5)
    out = tmp_path / "tokens"
    out.mkdir()
    with open(out / ".part-00000.lock", "a") as held:  # as another run of part 0 holds it
        fcntl.flock(held, fcntl.LOCK_EX)
        with pytest.raises(PretokenizeError, match="part 0 of 1 is being written by another pretokenize run"):
            pretokenize(tiny_ckpt, [tmp_path / "a.wav"], out, progress=False, num_workers=0)
    pretokenize(tiny_ckpt, [tmp_path / "a.wav"], out, progress=False, num_workers=0)
    assert read_ids(out) == ["a"]


def test_a_full_disk_is_named_and_clobbers_nothing(tok, tmp_path, caplog, monkeypatch):
    import soundfile as sf

    from speechtok import audio

    wav = wav_file(tmp_path / "a.wav")
    codes = tok.encode_file(wav)
    codes.save(tmp_path / "a.npy")
    before = snapshot(tmp_path)

    def full(*args, **kwargs):
        raise OSError(28, "No space left on device")

    monkeypatch.setattr(np, "save", full)  # the codes fail to write after the sidecar's temp is written
    with pytest.raises(OSError, match="No space left"):
        tok.encode_file(wav_file(tmp_path / "b.wav", gain=0.5)).save(tmp_path / "a.npy")
    assert snapshot(tmp_path) == {**before, "b.wav": (tmp_path / "b.wav").read_bytes()}  # the old pair intact
    Codes.load(tmp_path / "a.npy")

    def system_error(self, data):
        raise sf.LibsndfileError(2)

    monkeypatch.setattr(sf.SoundFile, "write", system_error)
    monkeypatch.setattr(audio.shutil, "disk_usage", lambda path: shutil._ntuple_diskusage(1 << 30, 1 << 30, 0))
    code, errors = cli(caplog, "decode", tmp_path / "a.npy", "-o", tmp_path / "out.wav")
    assert code == 1
    one_line(errors, "out.wav", "no space left on the device")
    assert not (tmp_path / "out.wav").exists() and not list(tmp_path.glob(".*.tmp"))


def test_encode_removes_the_temp_files_of_a_killed_run(tiny_ckpt, tmp_path, caplog):
    wav = wav_file(tmp_path / "a.wav")
    out = tmp_path / "codes"
    out.mkdir()
    stale = [out / ".a.npy.k1ll3d.tmp", out / ".a.npy.json.k1ll3d.tmp"]
    for path in stale:
        path.write_bytes(b"\0" * 100)
    other = out / ".notes.txt.abc.tmp"  # not a file this run writes: left alone
    other.write_text("x")
    assert cli(caplog, "encode", wav, "-o", out, "--model", tiny_ckpt)[0] == 0
    assert not any(p.exists() for p in stale) and other.exists()


def test_an_encodec_folder_with_a_pickled_bin_is_refused_in_one_line(tmp_path, caplog):
    pytest.importorskip("transformers")
    marker = tmp_path / "ran"
    folder = tmp_path / "encodec_24khz"
    folder.mkdir()
    (folder / "config.json").write_text(json.dumps({"model_type": "encodec"}))
    evil_pt(folder / "pytorch_model.bin", marker, codes_file=False)
    code, errors = cli(caplog, "info", f"encodec:{folder}")
    assert code == 1
    one_line(errors, "encodec_24khz", "full unpickle")
    assert not marker.exists()


def test_a_newline_in_a_file_name_stays_on_its_log_line(tiny_ckpt, tmp_path):
    src = tmp_path / "src"
    src.mkdir()
    (src / "bad\nname.wav").write_bytes(b"RIFF\x00\x00\x00\x00WAVEnot really")
    wav_file(src / "good.wav", 0.5)
    res = subprocess.run([sys.executable, "-m", "speechtok.cli", "encode", str(src), "-o", str(tmp_path / "out"),
                          "--model", str(tiny_ckpt)], capture_output=True, text=True, timeout=120)
    assert res.returncode == 1
    bad = [line for line in res.stderr.splitlines() if "name.wav" in line]
    assert len(bad) == 1 and "bad\\nname.wav" in bad[0], res.stderr
    assert all(line.startswith("speechtok: ") for line in res.stderr.splitlines() if line.strip()), res.stderr
