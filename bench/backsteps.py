#!/usr/bin/env python3
"""How often a watcher of total_count sees the total step back.

Every replica publishes its own newest total, so one mosquitto_sub on total_count receives
the totals of several replicas interleaved, and sees the value go down whenever a replica
publishes a total below one another replica already published. This starts REPLICAS
replicas (own redis-server, everysec, and mosquitto), loads them all with wrk (the cluster
benchmark's setting: connections split among them), and counts, over the totals one
mosquitto_sub received, the share of steps that go backwards. With --baseline, a second
replica binary (e.g. one built from an older commit) is measured the same way, the two
interleaved run by run, so noise hits both alike. Prints one markdown table.

    python3 -m bench.backsteps [--replicas 3] [--runs 5] [--seconds 5] [--connections 64]
                               [--baseline OTHER/tally-replica]
"""
import os
import statistics
import subprocess
import sys
import tempfile
import time

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(HERE)
from bench import common
from kit import procs


def one_run(workdir, binary, replicas, seconds, connections):
    redis = procs.Redis(workdir, fsync="everysec").start()
    broker = procs.Broker(workdir).start()
    reps = []
    watcher = None
    try:
        for i in range(replicas):
            rep = procs.Replica(workdir, redis, broker, "b%d" % i, extra_env={"LOG_LEVEL": "warn"})
            rep.argv[0] = binary
            reps.append(rep.start())
        watcher = procs.Watcher(broker)
        per = max(4, connections // replicas)
        running = [subprocess.Popen(["wrk", "-t1", "-c%d" % per, "-d%ds" % seconds, "http://127.0.0.1:%d/" % r.port],
                                  stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL) for r in reps]
        for p in running:
            p.wait()
        time.sleep(0.5)  # the last totals in flight reach the watcher
        totals = watcher.totals()
    finally:
        if watcher:
            watcher.stop()
        for p in reps + [broker, redis]:
            p.stop()
    steps = list(zip(totals, totals[1:]))
    back = sum(1 for a, b in steps if b < a)
    return len(totals), back / max(len(steps), 1)


def main():
    ap = common.arguments(__doc__.split("\n\n")[0], 64, build=False)
    ap.add_argument("--replicas", type=int, default=3)
    ap.add_argument("--baseline", help="another tally-replica binary to measure beside this one")
    args = ap.parse_args()
    if args.replicas < 2 or args.runs < 1 or args.seconds < 1:
        ap.error("--replicas must be at least 2, --runs and --seconds at least 1")
    binaries = [("this build", procs.REPLICA or os.path.join(ROOT, "build", "replica", "tally-replica"))]
    if args.baseline:
        binaries.insert(0, ("baseline (%s)" % args.baseline, args.baseline))
    results = {label: [] for label, _ in binaries}
    with tempfile.TemporaryDirectory(prefix="tally-backsteps-") as workdir:
        for run in range(args.runs):
            for label, binary in binaries:
                results[label].append(one_run(workdir, binary, args.replicas, args.seconds, args.connections))
            print("run %d/%d done" % (run + 1, args.runs), file=sys.stderr, flush=True)
    print("| replica | replicas | runs | totals seen per run (median) | backward steps (median) | each run |")
    print("|---|---:|---:|---:|---:|---|")
    for label, _ in binaries:
        r = results[label]
        print("| %s | %d | %d | %d | %.1f%% | %s |" % (
            label, args.replicas, args.runs, statistics.median(n for n, _ in r),
            100 * statistics.median(s for _, s in r), ", ".join("%.1f%%" % (100 * s) for _, s in r)))


if __name__ == "__main__":
    main()
