"""Names -> tokenizers: bundled checkpoints (package data) and plugins under the entry-point group
`speechtok.tokenizers`. A plugin entry point is a callable `load(spec: str | None, device) -> Tokenizer`;
`speechtok.load("NAME:SPEC")` passes SPEC (a local path, say) to the plugin called NAME."""

from __future__ import annotations

import difflib
import os
from dataclasses import dataclass
from importlib import metadata
from pathlib import Path
from typing import TYPE_CHECKING

from .errors import UnknownTokenizerError

if TYPE_CHECKING:  # torch is imported on first load, not when the CLI builds its parser
    import torch

    from .tokenizer import Tokenizer

ENTRY_POINT_GROUP = "speechtok.tokenizers"
PRETRAINED_DIR = Path(__file__).parent / "pretrained"
DEFAULT_TOKENIZER = "speechtok-codec-16k"


@dataclass(frozen=True)
class Entry:
    name: str
    kind: str  # "bundled", "zoo" (official weights fetched by name; "zoo (cached)" once here) or "plugin"
    where: str  # directory, or the entry point's target


def split_spec(spec: str) -> tuple[str, dict[str, str]]:
    """`PATH_OR_NAME?a=1&b=2` -> ("PATH_OR_NAME", {"a": "1", "b": "2"}): the options of a spec, as plugins,
    zoo names and eval's reference rows (`opus?level=0.9`) take them."""
    text, _, query = spec.partition("?")
    return text, dict(item.partition("=")[::2] for item in query.split("&") if item)


def bundled() -> dict[str, Path]:
    """Bundled checkpoint directories that ship inside the package."""
    if not PRETRAINED_DIR.is_dir():
        return {}
    return {p.name: p for p in sorted(PRETRAINED_DIR.iterdir()) if (p / "config.json").is_file()}


def plugins() -> dict[str, metadata.EntryPoint]:
    return {ep.name: ep for ep in metadata.entry_points(group=ENTRY_POINT_GROUP)}


def available() -> list[Entry]:
    from .adapters.zoo import ZOO, is_cached

    entries = [Entry(n, "bundled", str(p)) for n, p in bundled().items()]
    entries += [Entry(n, "zoo" + (" (cached)" if is_cached(z) else ""),
                      " + ".join([z.repo or z.url or "", *(c.repo for c in z.companions)])) for n, z in ZOO.items()]
    entries += [Entry(n, "plugin", ep.value) for n, ep in plugins().items()]
    return entries


def load(name_or_path: str | os.PathLike = DEFAULT_TOKENIZER, device: str | torch.device | None = None) -> Tokenizer:
    """A checkpoint directory, a bundled name, `PLUGIN` or `PLUGIN:SPEC` -> Tokenizer in eval mode."""
    from .models.loading import load_checkpoint
    from .tokenizer import Tokenizer

    text = os.fspath(name_or_path)
    if Path(text).is_dir():
        return load_checkpoint(text, device=device)
    shipped = bundled()
    if text in shipped:
        tok = load_checkpoint(shipped[text], device=device)
        tok.source = text
        return tok
    from .adapters.zoo import resolve

    fetched = resolve(text)  # a zoo name: official weights, fetched once and cached
    if fetched is not None:
        tok = load(fetched, device=device)
        tok.source = text
        return tok
    plugin_name, _, spec = text.partition(":")
    found = plugins()
    if plugin_name in found:
        tok = found[plugin_name].load()(spec or None, device)
        if not isinstance(tok, Tokenizer):
            raise UnknownTokenizerError(f"plugin {plugin_name!r} returned {type(tok).__name__}, not a Tokenizer")
        tok.source = text
        return tok.eval()
    names = list(dict.fromkeys(e.name for e in available()))
    near = difflib.get_close_matches(plugin_name, names, n=3, cutoff=0.6)
    hint = f"did you mean {', '.join(near)}? " if near else ""
    raise UnknownTokenizerError(f"{text}: not a checkpoint directory, a bundled tokenizer, a zoo name or a plugin "
                                f"({hint}available: {', '.join(names) or 'none'})")


WEIGHT_SUFFIXES = (".safetensors", ".json")  # a speechtok checkpoint directory: config, weights, shard index


def tokenizer_checkpoint(tok: Tokenizer) -> dict | None:
    """A loaded tokenizer's checkpoint identity (`fileio.checkpoint_identity`): an adapter's own, or a speechtok
    checkpoint directory's (by path or bundled name); None for a tokenizer built in memory."""
    if tok.checkpoint:
        return tok.checkpoint
    from .fileio import checkpoint_identity

    source = tok.source or ""
    directory = bundled().get(source) or (Path(source) if source and Path(source).is_dir() else None)
    if directory is None:
        return None
    files = sorted(p for p in Path(directory).iterdir() if p.is_file() and p.suffix in WEIGHT_SUFFIXES)
    return checkpoint_identity(files)
