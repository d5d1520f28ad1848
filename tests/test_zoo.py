"""The model zoo, tested like downloads that really happen: a local HTTP server on 127.0.0.1 serves tiny
random-weight checkpoints in the official layouts, as a release URL and as the Hugging Face hub's resolve
endpoint (`HF_ENDPOINT` pointed at it)."""

from __future__ import annotations

import hashlib
import http.server
import importlib.util
import json
import os
import shutil
import subprocess
import sys
import threading
from pathlib import Path

import pytest
import torch

import speechtok
from speechtok.adapters import zoo
from speechtok.errors import CheckpointError

COMMIT = "0123456789abcdef0123456789abcdef01234567"


class Files(http.server.ThreadingHTTPServer):
    """Serves `files` {url path: bytes}; `/{repo}/resolve/{revision}/{file}` answers as the hub does (ETag,
    X-Repo-Commit, Content-Length). `cut` {path: n} sends n bytes of a file and closes (a dropped connection)."""

    def __init__(self):
        super().__init__(("127.0.0.1", 0), _Handler)
        self.files: dict[str, bytes] = {}
        self.cut: dict[str, int] = {}
        self.gated: set[str] = set()  # repositories that answer as the hub does before their licence is accepted
        self.requests: list[str] = []

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.server_address[1]}"

    def hub(self, repo: str, folder: Path) -> None:
        for f in folder.rglob("*"):
            if f.is_file():
                self.files[f"/{repo}/resolve/main/{f.relative_to(folder).as_posix()}"] = f.read_bytes()


class _Handler(http.server.BaseHTTPRequestHandler):
    def do_HEAD(self):
        self._answer(body=False)

    def do_GET(self):
        self._answer(body=True)

    def _answer(self, body: bool) -> None:
        server: Files = self.server
        server.requests.append(f"{self.command} {self.path}")
        data = server.files.get(self.path.split("?")[0])
        if any(self.path.startswith(f"/{repo}/") for repo in server.gated):
            self.send_response(401)
            self.send_header("X-Error-Code", "GatedRepo")
            self.send_header("X-Error-Message", "Access to this model is restricted. You must be authenticated.")
            self.send_header("Content-Length", "0")
            self.end_headers()
            return
        if data is None:
            self.send_response(404)
            self.send_header("Content-Length", "0")
            self.end_headers()
            return
        self.send_response(200)
        self.send_header("Content-Length", str(len(data)))
        self.send_header("ETag", f'"{hashlib.sha256(data).hexdigest()}"')
        self.send_header("X-Repo-Commit", COMMIT)
        self.end_headers()
        if body:
            self.wfile.write(data[: server.cut.get(self.path, len(data))])

    def log_message(self, *args) -> None:
        pass


@pytest.fixture()
def server():
    srv = Files()
    thread = threading.Thread(target=srv.serve_forever, daemon=True)
    thread.start()
    yield srv
    srv.shutdown()


# -- a release file at a URL (DAC) ---------------------------------------------------------------------------


@pytest.fixture()
def dac_release(server, tmp_path, monkeypatch):
    """The dac-16khz entry pointed at a tiny random DAC in the release's layout, served locally."""
    from .test_adapters import _dac

    _, file = _dac(tmp_path)
    data = file.read_bytes()
    server.files["/release/weights_16khz.pth"] = data
    entry = zoo.ZooEntry(**{**zoo.ZOO["dac-16khz"].__dict__, "url": f"{server.url}/release/weights_16khz.pth",
                            "sha256": hashlib.sha256(data).hexdigest()})
    monkeypatch.setitem(zoo.ZOO, "dac-16khz", entry)
    monkeypatch.setenv("SPEECHTOK_CACHE", str(tmp_path / "cache"))
    monkeypatch.delenv("HF_HUB_OFFLINE", raising=False)
    return file, tmp_path / "cache" / "zoo" / "dac-16khz" / "weights_16khz.pth"


def test_a_release_is_downloaded_once_and_loads_as_the_local_file(server, dac_release):
    pytest.importorskip("dac")
    local, cached = dac_release
    tok = speechtok.load("dac-16khz")
    assert cached.read_bytes() == local.read_bytes() and len(server.requests) == 1
    again = speechtok.load("dac-16khz")
    assert len(server.requests) == 1  # the cache answered
    wav = torch.randn(1, 8000) * 0.1
    assert torch.equal(again.encode(wav, 16000).codes, speechtok.load(f"dac:{local}").encode(wav, 16000).codes)
    assert tok.source == "dac-16khz"


@pytest.mark.parametrize("fault", ["corrupt", "cut"])
def test_a_bad_download_leaves_nothing(server, dac_release, fault):
    _, cached = dac_release
    path = "/release/weights_16khz.pth"
    if fault == "corrupt":
        server.files[path] = b"x" + server.files[path][1:]
    else:
        server.cut[path] = 1000
    words = "not the published" if fault == "corrupt" else "nothing was kept"
    with pytest.raises(CheckpointError, match=words):
        speechtok.load("dac-16khz")
    assert not cached.exists() and not list(cached.parent.glob(".*.tmp"))


def test_offline_without_a_cached_release_is_one_line(dac_release, monkeypatch):
    monkeypatch.setenv("SPEECHTOK_OFFLINE", "1")
    with pytest.raises(CheckpointError, match="not cached and downloads are off") as e:
        speechtok.load("dac-16khz")
    assert "\n" not in str(e.value) and "speechtok fetch dac-16khz" in str(e.value)


# -- the Hugging Face hub (Mimi) -----------------------------------------------------------------------------


def _load_mimi(server, hf_home: Path, offline: bool = False) -> subprocess.CompletedProcess:
    """`speechtok.load("mimi?q=3")` in a fresh process (huggingface_hub reads its environment at import)."""
    env = {**os.environ, "HF_ENDPOINT": server.url, "HF_HOME": str(hf_home), "HF_HUB_DISABLE_TELEMETRY": "1"}
    env.pop("HF_HUB_OFFLINE", None)
    if offline:
        env["HF_HUB_OFFLINE"] = "1"
    code = ("import speechtok, json; t = speechtok.load('mimi?q=3'); "
            "print(json.dumps([t.num_codebooks, t.codebook_size, t.source]))")
    return subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, env=env, timeout=120)


def test_a_hub_checkpoint_is_fetched_cached_and_used_offline(server, tmp_path):
    transformers = pytest.importorskip("transformers")
    cfg = transformers.MimiConfig(hidden_size=64, num_filters=8, codebook_dim=32,
                                  vector_quantization_hidden_dimension=32, codebook_size=64, num_quantizers=4,
                                  num_hidden_layers=2, intermediate_size=128, num_attention_heads=4,
                                  num_key_value_heads=4, head_dim=16, sliding_window=50, upsample_groups=64)
    transformers.MimiModel(cfg).save_pretrained(tmp_path / "mimi")
    server.hub("kyutai/mimi", tmp_path / "mimi")
    hf_home = tmp_path / "hf"
    first = _load_mimi(server, hf_home)
    assert first.returncode == 0, first.stderr
    assert json.loads(first.stdout) == [3, 64, "mimi?q=3"]
    assert any(r.startswith("GET /kyutai/mimi/resolve/main/model.safetensors") for r in server.requests)
    before = len(server.requests)
    second = _load_mimi(server, hf_home)
    assert second.returncode == 0, second.stderr
    assert len(server.requests) == before  # cached: no request at all
    offline = _load_mimi(server, hf_home, offline=True)
    assert offline.returncode == 0, offline.stderr
    # offline with an empty cache: one line that names the way out
    empty = _load_mimi(server, tmp_path / "empty-hf", offline=True)
    assert empty.returncode != 0
    assert "not in the Hugging Face cache" in empty.stderr and "speechtok fetch mimi" in empty.stderr


def test_a_gated_repository_says_how_to_get_in(server, tmp_path):
    """stable-codec's repository is gated: fetching without an accepted licence is one line that says what to do."""
    server.gated.add("stabilityai/stable-codec-speech-16k")
    env = {**os.environ, "HF_ENDPOINT": server.url, "HF_HOME": str(tmp_path / "hf"), "HF_HUB_DISABLE_TELEMETRY": "1"}
    env.pop("HF_HUB_OFFLINE", None)
    run = subprocess.run([sys.executable, "-m", "speechtok.cli", "fetch", "stable-codec"], capture_output=True,
                         text=True, env=env, timeout=60)
    assert run.returncode == 1
    lines = [ln for ln in run.stderr.splitlines() if ln.strip()]
    assert len(lines) == 1 and "stabilityai/stable-codec-speech-16k is gated: accept its licence" in lines[0]
    assert any("/stabilityai/stable-codec-speech-16k/resolve/main/model_config.json" in r for r in server.requests)


def test_the_zoo_lists_with_the_bundled_and_fetch_refuses_unknown_names(capsys):
    from speechtok.cli import main

    assert main(["list"]) == 0
    out = capsys.readouterr().out
    assert "mimi\tzoo" in out and "dac-16khz\tzoo" in out and "speechtok-codec-16k\tbundled" in out
    assert "mimi\tzoo\tkyutai/mimi\t24 kHz, 12.5 frames/s, 32 x 2048" in out and "CC-BY-4.0" in out
    assert main(["list", "--json"]) == 0
    rows = {(r["name"], r["kind"].split()[0]): r for r in json.loads(capsys.readouterr().out)}
    assert rows[("dac-16khz", "zoo")]["licence"] == "MIT" and "licence" not in rows[("dac", "plugin")]
    assert main(["fetch", "no-such-codec"]) == 1


def test_unknown_names_list_the_near_matches(caplog):
    from speechtok.cli import main
    from speechtok.errors import UnknownTokenizerError

    with pytest.raises(UnknownTokenizerError, match="did you mean mimi\\?"):
        speechtok.load("mimmi")
    with pytest.raises(UnknownTokenizerError) as e:
        speechtok.load("zzzz-not-close")
    assert "did you mean" not in str(e.value) and "available: speechtok-codec-16k" in str(e.value)
    assert main(["fetch", "dac16"]) == 1 and "did you mean dac-16khz?" in caplog.text


# -- every entry, by name ---------------------------------------------------------------------------------------


def _tiny_layouts(folder: Path) -> dict[str, Path]:
    """A tiny random checkpoint in each adapter's published layout: {adapter (or entry, where its layout is
    another): file or folder}."""
    from . import test_adapters as ta

    transformers = pytest.importorskip("transformers")
    snac, st = pytest.importorskip("snac"), pytest.importorskip("speechtokenizer")
    torch.manual_seed(0)
    folder.mkdir(parents=True)
    out = {"dac": ta._dac(folder)[1]}
    cfg = transformers.MimiConfig(hidden_size=64, num_filters=8, codebook_dim=32,
                                  vector_quantization_hidden_dimension=32, codebook_size=64, num_quantizers=4,
                                  num_hidden_layers=2, intermediate_size=128, num_attention_heads=4,
                                  num_key_value_heads=4, head_dim=16, sliding_window=50, upsample_groups=64)
    transformers.MimiModel(cfg).save_pretrained(folder / "mimi")
    out["mimi"] = folder / "mimi"
    ta._hf_segmented(folder)
    out["encodec"] = folder / "encodec_48k"
    (folder / "snac").mkdir()
    (folder / "snac" / "config.json").write_text(json.dumps(ta.SNAC_SMALL))
    torch.save(snac.SNAC(**ta.SNAC_SMALL).state_dict(), folder / "snac" / "pytorch_model.bin")
    out["snac"] = folder / "snac"
    (folder / "st" / "speechtokenizer_hubert_avg").mkdir(parents=True)
    (folder / "st" / "speechtokenizer_hubert_avg" / "config.json").write_text(json.dumps(ta.ST_SMALL))
    torch.save(st.SpeechTokenizer(ta.ST_SMALL).state_dict(),
               folder / "st" / "speechtokenizer_hubert_avg" / "SpeechTokenizer.pt")
    out["speechtokenizer"] = folder / "st"
    xcodec2 = transformers.Xcodec2Config(
        hidden_size=64, intermediate_size=128, num_hidden_layers=1, num_attention_heads=4, num_key_value_heads=4,
        head_dim=16, encoder_hidden_size=4, quantization_dim=96,
        semantic_model_config={"model_type": "wav2vec2-bert", "hidden_size": 32, "num_hidden_layers": 2,
                               "num_attention_heads": 2, "intermediate_size": 64})
    transformers.Xcodec2Model(xcodec2).save_pretrained(folder / "xcodec2")
    out["xcodec2"] = folder / "xcodec2"
    if importlib.util.find_spec("bigcodec"):  # the publisher's bigcodec.pt, small
        import bigcodec

        enc = bigcodec.CodecEncoder(ngf=4, rnn_num_layers=1, out_channels=32)
        dec = bigcodec.CodecDecoder(in_channels=32, upsample_initial_channel=64, rnn_num_layers=1, vq_dim=32,
                                    codebook_size=64, codebook_dim=8)
        (folder / "bigcodec").mkdir()
        torch.save({"CodecEnc": enc.state_dict(), "generator": dec.state_dict()}, folder / "bigcodec" / "bigcodec.pt")
        out["bigcodec"] = folder / "bigcodec"
    from .test_dualcodec import PINNED_DUALCODEC
    from .test_qwen_tts import PINNED_QWEN_TTS
    from .test_stable_codec import PINNED_STABLE_CODEC
    from .test_xcodec2 import PINNED_VQ, run_official

    if importlib.util.find_spec("neucodec") and importlib.util.find_spec("xcodec2") and PINNED_VQ.is_dir():
        out["neucodec"] = run_official("neucodec_official.py", folder / "neucodec")  # pytorch_model.bin, by the package
    if PINNED_QWEN_TTS.is_dir():  # the publisher's layout, written by the qwen-tts package itself
        run_official("qwen_tts_official.py", folder / "qwen_tts", PINNED_QWEN_TTS, "--layout-only")
        out["qwen-tts"] = folder / "qwen_tts" / "official"
    if PINNED_DUALCODEC.is_dir() and importlib.util.find_spec("dac"):  # amphion/dualcodec's files, and w2v-BERT's
        out["dualcodec"] = run_official("dualcodec_official.py", folder / "dc", PINNED_DUALCODEC, "--layout-only")
        shutil.copy(out["dualcodec"] / "dualcodec" / "dualcodec_12hz_16384_4096.safetensors",
                    out["dualcodec"] / "dualcodec" / "dualcodec_25hz_16384_1024.safetensors")  # both releases' names
        out["dualcodec:w2v"], out["dualcodec"] = out["dualcodec"] / "w2v", out["dualcodec"] / "dualcodec"
    if PINNED_STABLE_CODEC.is_dir():  # stabilityai/stable-codec-speech-16k's two files, by the packages' own classes
        run_official("stable_codec_official.py", folder / "sc", PINNED_STABLE_CODEC, "--layout-only")
        out["stable-codec"] = folder / "sc" / "stable-codec"
    if importlib.util.find_spec("s3tokenizer") and importlib.util.find_spec("onnx"):
        from .test_s3tokenizer import tiny_v2, tiny_v3, write_onnx, write_onnx_v3

        write_onnx(tiny_v2(), folder / "speech_tokenizer_v2.onnx")
        write_onnx_v3(tiny_v3(), folder / "speech_tokenizer_v3.onnx")
        out["s3tokenizer"] = folder / "speech_tokenizer_v2.onnx"
        out["s3tokenizer-v3"] = folder / "speech_tokenizer_v3.onnx"  # an entry of its own layout
    return out


OPTIONS = {"s3tokenizer": "?heads=2", "mimi": "?q=3"}  # the tiny models' own, where the entry's would not fit


def test_every_zoo_entry_loads_by_name_from_its_source(server, tmp_path):
    """Each entry's files, in its adapter's layout, served as its hub repository or URL (with the entry's hash
    recomputed for the tiny file): `speechtok.load(NAME)` in a fresh process fetches, verifies and encodes."""
    assert len(zoo.ZOO) >= 12
    layouts = _tiny_layouts(tmp_path / "layouts")
    names, urls = [], {}
    for name, entry in zoo.ZOO.items():
        source = layouts.get(name) or layouts.get(entry.adapter)
        if source is None:
            continue
        if entry.url is not None:
            path = f"/url/{name}/{Path(entry.url).name}"
            server.files[path] = source.read_bytes()
            urls[name] = (server.url + path, hashlib.sha256(source.read_bytes()).hexdigest())
        else:
            server.hub(entry.repo, source)
        for c in entry.companions:  # DualCodec's w2v-BERT 2.0
            server.hub(c.repo, layouts[f"{entry.adapter}:{c.option}"])
        names.append(name + OPTIONS.get(entry.adapter, ""))
    code = f"""
import json, torch, speechtok
from speechtok.adapters import zoo
for name, (url, sha) in {urls!r}.items():
    zoo.ZOO[name] = zoo.ZooEntry(**{{**zoo.ZOO[name].__dict__, "url": url, "sha256": sha}})
out = {{}}
for name in {names!r}:
    tok = speechtok.load(name)
    codes = tok.encode(0.1 * torch.randn(1, tok.sample_rate // 2), tok.sample_rate)
    out[name] = [tok.source, codes.codes.shape[1], int(codes.lengths[0]) > 0]
print(json.dumps(out))
"""
    env = {**os.environ, "HF_ENDPOINT": server.url, "HF_HOME": str(tmp_path / "hf"), "HF_HUB_DISABLE_TELEMETRY": "1",
           "SPEECHTOK_CACHE": str(tmp_path / "cache")}
    env.pop("HF_HUB_OFFLINE", None)
    run = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, env=env, timeout=300)
    assert run.returncode == 0, run.stderr[-2000:]
    loaded = json.loads(run.stdout)
    assert sorted(loaded) == sorted(names) and all(source == name and ok for name, (source, _, ok) in loaded.items())
    optional = {"s3tokenizer-v2", "s3tokenizer-v3", "neucodec", "bigcodec", "qwen-tts-12hz", "dualcodec-12hz",
                "dualcodec-25hz", "stable-codec", "stable-codec-400bps"}  # where the packages are (.ci/run has them)
    assert {n.partition("?")[0] for n in names} >= set(zoo.ZOO) - optional
