"""benchmarks/train_speed.py runs end to end on a tiny codec: figures, FLOPs, the GAN breakdown, and one line for a
configuration that cannot be built (no wall-clock bounds: a benchmark's figures are not asserted)."""

import importlib.util
import json
from pathlib import Path

from speechtok.config import to_dict
from speechtok.vocoders.discriminators import DiscriminatorConfig

from .conftest import tiny_config

SCRIPT = Path(__file__).resolve().parents[1] / "benchmarks" / "train_speed.py"


def _module():
    spec = importlib.util.spec_from_file_location("train_speed", SCRIPT)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_train_speed_on_a_tiny_codec(corpus, tmp_path, capsys):
    out = tmp_path / "speed.json"
    _module().main([
        "--configs", "codec-gan,hubert", "--batch-size", "2", "--segment-seconds", "0.2", "--steps", "1",
        "--warmup", "1", "--threads", "1", "--breakdown", "--json", str(out),
        "-o", f"model={json.dumps(to_dict(tiny_config()))}", "-o", f"data.sources=[{corpus}]",
        "-o", f"task_config.discriminator={json.dumps(to_dict(DiscriminatorConfig.tiny()))}",
    ])
    printed = capsys.readouterr().out
    results = {r["config"]: r for r in json.loads(out.read_text())["results"]}
    gan = results["codec-gan"]
    assert "error" not in gan, gan
    assert gan["batch_size"] == 2 and gan["audio_s_per_step"] == 0.4 and gan["steps_timed"] == 1
    assert gan["audio_s_per_s"] > 0 and gan["peak_mb"] > 0 and gan["gflop_per_audio_s"] > 0
    parts = gan["breakdown"]["parts_s"]
    for key in ("G fwd encoder", "G fwd decoder", "D fwd real", "D fwd fake (for G loss)", "mel loss fwd",
                "discriminator update: backward", "generator update: backward"):
        assert key in parts, sorted(parts)
    assert gan["breakdown"]["adversarial"]
    assert "| codec-gan | cpu fp32 | 1 | 2 x 0.2 |" in printed
    # the codec's model section is no HuBERT config: one line says so, and the run goes on
    assert "cannot build" in results["hubert"]["error"]
    assert "not measured: hubert: cannot build" in printed
