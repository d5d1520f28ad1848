"""The comparison leaderboard: results files of `speechtok eval` -> a Markdown table and a static HTML page
(sortable tables, quality-versus-bitrate plots, and listenable samples: the original beside each model's
resynthesis), as `speechtok leaderboard` writes them.

Rows are grouped by evaluation data (`data.name`): LS-test and SO-test are always separate tables. Rows of one
group that were not scored on the same utterances (`data.ids_sha1`) are flagged on the page. Every model can be
on it: whatever `speechtok eval` scored (bundled, checkpoint directory, plugin, `identity`).

    site/index.html            the page (no external resources: it works from file://)
    site/leaderboard.md        the same tables in Markdown
    site/plots/<set>.svg       quality versus nominal bitrate
    site/samples/<set>/...     WAV copies of the listenable samples
"""

from __future__ import annotations

import html
import json
import math
import re
import shutil
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path

from .results import load_results

__all__ = ["Entry", "Group", "LeaderboardFiles", "collect", "markdown", "build_leaderboard", "COLUMN_TITLES"]

COLUMN_TITLES = {
    "pesq_wb": "PESQ-wb", "pesq_nb": "PESQ-nb", "stoi": "STOI", "estoi": "ESTOI", "si_sdr": "SI-SDR (dB)",
    "mel": "mel dist.", "f0_rmse_cents": "F0 RMSE (cents)", "vde": "VDE", "abx_within": "ABX within (%)",
    "abx_across": "ABX across (%)", "encode_xrt": "encode ×RT", "decode_xrt": "decode ×RT",
}
_ORDER = ["pesq_wb", "pesq_nb", "stoi", "estoi", "si_sdr", "mel", "f0_rmse_cents", "vde", "abx_within", "abx_across"]
_SPEED = ["encode_xrt", "decode_xrt"]
_DIGITS = {"si_sdr": 2, "f0_rmse_cents": 1, "encode_xrt": 0, "decode_xrt": 0}
_PERCENT = {"abx_within", "abx_across"}


@dataclass
class Entry:
    """One row of the board: a model at one n_q, from one results file."""

    label: str
    model: str
    n_q: int | None
    status: str
    error: str | None
    kbps: float | None
    effective_kbps: float | None
    values: dict[str, tuple[float, tuple[float, float] | None, int]]  # column -> (mean, ci95, n)
    notes: list[str]
    samples: dict[str, Path]  # utterance id -> wav file
    reference: bool  # a pseudo-model (identity): the ceiling, never "best"
    tokenizer: dict


@dataclass
class Group:
    name: str
    entries: list[Entry] = field(default_factory=list)
    columns: dict[str, bool] = field(default_factory=dict)  # column -> higher is better
    originals: dict[str, Path] = field(default_factory=dict)
    sources: list[dict] = field(default_factory=list)  # per results file: path, created, command, protocol, data
    warnings: list[str] = field(default_factory=list)

    @property
    def ordered_columns(self) -> list[str]:
        rest = sorted(c for c in self.columns if c not in _ORDER and c not in _SPEED)
        return [c for c in _ORDER if c in self.columns] + rest + [c for c in _SPEED if c in self.columns]


@dataclass(frozen=True)
class LeaderboardFiles:
    html: Path
    markdown: Path
    plots: list[Path]
    samples: list[Path]


def collect(results: Sequence[tuple[Path, dict]], labels: dict[str, str] | None = None) -> list[Group]:
    """(path, results dict) pairs -> groups by data set, in the order first seen. `labels` (model as named ->
    text) are shown beside the model, over the labels the results carry."""
    groups: dict[str, Group] = {}
    hashes: dict[str, set] = {}
    for path, res in results:
        data = res["data"]
        group = groups.setdefault(data["name"], Group(data["name"]))
        hashes.setdefault(data["name"], set()).add(data.get("ids_sha1"))
        group.sources.append({"path": str(path), "created": res.get("created"), "command": res.get("command"),
                              "protocol": res.get("protocol", {}), "data": data})
        for column, meta in res.get("columns", {}).items():
            group.columns.setdefault(column, bool(meta.get("higher_is_better", True)))
        samples = res.get("samples") or {}
        sample_dir = (path.parent / samples["dir"]) if samples.get("dir") else None
        if sample_dir is not None and not group.originals:
            group.originals = {uid: sample_dir / rel for uid, rel in samples.get("original", {}).items()}
        for row in res["rows"]:
            if row["status"] == "skipped":  # an n_q the model does not have: a note, not a row
                group.warnings.append(f"{row['model']}: n_q {row['n_q']} skipped ({row.get('error')}).")
                continue
            group.entries.append(_entry(row, data, sample_dir, (labels or {}).get(row["model"], row.get("label"))))
    for name, seen in hashes.items():
        if len(seen) > 1:
            groups[name].warnings.append(
                f"The results for {name} were not all computed on the same utterances (different utterance lists, "
                "or different files skipped): compare their rows with care.")
    return list(groups.values())


def _entry(row: dict, data: dict, sample_dir: Path | None, user_label: str | None = None) -> Entry:
    tok = row.get("tokenizer") or {}
    label = row["model"]
    if "/" in label or "\\" in label:  # a checkpoint path: its name (after `plugin:`), the path in the tooltip
        plugin, sep, _ = label.partition(":")
        name = Path(label.rstrip("/\\")).name
        label = f"{plugin}:{name}" if sep and "/" not in plugin and "\\" not in plugin else name
    if user_label:
        label = f"{label} [{user_label}]"
    values = {}
    for column, s in (row.get("aggregate") or {}).items():
        if s is not None and s.get("mean") is not None:
            ci = tuple(s["ci95"]) if s.get("ci95") else None
            values[column] = (float(s["mean"]), ci, int(s.get("n", 0)))
    bitrate = row.get("bitrate") or {}
    notes = []
    if row.get("failures"):
        notes.append(f"{len(row['failures'])} utterance(s) failed")
    for metric, count in (row.get("metric_failures") or {}).items():
        notes.append(f"{metric} failed on {count}")
    if data.get("skipped"):
        notes.append(f"{len(data['skipped'])} file(s) skipped")
    if tok.get("checkpoint"):  # which weights: the full path and hash are in the results and the tooltip
        notes.append(f"weights sha256 {tok['checkpoint']['sha256'][:12]}")
    samples = {}
    if sample_dir is not None:
        samples = {uid: sample_dir / rel for uid, rel in (row.get("samples") or {}).items()}
    return Entry(label, row["model"], row.get("n_q"), row["status"], row.get("error"),
                 bitrate.get("nominal_bps") / 1000 if bitrate.get("nominal_bps") else None,
                 bitrate.get("effective_bps") / 1000 if bitrate.get("effective_bps") else None,
                 values, notes, samples, tok.get("family") == "identity", tok)


# -- formatting ------------------------------------------------------------------------------------------------


def _title(column: str) -> str:
    return COLUMN_TITLES.get(column, column)


def _fmt(column: str, value: float) -> str:
    if column in _PERCENT:
        return f"{100 * value:.1f}"
    if column in _SPEED and abs(value) < 10:
        return f"{value:.1f}"
    return f"{value:.{_DIGITS.get(column, 3)}f}"


def _cell(column: str, v: tuple | None) -> str:
    if v is None:
        return "—"
    mean, ci, _ = v
    if ci is None:
        return _fmt(column, mean)
    half = (ci[1] - ci[0]) / 2
    return f"{_fmt(column, mean)} ± {_fmt(column, half)}"


def _best(group: Group, column: str) -> float | None:
    vals = [e.values[column][0] for e in group.entries
            if e.status == "ok" and not e.reference and column in e.values]
    if not vals:
        return None
    return max(vals) if group.columns.get(column, True) else min(vals)


def _kbps(v: float | None) -> str:
    return "—" if v is None else f"{v:.2f}"


def _arrow(group: Group, column: str) -> str:
    return "↑" if group.columns.get(column, True) else "↓"


def _slug(text: str) -> str:
    return re.sub(r"[^A-Za-z0-9._-]+", "_", text).strip("_.")[-60:] or "set"


# -- Markdown --------------------------------------------------------------------------------------------------


def markdown(groups: Sequence[Group], plots: dict[str, str] | None = None) -> str:
    """One table per data set: mean ± half the 95% interval; the best non-reference value in bold."""
    out = ["# speechtok leaderboard", ""]
    for group in groups:
        cols = group.ordered_columns
        scored = sorted({s["data"].get("scored", 0) for s in group.sources})
        out += [f"## {group.name}", "", f"Utterances scored: {', '.join(map(str, scored))}. "
                "Mean ± half the 95% interval; ↑ higher is better, ↓ lower is better; best non-reference value "
                "in bold; kbps is the nominal bitrate, eff. kbps the entropy-based one.", ""]
        out += [f"> {w}" for w in group.warnings] + ([""] if group.warnings else [])
        head = ["model", "n_q", "kbps", "eff. kbps", *(f"{_title(c)} {_arrow(group, c)}" for c in cols), "notes"]
        out.append("| " + " | ".join(head) + " |")
        out.append("|" + "|".join(["---", "---:", "---:", "---:", *["---:"] * len(cols), "---"]) + "|")
        for e in group.entries:
            if e.status != "ok":
                cells = ["—"] * len(cols)
                notes = f"failed: {e.error}"
            else:
                best = {c: _best(group, c) for c in cols}
                cells = [(f"**{_cell(c, e.values.get(c))}**" if c in e.values and e.values[c][0] == best[c]
                          else _cell(c, e.values.get(c))) for c in cols]
                notes = "; ".join(e.notes)
            row = [e.label, "—" if e.n_q is None else str(e.n_q), _kbps(e.kbps), _kbps(e.effective_kbps), *cells,
                   notes.replace("|", "/")]
            out.append("| " + " | ".join(row) + " |")
        if plots and group.name in plots:
            out += ["", f"![quality versus bitrate, {group.name}]({plots[group.name]})"]
        out.append("")
    return "\n".join(out)


# -- HTML ------------------------------------------------------------------------------------------------------

_CSS = """
body{font:14px/1.45 system-ui,-apple-system,"Segoe UI",Roboto,sans-serif;margin:24px auto;max-width:1400px;
color:#1d2330;padding:0 16px}
h1{font-size:22px;margin:0 0 4px}h2{font-size:18px;margin:28px 0 6px;border-bottom:1px solid #dde;padding-bottom:4px}
h3{font-size:15px;margin:18px 0 6px}.muted{color:#667}
.warn{background:#fff4d6;border:1px solid #e8c66a;padding:6px 10px}
div.scroll{overflow-x:auto;margin:8px 0}
table.board{border-collapse:collapse;min-width:100%;font-variant-numeric:tabular-nums;font-size:13px}
table.board th,table.board td{border-bottom:1px solid #e3e6ee;padding:4px 7px;text-align:right;white-space:nowrap}
table.board th{background:#f3f5fa;cursor:pointer;user-select:none;position:sticky;top:0}
table.board th:hover{background:#e6ebf5}table.board th.sorted-asc::after{content:" ▲"}
table.board th.sorted-desc::after{content:" ▼"}table.board td.l,table.board th.l{text-align:left}
table.board td small{color:#778}table.board td.best{font-weight:700;background:#eaf6ea}
table.board tr.ref td{color:#556;font-style:italic}table.board tr.failed td{background:#fdf0f0}
table.board td.err{text-align:left;white-space:normal;color:#a22;min-width:300px}
img.plot{max-width:100%;border:1px solid #e3e6ee;margin:8px 0}
table.listen{border-collapse:collapse}
table.listen td,table.listen th{padding:4px 8px;text-align:left;vertical-align:middle;
white-space:nowrap}
table.listen audio{width:240px;height:32px}details{margin:6px 0}
pre{background:#f6f7fb;padding:8px;overflow:auto;font-size:12px}
"""

_JS = """
(function(){
  function val(td){var v=td.getAttribute('data-v');return v===null||v===''?null:parseFloat(v);}
  function sortTable(table,col,desc){
    var ths=table.querySelectorAll('th');var idx=-1;
    ths.forEach(function(th,i){th.classList.remove('sorted-asc','sorted-desc');if(th.dataset.col===col)idx=i;});
    if(idx<0)return false;
    ths[idx].classList.add(desc?'sorted-desc':'sorted-asc');
    var body=table.tBodies[0];var rows=Array.prototype.slice.call(body.rows);
    rows.sort(function(a,b){
      var x=a.cells[idx]?val(a.cells[idx]):null,y=b.cells[idx]?val(b.cells[idx]):null;
      if(x===null&&y===null)return 0;if(x===null)return 1;if(y===null)return -1;
      if(x===y)return 0;return (x<y?-1:1)*(desc?-1:1);});
    rows.forEach(function(r){body.appendChild(r);});return true;}
  document.querySelectorAll('table.board').forEach(function(table){
    table.querySelectorAll('th[data-col]').forEach(function(th){
      th.addEventListener('click',function(){
        var best=th.dataset.hib==='1';var desc=th.classList.contains('sorted-desc')?false:
          th.classList.contains('sorted-asc')?true:best;sortTable(table,th.dataset.col,desc);});});});
  var m=/sort=([^&]+)/.exec(location.hash);
  if(m){var col=decodeURIComponent(m[1]);
    document.querySelectorAll('table.board').forEach(function(table){
      var th=table.querySelector('th[data-col="'+col+'"]');if(!th)return;
      var desc=/desc=([01])/.exec(location.hash);sortTable(table,col,desc?desc[1]==='1':th.dataset.hib==='1');});}
})();
"""


def _html_table(group: Group) -> str:
    e = html.escape
    cols = group.ordered_columns
    best = {c: _best(group, c) for c in cols}
    head = ['<th class="l" data-col="model">model</th>', '<th data-col="n_q" data-hib="1">n_q</th>',
            '<th data-col="kbps" data-hib="0" title="nominal bitrate: frame rate × Σ log2(codebook size)">kbps</th>',
            '<th data-col="eff_kbps" data-hib="0" title="frame rate × Σ measured codebook entropy">eff. kbps</th>']
    head += [f'<th data-col="{e(c)}" data-hib="{int(group.columns.get(c, True))}">{e(_title(c))} '
             f'{_arrow(group, c)}</th>' for c in cols]
    head.append('<th class="l" data-col="notes">notes</th>')
    body = []
    for i, en in enumerate(group.entries):
        classes = " ".join(k for k, on in (("ref", en.reference), ("failed", en.status != "ok")) if on)
        tip = e(json.dumps({k: en.tokenizer.get(k) for k in ("name", "family", "source", "checkpoint", "sample_rate",
                                                               "frame_rate", "num_codebooks", "codebook_size",
                                                               "device", "dtype")
                            if en.tokenizer.get(k) is not None}))
        cells = [f'<td class="l" data-v="{i}" title="{e(en.model)}\n{tip}">{e(en.label)}</td>',
                 f'<td data-v="{"" if en.n_q is None else en.n_q}">{"—" if en.n_q is None else en.n_q}</td>',
                 f'<td data-v="{"" if en.kbps is None else en.kbps}">{_kbps(en.kbps)}</td>',
                 f'<td data-v="{"" if en.effective_kbps is None else en.effective_kbps}">'
                 f'{_kbps(en.effective_kbps)}</td>']
        if en.status != "ok":
            cells.append(f'<td class="err" colspan="{len(cols) + 1}">failed: {e(en.error or "")}</td>')
        else:
            for c in cols:
                v = en.values.get(c)
                if v is None:
                    cells.append('<td data-v="">—</td>')
                    continue
                mean, ci, n = v
                text = _fmt(c, mean) + (f" <small>± {_fmt(c, (ci[1] - ci[0]) / 2)}</small>" if ci else "")
                cls = ' class="best"' if best[c] is not None and mean == best[c] and not en.reference else ""
                cells.append(f'<td{cls} data-v="{mean!r}" title="n = {n}">{text}</td>')
            cells.append(f'<td class="l">{e("; ".join(en.notes))}</td>')
        body.append(f'<tr class="{classes}">' + "".join(cells) + "</tr>")
    return (f'<div class="scroll"><table class="board" id="board-{e(_slug(group.name))}"><thead><tr>'
            f'{"".join(head)}</tr></thead><tbody>{"".join(body)}</tbody></table></div>')


def _html_samples(group: Group, site: Path, copied: dict[Path, str], limit: int) -> str:
    e = html.escape
    uids = list(group.originals)[:limit]
    if not uids:
        return ""
    entries = [en for en in group.entries if en.status == "ok" and any(u in en.samples for u in uids)]
    head = "<tr><th>utterance</th><th>original</th>" + "".join(
        f"<th>{e(en.label)}{'' if en.n_q is None else f' (n_q {en.n_q})'}</th>" for en in entries) + "</tr>"
    rows = []
    for uid in uids:
        cells = [f"<td>{e(uid)}</td>", f"<td>{_audio(copied.get(group.originals[uid]))}</td>"]
        cells += [f"<td>{_audio(copied.get(en.samples.get(uid)) if en.samples.get(uid) else None)}</td>"
                  for en in entries]
        rows.append("<tr>" + "".join(cells) + "</tr>")
    return (f"<h3>Listen</h3><p class=muted>The original beside each resynthesis (16-bit WAV at the original's rate, "
            f"as scored).</p><div class=scroll><table class=listen>{head}{''.join(rows)}</table></div>")


def _audio(src: str | None) -> str:
    if src is None:
        return "—"
    return f'<audio controls preload="metadata" src="{html.escape(src)}"></audio>'


def _html_page(groups: Sequence[Group], plots: dict[str, str], samples_html: dict[str, str]) -> str:
    e = html.escape
    parts = ["<!doctype html><html lang=en><head><meta charset=utf-8>",
             "<meta name=viewport content=\"width=device-width,initial-scale=1\">",
             "<title>speechtok leaderboard</title>", f"<style>{_CSS}</style></head><body>",
             "<h1>speechtok leaderboard</h1>",
             "<p class=muted>Tokenizers compared on the same utterances with the same metrics. Click a column "
             "to sort (best first, again to reverse). Mean ± half the 95% interval over utterances; ABX in % "
             "error; ×RT = seconds of audio per second.</p>"]
    for group in groups:
        scored = sorted({s["data"].get("scored", 0) for s in group.sources})
        speakers = sorted({s["data"]["speakers"] for s in group.sources if s["data"].get("speakers")})
        who = f" from {', '.join(map(str, speakers))} speakers" if speakers else ""
        skipped = sum(len(s["data"].get("skipped", [])) for s in group.sources)
        parts.append(f"<h2 id=\"{e(_slug(group.name))}\">{e(group.name)}</h2>")
        parts.append(f"<p class=muted>{', '.join(map(str, scored))} utterances scored"
                     f"{who}"
                     f"{f'; {skipped} file(s) skipped' if skipped else ''}.</p>")
        parts += [f"<p class=warn>{e(w)}</p>" for w in group.warnings]
        parts.append(_html_table(group))
        if group.name in plots:
            parts.append(f'<h3>Quality versus bitrate</h3><img class=plot src="{e(plots[group.name])}" '
                         f'alt="quality versus bitrate, {e(group.name)}">')
        parts.append(samples_html.get(group.name, ""))
        parts.append("<h3>Protocol</h3>")
        for src in group.sources:
            parts.append(f"<details><summary>{e(Path(src['path']).name)} — {e(str(src['created']))}</summary>"
                         f"<p>{e(src['command'] or '')}</p><pre>{e(json.dumps(src['protocol'], indent=1))}</pre>"
                         "</details>")
    parts.append(f"<script>{_JS}</script></body></html>")
    return "\n".join(parts)


# -- the whole site --------------------------------------------------------------------------------------------


def build_leaderboard(paths: Sequence[str | Path], out_dir: str | Path, samples: int = 3,
                      plots: bool = True, plot_format: str = "svg",
                      labels: dict[str, str] | None = None) -> LeaderboardFiles:
    """Read results files, write `out_dir/index.html`, `leaderboard.md`, plots and sample copies. `labels`:
    model as named -> a label shown beside its rows (e.g. "random weights")."""
    from ..fileio import write_text

    out = Path(out_dir)
    results = [(Path(p), load_results(p)) for p in paths]
    groups = collect(results, labels)
    out.mkdir(parents=True, exist_ok=True)
    plot_paths: dict[str, str] = {}
    made_plots: list[Path] = []
    if plots:
        for group in groups:
            made = _plot(group, out / "plots" / f"{_slug(group.name)}.{plot_format}")
            if made is not None:
                made_plots.append(made)
                plot_paths[group.name] = made.relative_to(out).as_posix()
    copied: dict[Path, str] = {}
    samples_html = {}
    for group in groups:
        for src, dst in _sample_copies(group, out, samples):
            if src.is_file():
                dst.parent.mkdir(parents=True, exist_ok=True)
                shutil.copyfile(src, dst)
                copied[src] = dst.relative_to(out).as_posix()
        samples_html[group.name] = _html_samples(group, out, copied, samples)
    md = out / "leaderboard.md"
    write_text(md, markdown(groups, plot_paths))
    page = out / "index.html"
    write_text(page, _html_page(groups, plot_paths, samples_html))
    return LeaderboardFiles(page, md, made_plots, [out / rel for rel in copied.values()])


def _sample_copies(group: Group, out: Path, limit: int) -> list[tuple[Path, Path]]:
    base = out / "samples" / _slug(group.name)
    uids = list(group.originals)[:limit]
    pairs = [(group.originals[u], base / "original" / group.originals[u].name) for u in uids]
    for i, en in enumerate(group.entries):
        folder = f"{i:02d}-{_slug(en.label)}" + ("" if en.n_q is None else f"-q{en.n_q}")
        pairs += [(en.samples[u], base / folder / en.samples[u].name) for u in uids if u in en.samples]
    return pairs


def _plot(group: Group, path: Path) -> Path | None:
    from .plots import Point, quality_vs_bitrate

    columns = [c for c in group.ordered_columns if c not in _SPEED and c != "vde"]
    points = []
    for en in group.entries:
        if en.status != "ok" or (en.kbps is None and not en.reference):
            continue
        label = en.label
        values = {c: (v[0] * (100 if c in _PERCENT else 1),
                      None if v[1] is None else tuple(x * (100 if c in _PERCENT else 1) for x in v[1]))
                  for c, v in en.values.items() if c in columns and math.isfinite(v[0])}
        points.append(Point(label, en.kbps, values))
    if not any(p.kbps for p in points):
        return None
    return quality_vs_bitrate(points, columns, {c: f"{_title(c)} {_arrow(group, c)}" for c in columns}, path,
                              title=group.name, chance={c: 50.0 for c in _PERCENT})
