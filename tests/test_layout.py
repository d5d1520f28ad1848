"""The package's layout and the direction of its imports (DESIGN.md, "Layout"), read from the source with `ast`:
every import counts, those inside functions (lazy) included; only `if TYPE_CHECKING:` blocks are left out."""

from __future__ import annotations

import ast
from functools import cache
from pathlib import Path

PACKAGE = Path(__file__).resolve().parents[1] / "speechtok"
BUILDING_BLOCKS = ("speechtok.codecs", "speechtok.quantizers", "speechtok.vocoders", "speechtok.layers")
ABOVE_THE_API = ("speechtok.training", "speechtok.eval", "speechtok.cli", "speechtok.commands",
                 "speechtok.pretokenize", "speechtok.lm", "speechtok.export")
# the package root: DESIGN.md's modules, with config.py (typed configs) and fileio.py (atomic writes, safe reads)
ROOT_MODULES = {"__init__", "audio", "tokenizer", "codes", "checkpoint", "registry", "errors", "cli", "config",
                "fileio"}
# DESIGN.md's parts, with layers/ (generic blocks), corpora/ (manifests, file lists), runtime/ (progress, malloc,
# prefetch), convert/ (other projects' files to speechtok checkpoints), evalsets/ (package data) and streaming/
# (chunked encode / decode equal to the offline path; the tokenizer streams long files through it)
PARTS = {"models", "codecs", "quantizers", "vocoders", "layers", "adapters", "lm", "export", "training", "recipes",
         "eval", "evalsets", "pretokenize", "commands", "pretrained", "corpora", "runtime", "convert", "streaming"}
LOW_LEVEL = ("speechtok.corpora", "speechtok.runtime")  # used by the commands, training and eval alike


def module_name(path: Path) -> str:
    parts = path.relative_to(PACKAGE.parent).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


@cache
def graph() -> dict[str, set[str]]:
    """module -> the speechtok modules it imports (a `from pkg import name` counts as pkg.name when that is a
    module, else as pkg)."""
    modules = {module_name(p): p for p in PACKAGE.rglob("*.py")}
    return {name: _imports(name, path, modules) for name, path in modules.items()}


def _imports(name: str, path: Path, modules: dict[str, Path]) -> set[str]:
    tree = ast.parse(path.read_text(), str(path))
    package = name if path.name == "__init__.py" else name.rpartition(".")[0]
    found: set[str] = set()
    for node in _walk_outside_type_checking(tree):
        if isinstance(node, ast.Import):
            found.update(a.name for a in node.names)
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                anchor = package.split(".")[: len(package.split(".")) - node.level + 1]
                base = ".".join(anchor + ([base] if base else []))
            for alias in node.names:
                full = f"{base}.{alias.name}"
                found.add(full if full in modules else base)
    return {m for m in found if m in modules and m != name}


def _walk_outside_type_checking(tree: ast.AST):
    stack = [tree]
    while stack:
        node = stack.pop()
        yield node
        for child in ast.iter_child_nodes(node):
            if isinstance(child, ast.If) and "TYPE_CHECKING" in ast.unparse(child.test):
                stack.extend(child.orelse)
                continue
            stack.append(child)


def closure(start: str) -> set[str]:
    seen, todo = set(), [start]
    while todo:
        for m in graph()[todo.pop()] - seen:
            seen.add(m)
            todo.append(m)
    return seen


def within(module: str, parts: tuple[str, ...]) -> bool:
    return any(module == p or module.startswith(p + ".") for p in parts)


def test_no_import_circle():
    g = graph()
    circles = sorted({m for m in g if m in closure(m)})
    assert not circles, f"modules on an import circle: {circles}"


def test_building_blocks_import_no_family_and_nothing_above_them():
    bad = {m: sorted(i for i in deps if not within(i, BUILDING_BLOCKS) and within(i, ("speechtok.models",
                     "speechtok.tokenizer", "speechtok.registry", "speechtok.checkpoint", "speechtok.adapters",
                     *ABOVE_THE_API)))
           for m, deps in graph().items() if within(m, BUILDING_BLOCKS)}
    assert not {m: d for m, d in bad.items() if d}


def test_quantizers_and_decoders_know_no_encoder_family():
    bad = {m: sorted(d for d in deps if within(d, ("speechtok.codecs",)))
           for m, deps in graph().items() if within(m, ("speechtok.quantizers", "speechtok.vocoders"))}
    assert not {m: d for m, d in bad.items() if d}


def test_loading_a_tokenizer_imports_no_training_eval_or_cli_code():
    for entry in ("speechtok.registry", "speechtok.models", "speechtok.tokenizer"):
        pulled = sorted(m for m in closure(entry) if within(m, ABOVE_THE_API))
        assert not pulled, f"{entry} imports {pulled}"


def test_checkpoint_files_import_no_model():
    # layers/ is allowed: saving folds weight norm with its generic helper
    blocks = tuple(b for b in BUILDING_BLOCKS if b != "speechtok.layers")
    pulled = sorted(m for m in closure("speechtok.checkpoint")
                    if within(m, ("speechtok.models", "speechtok.tokenizer", *blocks)))
    assert not pulled, f"speechtok.checkpoint imports {pulled}"


def test_nothing_imports_the_cli():
    bad = sorted(m for m, deps in graph().items() if not within(m, ("speechtok.cli", "speechtok.commands"))
                 and any(within(d, ("speechtok.cli", "speechtok.commands")) for d in deps))
    assert not bad, f"modules that import the CLI: {bad}"


def test_every_module_belongs_to_a_named_part():
    root = {p.stem for p in PACKAGE.glob("*.py")}
    assert root <= ROOT_MODULES, f"modules at the package root outside the map: {sorted(root - ROOT_MODULES)}"
    parts = {p.name for p in PACKAGE.iterdir() if p.is_dir() and p.name != "__pycache__"}
    assert parts <= PARTS, f"packages outside the map: {parts - PARTS}"


def test_corpora_and_runtime_import_no_model_and_nothing_above_the_api():
    bad = {m: sorted(d for d in deps if within(d, ("speechtok.models", "speechtok.tokenizer", *BUILDING_BLOCKS,
                                                   *ABOVE_THE_API)))
           for m, deps in graph().items() if within(m, LOW_LEVEL)}
    assert not {m: d for m, d in bad.items() if d}


def test_the_walker_sees_lazy_and_relative_imports():
    deps = graph()["speechtok.tokenizer"]
    assert "speechtok.codes" in deps  # `from .codes import Codes` at the top
    assert closure("speechtok.cli") & {"speechtok.commands"}  # the CLI's subcommands, imported lazily


def test_nothing_subclasses_the_tokenizer():
    subclasses = []
    for path in PACKAGE.rglob("*.py"):
        for node in ast.walk(ast.parse(path.read_text(), str(path))):
            if isinstance(node, ast.ClassDef) and any(ast.unparse(b).split(".")[-1] == "Tokenizer" for b in node.bases):
                subclasses.append(f"{path.relative_to(PACKAGE.parent)}:{node.name}")
    assert not subclasses, f"Tokenizer subclasses (declare the difference on the encoder instead): {subclasses}"


def _decorated(part: str, decorator: str) -> dict[str, str]:
    """name -> module file of every `@decorator("name", ...)` in `part`'s modules."""
    found = {}
    for path in (PACKAGE / part).glob("*.py"):
        for node in ast.walk(ast.parse(path.read_text())):
            for deco in getattr(node, "decorator_list", []):
                if isinstance(deco, ast.Call) and ast.unparse(deco.func) == decorator:
                    found[deco.args[0].value] = path.name
    return found


def test_quantizers_families_and_tasks_register_in_their_own_modules():
    """Adding one touches its own module: the registries fill from decorators / class names there, and no
    package __init__ lists them."""
    from speechtok.models import FAMILIES
    from speechtok.quantizers import QUANTIZERS
    from speechtok.training.tasks import TASKS

    quantizers, families = _decorated("quantizers", "register_quantizer"), _decorated("models", "register_family")
    assert set(QUANTIZERS) == set(quantizers) and "__init__.py" not in quantizers.values()
    assert set(FAMILIES) == set(families) and "__init__.py" not in families.values()
    assert {name: cls.__module__.rsplit(".", 1)[-1] for name, cls in TASKS.items()} == {n: n for n in TASKS}
    for part, names in (("quantizers", QUANTIZERS), ("models", FAMILIES), ("training/tasks", TASKS)):
        init = (PACKAGE / part / "__init__.py").read_text()
        assert not [n for n in names if f'"{n}"' in init], f"{part}/__init__.py lists its registry's names"
