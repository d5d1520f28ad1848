"""CLI subcommands that live in their own module. Each module has `register(subparsers)`, which adds its
parser(s) and sets `func` to a callable `(args) -> exit code`. `cli.py` registers every name in COMMANDS."""

COMMANDS: list[str] = ["evaluate", "leaderboard", "abx", "pretokenize", "convert", "kmeans", "data", "fetch",
                       "export_onnx"]
