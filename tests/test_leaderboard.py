"""`speechtok leaderboard`: results files -> Markdown tables, a static HTML page (sortable tables, plots,
listenable samples), checked as files and, where Debian's chromium is installed, in a real headless browser."""

from __future__ import annotations

import copy
import json
import math
import re
import shutil
import struct
import subprocess
import sys
from html.parser import HTMLParser
from pathlib import Path

import pytest

from speechtok.eval import EvalConfig, build_leaderboard, evaluate, utterances, write_results

from .evalclips import write_clips

pytest.importorskip("pesq")
pytest.importorskip("pystoi")
pytest.importorskip("matplotlib")

CHROMIUM = next((shutil.which(n) for n in ("chromium", "chromium-browser", "google-chrome", "chromium-headless-shell")
                 if shutil.which(n)), None)


@pytest.fixture(scope="module")
def results_files(tmp_path_factory, tiny_ckpt) -> list[Path]:
    """Two results files: the clips (identity, the tiny codec at n_q 2 and 8, a model that does not exist),
    and the same models on another 'set' with an ABX figure added, to make two tables."""
    root = tmp_path_factory.mktemp("lb")
    manifest = write_clips(root / "clips")
    cfg = EvalConfig(metrics=("pesq_wb", "stoi", "mel"), n_qs=(2, 8), samples=2,
                     samples_dir=str(root / "a.samples"), progress=False)
    res = evaluate(["identity", str(tiny_ckpt), "no-such-model"], utterances(manifest), cfg, data_name="clips")
    a = write_results(res, root / "a.json")
    other = copy.deepcopy(res)
    other["data"]["name"] = "other-set"
    other["rows"] = other["rows"][1:3]
    for row, error in zip(other["rows"], (0.25, 0.125)):
        row["aggregate"]["abx_within"] = {"mean": error, "ci95": None, "std": None, "n": 1000}
    other["columns"]["abx_within"] = {"higher_is_better": False}
    b = write_results(other, root / "b.json")
    return [a, b]


@pytest.fixture(scope="module")
def site(results_files, tmp_path_factory):
    return build_leaderboard(results_files, tmp_path_factory.mktemp("site") / "site", samples=2)


class _Page(HTMLParser):
    def __init__(self):
        super().__init__()
        self.audio, self.images, self.tables, self.headers = [], [], 0, []

    def handle_starttag(self, tag, attrs):
        a = dict(attrs)
        if tag == "audio":
            self.audio.append(a["src"])
        elif tag == "img":
            self.images.append(a["src"])
        elif tag == "table" and "board" in (a.get("class") or ""):
            self.tables += 1
        elif tag == "th" and "data-col" in a:
            self.headers.append(a["data-col"])


def test_markdown_tables(site):
    md = site.markdown.read_text()
    assert md.count("\n## ") == 2 and "## clips" in md and "## other-set" in md  # one table per data set
    header = next(line for line in md.splitlines() if line.startswith("| model |"))
    assert header.startswith("| model | n_q | kbps | eff. kbps | frames/s | tokens/s | vocab | usage | perplexity "
                             "| PESQ-wb ↑ |")
    rows = [line for line in md.splitlines() if line.startswith("| ") and not line.startswith("| model")]
    assert rows[0].startswith("| identity | — | — | — | — | — | — | — | — | 4.64")
    assert rows[1].startswith("| tiny-codec | 2 | 0.60 | ") and rows[2].startswith("| tiny-codec | 8 | 2.40 | ")
    cells = [c.strip() for c in rows[2].split("|")[1:]]  # frames/s, tokens/s (8 codebooks), vocab
    assert float(cells[5]) == pytest.approx(8 * float(cells[4])) and 2400 / float(cells[5]) == pytest.approx(
        math.log2(int(cells[6])))
    usage, perplexity = float(cells[7].rstrip("%")) / 100, float(cells[8])  # the codes' own statistics
    assert 0 < usage <= 1 and 1 <= perplexity <= int(cells[6]) * usage + 1e-9
    assert "failed: cannot load: no-such-model" in rows[3]
    assert "| **12.5** |" in md and "| 25.0 |" in md  # ABX in %, lower is better: the best in bold
    assert "![quality versus bitrate, clips](plots/clips.svg)" in md


def test_html_page_files(site):
    out = site.html.parent
    page = _Page()
    page.feed(site.html.read_text())
    assert page.tables == 2
    assert page.headers[:10] == ["model", "n_q", "kbps", "eff_kbps", "frame_rate", "tokens", "vocab", "usage",
                                 "perplexity", "pesq_wb"]
    # 2 utterances: the original and 3 resyntheses on the first set, the original and 2 on the second
    assert len(page.audio) == 2 * 4 + 2 * 3 and all((out / src).is_file() for src in page.audio)
    assert sorted({Path(s).parent.name for s in page.audio if "/clips/" in s}) == [
        "00-identity", "01-tiny-codec-q2", "02-tiny-codec-q8", "original"]
    assert page.images == ["plots/clips.svg", "plots/other-set.svg"]
    for plot in site.plots:
        text = plot.read_text()
        assert plot.suffix == ".svg" and "<svg" in text and "nominal bitrate" in text
    assert "https://" not in site.html.read_text().split("<body>", 1)[1].split("<details>", 1)[0]  # works offline


def test_leaderboard_cli(results_files, tmp_path):
    out = tmp_path / "site"
    res = subprocess.run([sys.executable, "-m", "speechtok.cli", "leaderboard", *map(str, results_files), "-o",
                          str(out), "--no-plots", "--samples", "1"], capture_output=True, text=True, timeout=120)
    assert res.returncode == 0, res.stderr
    assert res.stdout.strip() == str(out / "index.html")
    assert (out / "leaderboard.md").is_file() and not (out / "plots").exists()
    assert len(list((out / "samples").rglob("*.wav"))) == 4 + 3  # 1 utterance: original + 3 rows, original + 2
    bad = tmp_path / "bad.json"
    bad.write_text(json.dumps({"schema": "something-else"}))
    res = subprocess.run([sys.executable, "-m", "speechtok.cli", "leaderboard", str(bad), "-o", str(out)],
                         capture_output=True, text=True, timeout=60)
    assert res.returncode == 1 and "bad.json: missing key" in res.stderr


def test_different_utterances_are_flagged(results_files, tmp_path):
    res = json.loads(results_files[0].read_text())
    res["data"]["ids_sha1"] = "0" * 40
    res["data"]["skipped"] = [{"id": "clip3", "path": "clip3.wav", "reason": "no such file"}]
    other = tmp_path / "c.json"
    other.write_text(json.dumps(res))
    files = build_leaderboard([results_files[0], other], tmp_path / "site", plots=False)
    md = files.markdown.read_text()
    assert "not all computed on the same utterances" in md and "1 file(s) skipped" in md


def _png_size(path: Path) -> tuple[int, int]:
    data = path.read_bytes()
    assert data[:8] == b"\x89PNG\r\n\x1a\n"
    return struct.unpack(">II", data[16:24])


@pytest.mark.skipif(CHROMIUM is None, reason="chromium is not installed")
def test_page_in_a_real_browser(site, tmp_path):
    """The page renders in headless chromium, and its table sorts there (`#sort=COLUMN` sorts on load)."""
    flags = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking", "--no-first-run",
             f"--user-data-dir={tmp_path / 'profile'}"]
    url = site.html.resolve().as_uri()
    dom = subprocess.run([CHROMIUM, *flags, "--dump-dom", url + "#sort=pesq_wb&desc=0"], capture_output=True,
                         text=True, timeout=90).stdout
    table = dom.split('<table class="board"', 2)[1].split("</table>")[0]
    head, body = table.split("</thead>")
    assert re.search(r'<th data-col="pesq_wb"[^>]*class="sorted-asc"', head)
    valued = re.findall(r'<th data-col="([^"]+)"', head)  # the columns whose cells carry data-v, in order
    assert {"frame_rate", "tokens", "vocab", "usage", "perplexity", "pesq_wb"} <= set(valued)
    rows = []  # (class, label, PESQ) in the order the browser left them
    for tr in body.split("<tr ")[1:]:
        label = re.search(r'<td class="l"[^>]*>([^<]+)</td>', tr).group(1)
        values = re.findall(r'<td data-v="([^"]*)"', tr)  # the value cells (the label's has its own class)
        pesq = values[valued.index("pesq_wb")] if len(values) == len(valued) else ""
        rows.append((re.match(r'class="([^"]*)"', tr).group(1), label, pesq))
    pesq = [float(v) for _, _, v in rows if v]
    assert pesq == sorted(pesq) and len(pesq) == 3  # ascending, as asked
    assert [(c, label) for c, label, _ in rows][2:] == [("ref", "identity"), ("failed", "no-such-model")]
    shot = tmp_path / "page.png"
    subprocess.run([CHROMIUM, *flags, "--hide-scrollbars", "--window-size=1280,1600", f"--screenshot={shot}", url],
                   capture_output=True, timeout=90)
    assert shot.is_file() and _png_size(shot) == (1280, 1600) and shot.stat().st_size > 30_000


def test_best_is_marked_only_where_a_model_is_clearly_best():
    from speechtok.eval.leaderboard.table import Entry, Group, best_value

    def entry(label, mean, ci, reference=False):
        return Entry(label, label, 8, "ok", None, 1.0, None, {"pesq_wb": (mean, ci, 30)}, [], {}, reference, {})

    group = Group("set", columns={"pesq_wb": True})
    group.entries = [entry("identity", 4.6, None, reference=True), entry("a", 2.0, (1.9, 2.1))]
    assert best_value(group, "pesq_wb") is None  # one model: nothing to tell apart (the reference never counts)
    group.entries.append(entry("b", 1.95, (1.8, 2.05)))
    assert best_value(group, "pesq_wb") is None  # intervals overlap
    group.entries.append(entry("c", 3.0, (2.8, 3.2)))
    assert best_value(group, "pesq_wb") == 3.0
    group.columns["pesq_wb"] = False  # lower is better: a (2.0) against b (1.95), overlapping
    assert best_value(group, "pesq_wb") is None


def test_tokens_per_second_of_codebooks_at_other_rates_and_sizes():
    from speechtok.eval.leaderboard.table import Entry

    def entry(n_q, kbps, tokenizer):
        return Entry("m", "m", n_q, "ok", None, kbps, None, {}, [], {}, False, tokenizer)

    assert entry(8, 4.0, {"frame_rate": 50.0, "codebook_size": 1024}).tokens_per_second == pytest.approx(400)
    snac = {"frame_rate": 47.0, "codebook_size": 4096}  # 12 + 23 + 47 codes a second at 12 bits each
    assert entry(3, 82 * 12 / 1000, snac).tokens_per_second == pytest.approx(82)
    dualcodec = {"frame_rate": 12.5, "codebook_size": 16384, "codebook_sizes": [16384] + [4096] * 7}
    assert entry(8, 1.225, dualcodec).tokens_per_second == pytest.approx(100)  # not 1225 / 14 bits
