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

from .markdown import markdown
from .site import build_leaderboard
from .table import COLUMN_TITLES, Entry, Group, LeaderboardFiles, collect

__all__ = ["Entry", "Group", "LeaderboardFiles", "collect", "markdown", "build_leaderboard", "COLUMN_TITLES"]
