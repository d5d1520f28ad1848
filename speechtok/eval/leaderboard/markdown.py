"""The leaderboard as Markdown: one table a group, best values in bold, links to the plots."""

from __future__ import annotations

from collections.abc import Sequence

from .table import Group, best_value, cell_text, column_header, kbps_text, percent_text, rate_text


def markdown(groups: Sequence[Group], plots: dict[str, str] | None = None) -> str:
    """One table per data set: mean ± half the 95% interval; the clearly best model's value in bold."""
    out = ["# speechtok leaderboard", ""]
    for group in groups:
        cols = group.ordered_columns
        scored = sorted({s["data"].get("scored", 0) for s in group.sources})
        out += [f"## {group.name}", "", f"Utterances scored: {', '.join(map(str, scored))}. "
                "Mean ± half the 95% interval; ↑ higher is better, ↓ lower is better; in bold the best model "
                "where its interval clears the runner-up's (references never); kbps is the nominal bitrate, "
                "eff. kbps the entropy-based one; tokens/s counts codes at "
                "this n_q, vocab is one codebook's size, usage the share of its codes used and perplexity "
                "2^entropy (means over the codebooks).", ""]
        out += [f"> {w}" for w in group.warnings] + ([""] if group.warnings else [])
        head = ["model", "n_q", "kbps", "eff. kbps", "frames/s", "tokens/s", "vocab", "usage", "perplexity",
                *(column_header(group, c) for c in cols), "notes"]
        out.append("| " + " | ".join(head) + " |")
        out.append("|" + "|".join(["---", *["---:"] * (8 + len(cols)), "---"]) + "|")
        for e in group.entries:
            if e.status != "ok":
                cells = ["—"] * len(cols)
                notes = f"failed: {e.error}"
            else:
                best = {c: best_value(group, c) for c in cols}
                cells = [(f"**{cell_text(c, e.values.get(c))}**" if c in e.values and e.values[c][0] == best[c]
                          else cell_text(c, e.values.get(c))) for c in cols]
                notes = "; ".join(e.notes)
            row = [e.label, "—" if e.n_q is None else str(e.n_q), kbps_text(e.kbps), kbps_text(e.effective_kbps),
                   rate_text(e.frame_rate), rate_text(e.tokens_per_second), rate_text(e.vocab),
                   percent_text(e.usage), rate_text(e.perplexity), *cells,
                   notes.replace("|", "/")]
            out.append("| " + " | ".join(row) + " |")
        if plots and group.name in plots:
            out += ["", f"![quality versus bitrate, {group.name}]({plots[group.name]})"]
        out.append("")
    return "\n".join(out)
