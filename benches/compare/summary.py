#!/usr/bin/env python3
"""The table of a benches/compare/run.sh sitting: each figure for the base and the new build, and their ratio.

    python3 benches/compare/summary.py OUT_DIR
"""
import json
import pathlib
import re
import sys


def load(path):
    try:
        return json.loads(path.read_text())
    except (OSError, ValueError):
        return None


def rss(path, field):
    """A VmHWM / VmRSS / Settled line of a .rss file, in MiB."""
    try:
        for line in path.read_text().splitlines():
            if line.startswith(field + ":"):
                return int(re.findall(r"\d+", line)[0]) / 1024
    except OSError:
        pass
    return None


def main(out):
    out = pathlib.Path(out)
    rows = []

    def row(name, unit, base, new):
        rows.append((name, unit, base, new))

    for kind, label in (("ip10k", "in-process 10k×100"), ("h10k", "HTTP 10k×100")):
        for r in (1, 2):
            b, n = load(out / f"{kind}-base-{r}.json"), load(out / f"{kind}-new-{r}.json")
            if not (b and n):
                continue
            row(f"{label} round {r}: accepted", "msg/s", b["messages_per_s"], n["messages_per_s"])
            row(f"{label} round {r}: stored end to end", "msg/s", b["stored_per_s"], n["stored_per_s"])
            row(f"{label} round {r}: persisted (stream + finish)", "s",
                b["stream_s"] + b["finish_s"], n["stream_s"] + n["finish_s"])
            row(f"{label} round {r}: request p99", "ms", b["latency_ms"]["p99"], n["latency_ms"]["p99"])
            if b.get("cores_busy") is not None or n.get("cores_busy") is not None:
                row(f"{label} round {r}: cores busy", "", b.get("cores_busy"), n.get("cores_busy"))
    b, n = load(out / "sus-base.json"), load(out / "sus-new.json")
    if b and n:
        row("sustained 10k×1000: stored end to end", "msg/s", b["stored_per_s"], n["stored_per_s"])
    b, n = load(out / "m100k-base.json"), load(out / "m100k-new.json")
    if b and n:
        row("100k projects: starting the sessions", "s", b["setup_s"], n["setup_s"])
        row("100k projects: finishing them", "s", b["finish_s"], n["finish_s"])
    for field, label in (("VmHWM", "server peak"), ("Settled", "server RSS 75 s after the run")):
        bm, nm = rss(out / "m100k-base.rss", field), rss(out / "m100k-new.rss", field)
        if bm and nm:
            row(f"100k projects: {label}", "MiB", bm, nm)

    print("| figure | base | new | new/base |")
    print("|---|---|---|---|")
    def fmt(v):
        return "n/a" if v is None else (f"{v:,.0f}" if abs(v) >= 100 else f"{v:.2f}")

    for name, unit, b, n in rows:
        ratio = f"{n / b:.2f}" if b and n else "n/a"
        print(f"| {name} | {fmt(b)} {unit} | {fmt(n)} {unit} | {ratio} |")


if __name__ == "__main__":
    if len(sys.argv) != 2:
        sys.exit(__doc__)
    main(sys.argv[1])
