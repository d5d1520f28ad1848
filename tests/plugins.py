"""Installing a fake third-party distribution on a folder, so entry-point plugins are tested as users ship them."""

from __future__ import annotations

from pathlib import Path


def fake_distribution(site: Path, name: str, entry_points: str, modules: dict[str, str]) -> Path:
    """`site/<name>-1.0.dist-info` with `entry_points` (the entry_points.txt text) and `modules` {name: source}.
    Put `site` on sys.path or PYTHONPATH and importlib.metadata finds it."""
    dist = site / f"{name}-1.0.dist-info"
    dist.mkdir(parents=True)
    (dist / "METADATA").write_text(f"Metadata-Version: 2.1\nName: {name}\nVersion: 1.0\n")
    (dist / "entry_points.txt").write_text(entry_points)
    for module, source in modules.items():
        (site / f"{module}.py").write_text(source)
    return site


def tokenizer_plugin(site: Path, ckpt: Path) -> Path:
    """A plugin `mytok` whose loader opens `ckpt` (or the SPEC it is given)."""
    source = ("import speechtok\ndef load(spec, device):\n"
              f"    return speechtok.load(spec or {str(ckpt)!r}, device=device)\n")
    return fake_distribution(site, "mytok", "[speechtok.tokenizers]\nmytok = mytok_plugin:load\n",
                             {"mytok_plugin": source})
