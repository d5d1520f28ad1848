"""Build an evaluation set (LS-test, SO-test, LS-dev, SO-dev) from the public corpus a user has, as
`speechtok data prepare SET --from PATH` does.

The package ships each set's definition (`speechtok/evalsets/<SET>.tsv`: utterance id, speaker, split, where the
file is in the public corpus, where it goes in a data root, duration, the sha256 of its samples, the text), its
phone alignments (`<SET>.alignments.tsv`, for ABX) and the corpora's licences. Preparing finds every listed
utterance under PATH (a directory, searched by file name, or a `.tar.gz` / `.tgz` / `.tar` archive), reads it,
resamples it to the protocol's 16 kHz with soxr where it is not, checks the sha256 of its 16-bit samples against the
definition, and writes it as 16-bit FLAC under the data root, with `<corpus>/manifest.tsv` and `alignments.tsv`
(rows of other sets kept) and the licence: the layout `eval/sets.py` reads. Nothing is written unless every file is
there and matches: a figure on a partial or different set would not compare.

The checksum is over the samples (int16, little-endian, mono), not the file bytes: a WAV and a FLAC of the same
recording match, and so do two FLAC encoders.
"""

from __future__ import annotations

import csv
import hashlib
import shutil
import tarfile
import tempfile
from dataclasses import dataclass
from importlib import resources
from pathlib import Path

import numpy as np

from ..errors import SpeechtokError
from ..fileio import atomic_path

__all__ = ["SetSource", "SET_SOURCES", "PrepareError", "definition", "prepare", "samples_sha256", "hint"]

SAMPLE_RATE = 16000  # the protocol's rate: every set is scored at 16 kHz
DEFINITION_COLUMNS = ("id", "speaker", "split", "source", "path", "duration_s", "sha256", "text")
MANIFEST_COLUMNS = ("path", "speaker", "duration_s", "split", "text")
SOURCE_SUFFIXES = (".flac", ".wav")


@dataclass(frozen=True)
class SetSource:
    corpus: str  # the folder in a data root (as in shared/data)
    get: str  # what to download, in one line
    licence: str  # the licence file shipped beside the definitions


SET_SOURCES: dict[str, SetSource] = {
    "LS-test": SetSource("librispeech_samples", "LibriSpeech test-other (test-other.tar.gz, https://www.openslr.org/12)",
                         "LICENSE-librispeech.txt"),
    "LS-dev": SetSource("librispeech_samples",
                        "LibriSpeech train-clean-100 (train-clean-100.tar.gz, https://www.openslr.org/12)",
                        "LICENSE-librispeech.txt"),
    "SO-test": SetSource("speechocean762", "speechocean762 (https://github.com/jimbozhang/speechocean762, WAVE/)",
                         "LICENSE-speechocean762.md"),
    "SO-dev": SetSource("speechocean762", "speechocean762 (https://github.com/jimbozhang/speechocean762, WAVE/)",
                        "LICENSE-speechocean762.md"),
}


class PrepareError(SpeechtokError):
    """A set that cannot be prepared from what the user gave (missing or different files)."""


def hint(name: str, data_root: Path) -> str:
    """The one line that says what to get and which command prepares set `name` into `data_root`."""
    src = SET_SOURCES[name]
    return (f"{name} is not in {data_root}: get {src.get}, then run `speechtok data prepare {name} --from PATH` "
            f"(or point $SPEECHTOK_DATA at a prepared data root)")


def definition(name: str, directory: Path | None = None) -> list[dict]:
    """The rows of set `name`'s shipped definition (or of `directory/<name>.tsv`, for other definitions)."""
    if name not in SET_SOURCES:
        raise PrepareError(f"unknown evaluation set {name!r}; known: {', '.join(SET_SOURCES)}")
    path = (directory or _shipped()) / f"{name}.tsv"
    with open(path, newline="", encoding="utf-8") as f:
        rows = list(csv.DictReader(f, delimiter="\t"))
    if not rows or tuple(rows[0]) != DEFINITION_COLUMNS:
        raise PrepareError(f"{path}: not a set definition (columns {', '.join(DEFINITION_COLUMNS)})")
    return rows


def samples_sha256(samples: np.ndarray) -> str:
    """sha256 of int16 mono samples [T], little-endian."""
    return hashlib.sha256(np.ascontiguousarray(samples, dtype="<i2").tobytes()).hexdigest()


def prepare(name: str, source: str | Path, data_root: str | Path, definitions: Path | None = None) -> Path:
    """Build set `name` from `source` (a corpus directory or archive) into `data_root`; -> its manifest.

    Raises PrepareError naming the missing or mismatching files (the first few, and how many)."""
    rows = definition(name, definitions)
    source, root = Path(source).expanduser(), Path(data_root).expanduser()
    if not source.exists():
        raise PrepareError(f"{source}: no such file or directory ({hint(name, root)})")
    with tempfile.TemporaryDirectory(prefix=".speechtok-prepare-", dir=_existing_parent(root)) as tmp:
        corpus_dir = _unpacked(source, {Path(r["source"]).stem for r in rows}, Path(tmp) / "unpacked")
        found = _index(corpus_dir)
        staged, problems = Path(tmp) / "staged", []
        for row in rows:
            problem = _stage(row, found, staged)
            if problem:
                problems.append(problem)
        if problems:
            shown = "; ".join(problems[:3]) + (f"; and {len(problems) - 3} more" if len(problems) > 3 else "")
            raise PrepareError(f"{name}: {len(problems)} of {len(rows)} files missing or different under {source}: "
                               f"{shown}; nothing written")
        for row in rows:
            target = root / row["path"]
            target.parent.mkdir(parents=True, exist_ok=True)
            shutil.move(staged / row["path"], target)
    corpus = SET_SOURCES[name].corpus
    _copy_licence(name, root / corpus)
    alignments = (definitions or _shipped()) / f"{name}.alignments.tsv"
    if alignments.is_file():
        _merge_alignments(root / corpus / "alignments.tsv", alignments, {r["id"] for r in rows})
    return _merge_manifest(root / corpus / "manifest.tsv", rows, root)


def _stage(row: dict, found: dict[str, Path], staged: Path) -> str | None:
    """Read, resample, check and write one utterance under `staged`; -> what is wrong with it, or None."""
    import soundfile as sf

    from ..audio import resample

    src = found.get(Path(row["source"]).stem)
    if src is None:
        return f"{row['source']} missing"
    try:
        wav, rate = sf.read(src, dtype="float32", always_2d=True)
    except (sf.LibsndfileError, RuntimeError) as e:
        return f"{src}: unreadable ({e})"
    mono = wav.mean(axis=1)
    if rate != SAMPLE_RATE:  # the protocol's resampler (soxr, speechtok.audio.resample)
        mono = resample(mono.astype(np.float32), rate, SAMPLE_RATE)
    pcm = np.clip(np.round(np.asarray(mono, dtype=np.float64) * 32768.0), -32768, 32767).astype(np.int16)
    if samples_sha256(pcm) != row["sha256"]:
        return f"{src}: its samples differ from the set's (sha256)"
    target = staged / row["path"]
    target.parent.mkdir(parents=True, exist_ok=True)
    with atomic_path(target) as tmp:
        sf.write(tmp, pcm, SAMPLE_RATE, subtype="PCM_16", format="FLAC")
    return None


def _unpacked(source: Path, stems: set[str], into: Path) -> Path:
    """`source` itself where it is a directory; else the archive's members whose file stem is wanted, extracted."""
    if source.is_dir():
        return source
    if not tarfile.is_tarfile(source):
        raise PrepareError(f"{source}: not a directory or a tar archive (.tar.gz, .tgz, .tar)")
    into.mkdir(parents=True)
    with tarfile.open(source) as tar:
        for member in tar:
            name = Path(member.name)
            if member.isfile() and name.suffix.lower() in SOURCE_SUFFIXES and name.stem in stems:
                out = into / name.name  # flat: no path from the archive is trusted; the first of a name wins
                if out.exists():
                    continue
                with tar.extractfile(member) as f, open(out, "wb") as g:
                    shutil.copyfileobj(f, g)
    return into


def _index(directory: Path) -> dict[str, Path]:
    """Audio files under `directory` by file stem (`1688-142285-0000`, `000240010`), the first one in sorted order."""
    found: dict[str, Path] = {}
    for path in sorted(directory.rglob("*")):
        if path.is_file() and path.suffix.lower() in SOURCE_SUFFIXES:
            found.setdefault(path.stem, path)
    return found


def _merge_manifest(manifest: Path, rows: list[dict], root: Path) -> Path:
    """`manifest` with this set's rows, replacing earlier rows of the same files, keeping the others."""
    mine = {r["path"] for r in rows}
    kept = []
    if manifest.is_file():
        with open(manifest, newline="", encoding="utf-8") as f:
            kept = [r for r in csv.DictReader(f, delimiter="\t") if r["path"] not in mine]
    manifest.parent.mkdir(parents=True, exist_ok=True)
    with atomic_path(manifest) as tmp, open(tmp, "w", newline="", encoding="utf-8") as f:
        writer = csv.DictWriter(f, MANIFEST_COLUMNS, delimiter="\t", extrasaction="ignore", lineterminator="\n")
        writer.writeheader()
        writer.writerows(kept + rows)
    return manifest


def _merge_alignments(target: Path, shipped: Path, ids: set[str]) -> None:
    """`target` (shared/data's `alignments.tsv` format) with the shipped phone segments of `ids`, replacing earlier
    segments of those utterances, keeping the others'."""
    new = shipped.read_text(encoding="utf-8").splitlines(keepends=True)
    old = target.read_text(encoding="utf-8").splitlines(keepends=True) if target.is_file() else new[:1]
    kept = [line for line in old[1:] if line.split("\t", 1)[0] not in ids]
    with atomic_path(target) as tmp:
        tmp.write_text("".join(new[:1] + kept + new[1:]), encoding="utf-8")


def _copy_licence(name: str, corpus_dir: Path) -> None:
    corpus_dir.mkdir(parents=True, exist_ok=True)
    licence = SET_SOURCES[name].licence
    shutil.copyfile(_shipped() / licence, corpus_dir / licence)


def _shipped() -> Path:
    return Path(str(resources.files("speechtok") / "evalsets"))


def _existing_parent(path: Path) -> Path:
    path.mkdir(parents=True, exist_ok=True)
    return path
