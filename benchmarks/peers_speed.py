#!/usr/bin/env python3
"""Adapter overhead: each peer codec measured directly by ../shared/peers/peer_speed.py and through speechtok
(`speechtok.load("peer:CKPT")`, `Tokenizer.encode` / `decode`), in the same process, on the same weights.

For each peer, peer_speed builds the published architecture with random weights; this script saves that very
model in the peer's official checkpoint layout, loads it back through the speechtok adapter, and times both
with peer_speed's own `bench` (10 s of noise at the model's rate, so no resampling; warm-up, then the median of
the timed runs) at batch 1, alternating direct and adapter rounds so that load drift hits both alike.

    .venv/bin/python benchmarks/peers_speed.py       # encodec_24k encodec_48k dac_16k speechtokenizer snac_24k mimi
    .venv/bin/python benchmarks/peers_speed.py --peers encodec_24k --rounds 3 --json /tmp/p.json
    .venv/bin/python benchmarks/peers_speed.py --checkpoints /tmp/peer-ckpts --save-only   # for `speechtok eval`

peer_speed seeds each build, so the checkpoints (`--checkpoints DIR`, kept) are the same weights every time:
the leaderboard rows of `speechtok eval` on them name the same sha256 as the speed rows.

Needs the peer packages in this venv (`pip install --no-deps -r .ci/peers.txt`, see .ci/run). The process
restarts itself with peer_speed's GLIBC_TUNABLES, as the stored figures in ../shared/peers/README.md were taken.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import sys
import tempfile
import time
import warnings
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

import torch  # noqa: E402

# peer_speed name -> the speechtok plugin that loads its official checkpoint (encodec_48k is built here: peer_speed
# has no 48 kHz EnCodec)
PEERS = {
    "encodec_24k": "encodec", "encodec_48k": "encodec", "dac_16k": "dac", "dac_24k": "dac",
    "speechtokenizer": "speechtokenizer", "snac_24k": "snac", "mimi": "mimi",
}
DEFAULT = "encodec_24k,encodec_48k,dac_16k,speechtokenizer,snac_24k,mimi"


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--peers", default=DEFAULT, help=f"comma list of {', '.join(PEERS)}")
    ap.add_argument("--peers-dir", type=Path, default=REPO.parent / "shared" / "peers")
    ap.add_argument("--seconds", type=float, default=10.0)
    ap.add_argument("--rounds", type=int, default=2, help="alternating direct / adapter rounds per peer")
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--json", type=Path)
    ap.add_argument("--checkpoints", type=Path, help="keep the saved checkpoints here (default: a temp dir)")
    ap.add_argument("--save-only", action="store_true", help="write the checkpoints, print their specs, exit")
    args = ap.parse_args()
    sys.path.insert(0, str(args.peers_dir))
    import peer_speed as ps

    ps.reexec_with_tuned_malloc()
    ps.setup_torch(threads=args.threads)
    warnings.simplefilter("ignore")
    import speechtok

    env = dict(ps.environment(), loadavg_start=os.getloadavg())
    rows = []
    with tempfile.TemporaryDirectory() as tmp:
        for name in args.peers.split(","):
            (peer,) = [_encodec_48k(ps)] if name == "encodec_48k" else ps.build_peers([name])
            model = _model_of(peer)
            spec = f"{PEERS[name]}:{_save_official(name, model, peer, (args.checkpoints or Path(tmp)) / name)}"
            if args.save_only:
                print(spec)
                continue
            tok = speechtok.load(spec)
            api = ps.Peer(name=f"{peer.name} via speechtok", sample_rate=tok.sample_rate,
                          encode=lambda wav, t=tok: t.encode(wav, t.sample_rate), decode=lambda c, t=tok: t.decode(c))
            assert tok.sample_rate == peer.sample_rate and tok.num_codebooks == peer.n_codebooks, (tok, peer)
            for r in range(args.rounds):
                for which, p in (("direct", peer), ("speechtok", api)):
                    res = ps.bench_peer(p, seconds=args.seconds, batch=1, budget_s=ps.DEFAULT_BUDGET_S,
                                        min_repeats=ps.DEFAULT_MIN_REPEATS)
                    rows.append({"peer": peer.name, "path": which, "round": r, "spec": spec if which != "direct"
                                 else None, **{k: res[k] for k in ("encode_times", "decode_times", "encode_s",
                                                                    "decode_s", "seconds")}})
                    print(f"[peers_speed] {peer.name:22s} {which:9s} round {r}: encode {res['encode_xrt']:.2f}x "
                          f"decode {res['decode_xrt']:.2f}x  load {os.getloadavg()[0]:.2f}", file=sys.stderr,
                          flush=True)
            del peer, model, tok, api
    if args.save_only:
        return
    env["loadavg_end"] = os.getloadavg()
    print(f"\n{_machine(env)}\n")
    print(_table(rows))
    if args.json:
        args.json.write_text(json.dumps({"environment": env, "rows": rows}, indent=1, default=str))


def _encodec_48k(ps, bandwidth: float = 6.0):
    """The 48 kHz EnCodec as a user of the package runs it, in peer_speed's terms: mono noise on both channels,
    `model.encode` (1 s segments, each normalised), `model.decode` (stereo, overlap-added)."""
    from encodec import EncodecModel

    torch.manual_seed(0)
    m = EncodecModel.encodec_model_48khz(pretrained=False).eval()
    m.set_target_bandwidth(bandwidth)
    n_q = m.quantizer.get_num_quantizers_for_bandwidth(m.frame_rate, bandwidth)
    return ps.Peer(f"encodec_48k@{bandwidth:g}kbps", m.sample_rate, lambda w: m.encode(w.expand(-1, 2, -1)),
                   m.decode, frame_rate=m.frame_rate, n_codebooks=n_q, codebook_size=m.quantizer.bins,
                   params_m=ps.count_params(m), notes="encodec 0.1.1, stereo 48 kHz model, mono input on both")


def _model_of(peer) -> torch.nn.Module:
    """The model that peer_speed's encode closure runs."""
    cells = [c.cell_contents for c in peer.encode.__closure__ or ()]
    return next(c for c in cells if isinstance(c, torch.nn.Module))


def _save_official(name: str, model, peer, out: Path) -> Path:
    """`model` in the layout its project releases checkpoints in; returns the path the adapter takes (+ options)."""
    import peer_speed as ps

    out.mkdir(parents=True, exist_ok=True)
    if name.startswith("encodec"):
        file = out / ("encodec_24khz-d7cc33bc.th" if name == "encodec_24k" else "encodec_48khz-7e698e3e.th")
        torch.save(model.state_dict(), file)
        return Path(f"{file}?q={peer.n_codebooks}")
    if name.startswith("dac"):
        model.save(str(out / "weights.pth"), package=False)
        return out / "weights.pth"
    if name == "speechtokenizer":
        (out / "config.json").write_text(json.dumps(ps.SPEECHTOKENIZER_CONFIG))
        torch.save(model.state_dict(), out / "SpeechTokenizer.pt")
        return out
    if name == "snac_24k":
        (out / "config.json").write_text(json.dumps(ps.SNAC_24K_CONFIG))
        torch.save(model.state_dict(), out / "pytorch_model.bin")
        return out
    if name == "mimi":
        model.save_pretrained(out)
        return Path(f"{out}?q={peer.n_codebooks}")
    raise ValueError(name)


def _table(rows: list[dict]) -> str:
    """Per peer: x-realtime direct and through speechtok (median over rounds of each round's median), and the
    adapter's overhead on the time, by medians and by the fastest run."""
    lines = ["| peer (b=1) | enc xRT direct | enc xRT speechtok | enc overhead: median (fastest) | dec xRT direct | "
             "dec xRT speechtok | dec overhead: median (fastest) |", "|---|---:|---:|---:|---:|---:|---:|"]
    for peer in dict.fromkeys(r["peer"] for r in rows):
        cells = [peer]
        for d in ("encode", "decode"):
            t = {w: [r for r in rows if r["peer"] == peer and r["path"] == w] for w in ("direct", "speechtok")}
            med = {w: statistics.median(x[f"{d}_s"] for x in rs) for w, rs in t.items()}
            fast = {w: min(min(x[f"{d}_times"]) for x in rs) for w, rs in t.items()}
            secs = rows[0]["seconds"]
            cells += [f"{secs / med['direct']:.2f}", f"{secs / med['speechtok']:.2f}",
                      f"{100 * (med['speechtok'] / med['direct'] - 1):+.1f}% "
                      f"({100 * (fast['speechtok'] / fast['direct'] - 1):+.1f}%)"]
        lines.append("| " + " | ".join(cells) + " |")
    return "\n".join(lines)


def _machine(env: dict) -> str:
    return (f"{env.get('cpu', '?')}, {env.get('cpu_count')} cores, torch {env['torch']}, {env['threads']} threads, "
            f"malloc tuned: {env['malloc_tuned']}, load average {env['loadavg_start'][0]:.2f} at start, "
            f"{env['loadavg_end'][0]:.2f} at end, {time.strftime('%Y-%m-%d %H:%M UTC', time.gmtime())}")


if __name__ == "__main__":
    main()
