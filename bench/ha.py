#!/usr/bin/env python3
"""Redis HA benchmark: one replica on a Redis master with two Redis replicas, found through
three sentinels, asynchronous and with REDIS_WAIT_REPLICAS=1, against the static h2o
ceiling, interleaved run by run (wrk -t1, 256 connections by default); then failovers: the
longest time without a 200 after `kill -9` of the master (down-after-milliseconds 1000),
over several failovers. Prints markdown tables.

    python3 -m bench.ha [--runs 5] [--seconds 5] [--connections 256] [--failovers 5]
"""
import os
import statistics
import subprocess
import sys
import tempfile
import threading
import time

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(HERE)
from bench.run import wrk
from bench import common
from kit import procs
from kit.ha import RedisSet


def ha_set(workdir):
    """The shipped Redis set (kit/ha.py): its nodes, master first, and its sentinels."""
    s = RedisSet(workdir, lambda p: p.start())
    return s.nodes, s.sentinels


def replica(workdir, ss, broker, name, extra=None):
    env = {"REDIS_SENTINELS": ",".join(s.addr() for s in ss), "LOG_LEVEL": "warn"}
    env.update(extra or {})
    return procs.Replica(workdir, None, broker, name, extra_env=env).start()


def throughput(args, workdir, build):
    static_port = procs.free_port()
    running = [procs.Proc("static", [os.path.join(build, "bench", "tally-static-h2o"), str(static_port)],
                          workdir).start()]
    procs.wait_for(lambda: subprocess.run(["curl", "-sf", "http://127.0.0.1:%d/" % static_port],
                                            capture_output=True).returncode == 0, what="the static ceiling")
    broker = procs.Broker(workdir).start()
    nodes, ss = ha_set(workdir)
    running += nodes + ss + [broker]
    cases = [("static h2o (ceiling)", "http://127.0.0.1:%d/" % static_port)]
    for label, extra in (("replica, async (REDIS_WAIT_REPLICAS=0)", None),
                         ("replica, REDIS_WAIT_REPLICAS=1", {"REDIS_WAIT_REPLICAS": "1"})):
        rep = replica(workdir, ss, broker, "bench-%d" % len(cases), extra)
        running.append(rep)
        cases.append((label, "http://127.0.0.1:%d/" % rep.port))
    res = {label: [] for label, _ in cases}
    try:
        for run in range(args.runs):
            for label, url in cases:
                res[label].append(wrk(url, args.seconds, args.connections))
            print("throughput run %d/%d done" % (run + 1, args.runs), file=sys.stderr, flush=True)
        waits = running[-1].metric("tally_redis_waits_total")
        batched = running[-1].metric("tally_redis_batched_requests_total")
    finally:
        for p in reversed(running):
            p.stop()
    ceiling = statistics.median(r["rps"] for r in res[cases[0][0]])
    rows = []
    for label, _ in cases:
        rps = statistics.median(r["rps"] for r in res[label])
        rows.append("| %s | %.0f | %.2f | %.2f | %d |" % (
            label, rps, rps / ceiling, statistics.median(r["p99"] for r in res[label]),
            sum(r["non2xx"] for r in res[label])))
    return ("| case (%d connections) | req/s (median of %d) | x ceiling | p99 ms | non-2xx |\n"
            "|---|---:|---:|---:|---:|\n" % (args.connections, args.runs) + "\n".join(rows) +
            "\n\nWAIT mode: %.1f requests per WAIT (one WAIT at a time per connection, covering every batch sent "
            "while the previous one waited)." % (batched / max(waits, 1)))


def failovers(args, workdir):
    broker = procs.Broker(workdir).start()
    nodes, ss = ha_set(workdir)
    rep = replica(workdir, ss, broker, "failover", {"REDIS_TIMEOUT_MS": "1000"})
    by_port = {n.port: n for n in nodes}
    gaps = []
    try:
        for k in range(args.failovers):
            host, port = ss[0].master()
            victim = by_port[port]
            stop = threading.Event()
            last_ok = [time.monotonic()]
            worst = [0.0]

            def poll():
                while not stop.is_set():
                    try:
                        st = rep.get("/", timeout=2)[0]
                    except OSError:
                        st = None
                    now = time.monotonic()
                    if st == 200:
                        worst[0] = max(worst[0], now - last_ok[0])
                        last_ok[0] = now
                    time.sleep(0.005)

            t = threading.Thread(target=poll)
            t.start()
            time.sleep(0.5)
            victim.kill9()
            try:
                procs.wait_for(lambda: ss[0].master()[1] != port, timeout=30, interval=0.05, what="a promotion")
            except AssertionError:  # what each sentinel decided, and when, for the note
                for sn in ss:
                    events = [ln for ln in sn.output().splitlines() if any(
                        k in ln for k in ("tilt", "sdown", "odown", "try-failover", "elected", "promoted",
                                          "switch-master", "abort"))]
                    print("--- %s:\n%s" % (sn.name, "\n".join(events[-12:])), file=sys.stderr, flush=True)
                raise
            procs.wait_for(lambda: time.monotonic() - last_ok[0] < 0.1, timeout=30, what="counting again")
            time.sleep(0.3)
            stop.set()
            t.join()
            gaps.append(worst[0])
            # the killed node comes back as a replica of the new master, for the next round
            fresh = procs.Redis(workdir, fsync="everysec", port=port, ha=True)
            fresh.argv += ["--replicaof", "127.0.0.1", str(ss[0].master()[1])]
            by_port[port] = fresh.start()
            nodes.append(by_port[port])
            procs.wait_for(lambda: by_port[ss[0].master()[1]].replicas_online() == 2, timeout=30,
                             what="two replicas again")
            print("failover %d/%d: %.2f s without a 200" % (k + 1, args.failovers, worst[0]), file=sys.stderr,
                  flush=True)
    finally:
        for p in [rep] + ss + nodes + [broker]:
            p.stop()
    return ("| failovers (kill -9 of the master, down-after 1000 ms, quorum 2 of 3) | median | max | each |\n"
            "|---|---:|---:|---|\n| longest time without a 200 | %.2f s | %.2f s | %s |" % (
                statistics.median(gaps), max(gaps), ", ".join("%.2f" % g for g in gaps)))


def main():
    ap = common.arguments(__doc__.split("\n\n")[0], 256)
    ap.add_argument("--failovers", type=int, default=5)
    ap.add_argument("--failovers-only", action="store_true", help="skip the throughput table")
    args = ap.parse_args()
    if min(args.runs, args.seconds, args.connections, args.failovers) < 1:
        ap.error("every count must be at least 1")
    procs.REPLICA = os.path.join(args.build, "replica", "tally-replica")
    if not args.failovers_only:
        with tempfile.TemporaryDirectory(prefix="tally-bench-ha-") as workdir:
            print(throughput(args, workdir, args.build))
        print()
    with tempfile.TemporaryDirectory(prefix="tally-bench-ha-") as workdir:
        print(failovers(args, workdir))


if __name__ == "__main__":
    main()
