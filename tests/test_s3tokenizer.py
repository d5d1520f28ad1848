"""S3Tokenizer (CosyVoice 2's semantic tokens) behind the speechtok API: a tiny random-weight v2 model written as
the official ONNX layout (the node and initializer names the package's own `onnx2torch` reads), loaded by path and
by zoo name from a local server, against the package's own pipeline."""

from __future__ import annotations

import hashlib

import numpy as np
import pytest
import torch

import speechtok
from speechtok.adapters import zoo
from speechtok.errors import AudioError, CheckpointError, CodesError

from .conftest import speech
from .test_zoo import server  # noqa: F401 - the local file server fixture

s3 = pytest.importorskip("s3tokenizer")
onnx = pytest.importorskip("onnx")

DIMS = {"n_audio_state": 128, "n_audio_head": 2, "n_audio_layer": 2}  # rotary embeddings need 64 per head
CONV = {"encoder.conv1.weight": "onnx::Conv_2216", "encoder.conv1.bias": "onnx::Conv_2217",
        "encoder.conv2.weight": "onnx::Conv_2218", "encoder.conv2.bias": "onnx::Conv_2219",
        "quantizer._codebook.project_down.weight": "onnx::MatMul_2536",
        "quantizer._codebook.project_down.bias": "quantizer.project_in.bias"}


def tiny_v2() -> torch.nn.Module:
    from s3tokenizer.model_v2 import ModelConfig

    torch.manual_seed(0)
    model = s3.S3TokenizerV2("speech_tokenizer_v2_25hz", ModelConfig(**DIMS)).eval()
    with torch.no_grad():  # weights large enough that the FSQ codes vary with the input
        for p in model.parameters():
            p.normal_(0, 0.3)
    return model


def write_onnx(model: torch.nn.Module, path) -> None:
    """The v2 release's ONNX layout: conv and projection initializers under their exported names, each block's
    matrices as nodes `/blocks.i/<module>/MatMul` (stored transposed) and `/Add`, layer norms as
    LayerNormalization nodes, the FSMN kernel as `/blocks.i/attn/fsmn_block/Conv`."""
    from onnx import helper, numpy_helper

    nodes, inits = [], []

    def init(name: str, t: torch.Tensor) -> str:
        inits.append(numpy_helper.from_array(t.detach().numpy().astype(np.float32), name))
        return name

    state = model.state_dict()
    for key, t in state.items():
        if key in CONV:
            stored = t.t() if t.ndim == 2 else t
            nodes.append(helper.make_node("Identity", [init(CONV[key], stored)], [f"o{len(nodes)}"], name=f"n{key}"))
        elif key.endswith("_ln.weight"):
            ln = "/" + key.removeprefix("encoder.").removesuffix(".weight").replace(".attn_ln", "/attn_ln").replace(
                ".mlp_ln", "/mlp_ln")
            bias = state[key.removesuffix("weight") + "bias"]
            nodes.append(helper.make_node("LayerNormalization", ["x", init(f"{key}.s", t), init(f"{key}.b", bias)],
                                          [f"o{len(nodes)}"], name=f"{ln}/LayerNormalization"))
        elif key.endswith("_ln.bias"):
            continue
        else:
            module, _, kind = key.removeprefix("encoder.").rpartition(".")  # blocks.0.attn.query, weight
            block, _, rest = module.partition(".")[2].partition(".")  # 0, attn.query
            rest = rest.replace("mlp.", "mlp/mlp.") if rest.startswith("mlp.") else rest.replace(".", "/")
            op = "Conv" if "fsmn_block" in key else ("MatMul" if kind == "weight" else "Add")
            stored = t.t() if t.ndim == 2 else t
            nodes.append(helper.make_node(op, ["x", init(f"{key}.init", stored)], [f"o{len(nodes)}"],
                                          name=f"/blocks.{block}/{rest}/{op}"))
    graph = helper.make_graph(nodes, "s3tokenizer_v2", [], [], initializer=inits)
    onnx.save(helper.make_model(graph), str(path))


def tiny_v3() -> torch.nn.Module:
    from s3tokenizer.model_v3 import ModelConfigV3

    torch.manual_seed(1)
    model = s3.S3TokenizerV3("speech_tokenizer_v3_25hz", ModelConfigV3(**DIMS)).eval()
    with torch.no_grad():
        for p in model.parameters():
            p.normal_(0, 0.3)
    return model


def write_onnx_v3(model: torch.nn.Module, path) -> None:
    """The v3 release's ONNX layout, as the package's `onnx2torch_v3` reads it: nodes `/conv1/Conv`,
    `/blocks.i/<module>/MatMul` (matrices stored transposed) and `/Add` (biases), layer norms as `/Mul` and `/Add`
    nodes, the FSMN kernels as initializers `blocks.i.attn.fsmn_block.weight`, the quantizer's projection as a
    `quantizer` MatMul node and the initializer `quantizer.project_in.bias`."""
    from onnx import helper, numpy_helper

    nodes, inits = [], []

    def initializer(name: str, t: torch.Tensor) -> str:
        inits.append(numpy_helper.from_array(t.detach().numpy().astype(np.float32), name))
        return name

    def node(op: str, name: str, *tensors: torch.Tensor) -> None:
        inputs = ["x", *(initializer(f"{name}:{i}", t) for i, t in enumerate(tensors))]
        nodes.append(helper.make_node(op, inputs, [f"o{len(nodes)}"], name=name))

    state = model.state_dict()
    for conv in ("conv1", "conv2"):
        node("Conv", f"/{conv}/Conv", state[f"encoder.{conv}.weight"], state[f"encoder.{conv}.bias"])
    for key, t in state.items():
        if key.startswith("encoder.blocks."):
            block, rest = key.removeprefix("encoder.blocks.").split(".", 1)  # 0, attn.query.weight
            module, kind = rest.rsplit(".", 1)
            if "fsmn_block" in module:
                initializer(f"blocks.{block}.{rest}", t)
            elif module.endswith("_ln"):
                op = "Mul" if kind == "weight" else "Add"
                node(op, f"/blocks.{block}/{module}/{op}", t)
            else:
                where = "mlp/" + module if module.startswith("mlp.") else module.replace(".", "/")
                op = "MatMul" if kind == "weight" else "Add"
                node(op, f"/blocks.{block}/{where}/{op}", t.t() if op == "MatMul" else t)
    node("MatMul", "/quantizer/project_down/MatMul", state["quantizer._codebook.project_down.weight"].t())
    initializer("quantizer.project_in.bias", state["quantizer._codebook.project_down.bias"])
    graph = helper.make_graph(nodes, "s3tokenizer_v3", [], [], initializer=inits)
    onnx.save(helper.make_model(graph), str(path))


@pytest.fixture(scope="module")
def release(tmp_path_factory):
    folder = tmp_path_factory.mktemp("s3")
    model = tiny_v2()
    write_onnx(model, folder / "speech_tokenizer_v2.onnx")
    return model, folder / "speech_tokenizer_v2.onnx"


def load(path, options: str = "heads=2"):
    from speechtok.adapters.s3tokenizer import load as load_s3

    return load_s3(f"{path}?{options}" if options else str(path))


def reference(model, wav: torch.Tensor) -> torch.Tensor:
    """The package's pipeline on one item: log-mel, then quantize."""
    from s3tokenizer.utils import log_mel_spectrogram

    mel = log_mel_spectrogram(wav)[None]
    codes, lengths = model.quantize(mel, torch.tensor([mel.shape[-1]]))
    return codes[0, : int(lengths[0])]


def test_the_onnx_layout_loads_every_weight(release):
    model, path = release
    tok = load(path)
    theirs, ours = model.state_dict(), tok.peer.state_dict()
    assert theirs.keys() == ours.keys() and all(torch.equal(theirs[k], ours[k]) for k in theirs)


def test_codes_equal_the_package_and_each_item_its_own(release):
    model, path = release
    tok = load(path)
    assert (tok.num_codebooks, tok.codebook_size, tok.frame_rate, tok.decoder) == (1, 6561, 25.0, None)
    a, b = speech(1.3), speech(0.77)[:12003]
    codes = tok.encode(torch.nn.utils.rnn.pad_sequence([a, b], batch_first=True)[:, None], 16000,
                       lengths=torch.tensor([a.numel(), b.numel()]))
    for i, wav in enumerate((a, b)):
        expected = reference(model, wav)
        assert int(codes.lengths[i]) == expected.numel() == -(-(wav.numel() // 160) // 4)
        assert torch.equal(codes.codes[i, 0, : expected.numel()], expected)
    assert codes.codes[0, 0].unique().numel() > 3  # random weights still give varied tokens
    loud = tok.encode(torch.stack([a[:12003], 3 * b])[:, None], 16000)  # equal lengths, one batch: per item
    assert torch.equal(loud.codes[1, 0], reference(model, 3 * b))


def test_v3_loads_from_its_onnx_layout_and_gives_the_package_codes(tmp_path):
    model = tiny_v3()
    path = tmp_path / "speech_tokenizer_v3.onnx"
    write_onnx_v3(model, path)
    tok = load(path)
    theirs, ours = model.state_dict(), tok.peer.state_dict()
    assert theirs.keys() == ours.keys() and all(torch.equal(theirs[k], ours[k]) for k in theirs)
    assert tok.name == "s3tokenizer-v3_25hz" and (tok.codebook_size, tok.frame_rate) == (6561, 25.0)
    wav = speech(1.1)
    codes = tok.encode(wav, 16000).codes[0, 0]
    assert torch.equal(codes, reference(model, wav)) and codes.unique().numel() > 3
    with pytest.raises(CheckpointError, match="not an S3Tokenizer ONNX file|not S3Tokenizer weights"):
        load(path, "heads=2&model=speech_tokenizer_v2_25hz")  # the v2 converter on the v3 layout


def test_encode_only_and_short_input(release):
    tok = load(release[1])
    codes = tok.encode(speech(0.5), 16000)
    with pytest.raises(CodesError, match="no decoder"):
        tok.decode(codes)
    with pytest.raises(AudioError, match="one frame needs 640"):
        tok.encode(torch.zeros(600), 16000)
    assert "encode-only" in tok.adapter_info["notes"]


def test_bad_files_and_names(release, tmp_path):
    bad = tmp_path / "speech_tokenizer_v2.onnx"
    bad.write_bytes(b"not a protobuf")
    with pytest.raises(CheckpointError, match="not an S3Tokenizer ONNX file"):
        load(bad)
    unnamed = tmp_path / "tokenizer.onnx"
    unnamed.write_bytes(release[1].read_bytes())
    with pytest.raises(CheckpointError, match="cannot tell the S3Tokenizer version"):
        load(unnamed)
    assert load(unnamed, "heads=2&model=speech_tokenizer_v2_25hz").codebook_size == 6561
    with pytest.raises(CheckpointError, match="model='v9'"):
        load(release[1], "model=v9")


def test_the_zoo_entry_downloads_verifies_and_loads(release, server, tmp_path, monkeypatch):  # noqa: F811
    model, path = release
    data = path.read_bytes()
    server.files["/cosyvoice2/speech_tokenizer_v2.onnx"] = data
    entry = zoo.ZooEntry(**{**zoo.ZOO["s3tokenizer-v2"].__dict__,
                            "url": f"{server.url}/cosyvoice2/speech_tokenizer_v2.onnx",
                            "sha256": hashlib.sha256(data).hexdigest()})
    monkeypatch.setitem(zoo.ZOO, "s3tokenizer-v2", entry)
    monkeypatch.setenv("SPEECHTOK_CACHE", str(tmp_path / "cache"))
    tok = speechtok.load("s3tokenizer-v2?heads=2")  # options as the published entry's, with this model's heads
    assert tok.source.startswith("s3tokenizer-v2") and len(server.requests) == 1
    wav = speech(0.9)
    assert torch.equal(tok.encode(wav, 16000).codes[0, 0], reference(model, wav))
    speechtok.load("s3tokenizer-v2?heads=2")
    assert len(server.requests) == 1  # cached: no second request


def test_an_encode_only_tokenizer_is_evaluated_on_its_codes(release, tmp_path):
    """`speechtok eval` scores the codes (bitrate, usage) of a tokenizer without a decoder, and says why its quality
    cells are empty, instead of failing every utterance."""
    from speechtok.eval import EvalConfig, evaluate, load_results, utterances, write_results
    from speechtok.eval.leaderboard import collect, markdown

    from .evalclips import write_clips

    spec = f"s3tokenizer:{release[1]}?heads=2"
    cfg = EvalConfig(metrics=("stoi",), progress=False)
    results = evaluate([spec], utterances(write_clips(tmp_path / "clips")), cfg, data_name="clips")
    row = results["rows"][0]
    assert row["status"] == "ok" and not row["failures"] and row["tokenizer"]["encode_only"]
    assert row["bitrate"]["nominal_bps"] == pytest.approx(25 * np.log2(6561)) and not row["aggregate"].get("stoi")
    path = tmp_path / "results.json"
    write_results(results, path)
    assert "encode-only: codes, no audio" in markdown(collect([(path, load_results(path))]))
