#!/usr/bin/env python3
"""Samples the nodes' /metrics every 0.1 s until SIGTERM, then prints when the ingest published to JetStream
stopped growing and when the owners had applied all of it, in seconds from the sampler's start.

The load generator's figures end at the last 202 (JetStream stored it); in cluster mode the owners apply it
afterwards, and a read waits for that (read-your-writes). This says how long the apply took.

    applied.py PORT[,PORT...] NAME
"""
import re
import signal
import sys
import time
import urllib.request

ports, name = sys.argv[1].split(","), sys.argv[2]
pattern = re.compile(r'^agent_store_cluster_ingest_total\{stage="(published|applied)"\} (\S+)$', re.M)
start, samples, running = time.monotonic(), [], True


def stop(*_):
    global running
    running = False


signal.signal(signal.SIGTERM, stop)
while running:
    totals = {"published": 0.0, "applied": 0.0}
    for port in ports:
        try:
            text = urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=2).read().decode()
        except OSError:
            continue
        for stage, value in pattern.findall(text):
            totals[stage] += float(value)
    samples.append((time.monotonic() - start, totals["published"], totals["applied"]))
    time.sleep(0.1)
if samples and samples[-1][1] > 0:  # a node alone publishes nothing
    final = samples[-1][1]
    published_at = next(t for t, p, _ in samples if p >= final)
    applied_at = next((t for t, _, a in samples if a >= final), float("nan"))
    lag = max((p - a for _, p, a in samples), default=0)
    print(f"{name} published {final:.0f} by {published_at:.1f}s, all applied by {applied_at:.1f}s, max backlog {lag:.0f} messages")
