#!/usr/bin/env python3
"""The runs of an interleaved A/B (benches/compare/inprocess.sh, k100.sh) side by side: each run's figures, then
per figure both sides' means, their ratio and in how many pairs the new build's was higher.

    python3 benches/compare/pairs.py inprocess|k100 OUT_DIR PAIRS

OUT_DIR holds base-N.json and new-N.json, loadtest reports, for N in 1..PAIRS.
"""
import json
import statistics
import sys


def phase(report, name):
    return next(p for p in report["phases"] if p["phase"] == name)["server"]


def inprocess(r):
    """In-process ingest: the stream's figures (engine and generator share the process) and the peak."""
    return {"msg/s": r["messages_per_s"], "stream CPU s": r["cpu_stream_s"],
            "page faults": r["page_faults_stream"], "context switches": phase(r, "stream")["context_switches"],
            "peak MiB": r["rss_peak_bytes"] / 2**20}


def k100(r):
    """Starting 100,000 sessions over HTTP: the server's start against the generator's CPU, finish and peak."""
    start = next(p for p in r["phases"] if p["phase"] == "setup")
    server, generator = start["server"], start["generator"]
    return {"start s": r["setup_s"], "finish s": r["finish_s"], "peak MiB": r["rss_peak_bytes"] / 2**20,
            "server/generator CPU": server["cpu_s"] / generator["cpu_s"],
            "start page faults": server["page_faults"],
            "persister CPU s": sum(t["cpu_s"] for t in server["threads"] if "persist" in t["name"])}


def main(kind, out, pairs):
    figures = {"inprocess": inprocess, "k100": k100}[kind]
    runs = {side: [figures(json.load(open(f"{out}/{side}-{i}.json"))) for i in range(1, pairs + 1)]
            for side in ("base", "new")}
    for i in range(pairs):
        for side in ("base", "new"):
            print(side, i + 1, "  ".join(f"{k} {v:,.3f}" if v < 10 else f"{k} {v:,.1f}"
                                         for k, v in runs[side][i].items()))
    for k in runs["base"][0]:
        b, n = [r[k] for r in runs["base"]], [r[k] for r in runs["new"]]
        higher = sum(y > x for x, y in zip(b, n))
        print(f"{k:21} base {statistics.mean(b):12,.3f}  new {statistics.mean(n):12,.3f}  "
              f"ratio {statistics.mean(n) / statistics.mean(b):.3f}  new higher in {higher}/{pairs}")


if __name__ == "__main__":
    main(sys.argv[1], sys.argv[2], int(sys.argv[3]))
