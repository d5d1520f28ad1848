"""The leaderboard as one static HTML page: sortable tables, plots and listenable samples, with no external
resources (it works from file://)."""

from __future__ import annotations

import html
import json
from collections.abc import Sequence
from pathlib import Path

from .table import (
    Group,
    best_value,
    column_title,
    direction_arrow,
    format_value,
    kbps_text,
    percent_text,
    rate_text,
    slugify,
)

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
    best = {c: best_value(group, c) for c in cols}
    head = ['<th class="l" data-col="model">model</th>', '<th data-col="n_q" data-hib="1">n_q</th>',
            '<th data-col="kbps" data-hib="0" title="nominal bitrate: frame rate × Σ log2(codebook size)">kbps</th>',
            '<th data-col="eff_kbps" data-hib="0" title="frame rate × Σ measured codebook entropy">eff. kbps</th>',
            '<th data-col="frame_rate" data-hib="0">frames/s</th>',
            '<th data-col="tokens" data-hib="0" title="codes per second at this n_q">tokens/s</th>',
            '<th data-col="vocab" data-hib="0" title="codes one codebook holds">vocab</th>',
            '<th data-col="usage" data-hib="1" title="share of each codebook used, mean">usage</th>',
            '<th data-col="perplexity" data-hib="1" title="2^entropy of each codebook, mean">perplexity</th>']
    head += [f'<th data-col="{e(c)}" data-hib="{int(group.columns.get(c, True))}">{e(column_title(c))} '
             f'{direction_arrow(group, c)}</th>' for c in cols]
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
                 f'<td data-v="{"" if en.kbps is None else en.kbps}">{kbps_text(en.kbps)}</td>',
                 f'<td data-v="{"" if en.effective_kbps is None else en.effective_kbps}">'
                 f'{kbps_text(en.effective_kbps)}</td>']
        cells += [f'<td data-v="{"" if v is None else v}">{rate_text(v)}</td>'
                  for v in (en.frame_rate, en.tokens_per_second, en.vocab)]
        cells += [f'<td data-v="{"" if en.usage is None else en.usage}">{percent_text(en.usage)}</td>',
                  f'<td data-v="{"" if en.perplexity is None else en.perplexity}">{rate_text(en.perplexity)}</td>']
        if en.status != "ok":
            cells.append(f'<td class="err" colspan="{len(cols) + 1}">failed: {e(en.error or "")}</td>')
        else:
            for c in cols:
                v = en.values.get(c)
                if v is None:
                    cells.append('<td data-v="">—</td>')
                    continue
                mean, ci, n = v
                spread = f" <small>± {format_value(c, (ci[1] - ci[0]) / 2)}</small>" if ci else ""
                text = format_value(c, mean) + spread
                cls = ' class="best"' if best[c] is not None and mean == best[c] and not en.reference else ""
                cells.append(f'<td{cls} data-v="{mean!r}" title="n = {n}">{text}</td>')
            cells.append(f'<td class="l">{e("; ".join(en.notes))}</td>')
        body.append(f'<tr class="{classes}">' + "".join(cells) + "</tr>")
    return (f'<div class="scroll"><table class="board" id="board-{e(slugify(group.name))}"><thead><tr>'
            f'{"".join(head)}</tr></thead><tbody>{"".join(body)}</tbody></table></div>')


def html_samples(group: Group, site: Path, copied: dict[Path, str], limit: int) -> str:
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


def html_page(groups: Sequence[Group], plots: dict[str, str], samples_html: dict[str, str]) -> str:
    e = html.escape
    parts = ["<!doctype html><html lang=en><head><meta charset=utf-8>",
             "<meta name=viewport content=\"width=device-width,initial-scale=1\">",
             "<title>speechtok leaderboard</title>", f"<style>{_CSS}</style></head><body>",
             "<h1>speechtok leaderboard</h1>",
             "<p class=muted>Tokenizers compared on the same utterances with the same metrics. Click a column "
             "to sort (best first, again to reverse). Mean ± half the 95% interval over utterances; ABX in % "
             "error; ×RT = seconds of audio per second. Highlighted: the best model where its 95% interval "
             "clears the runner-up's (the reference rows never).</p>"]
    for group in groups:
        scored = sorted({s["data"].get("scored", 0) for s in group.sources})
        speakers = sorted({s["data"]["speakers"] for s in group.sources if s["data"].get("speakers")})
        who = f" from {', '.join(map(str, speakers))} speakers" if speakers else ""
        skipped = sum(len(s["data"].get("skipped", [])) for s in group.sources)
        parts.append(f"<h2 id=\"{e(slugify(group.name))}\">{e(group.name)}</h2>")
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
