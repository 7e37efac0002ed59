#!/usr/bin/env python3
"""Benchmark: what the live view and the histograms cost the counting path.

One replica (Redis + mosquitto) under wrk -t1 (256 connections by default), in one run,
interleaved run by run against the static h2o ceiling:
  - no /events client;
  - 100 connected /events clients that read everything (each gets up to 10 total events a
    second while the load moves the total);
  - 100 stalled /events clients that never read a byte;
  - with --baseline BINARY: the same replica built without the latency histograms (e.g. the
    commit before them, built in a worktree), no /events client: the histograms' cost.
Prints a Markdown table of median req/s, the ratio to the ceiling and to the first case.

    python3 -m bench.liveview [--runs 5] [--seconds 5] [--connections 256] [--baseline PATH]
"""
import os
import socket
import statistics
import subprocess
import sys
import tempfile
import threading

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(HERE)
from bench import common
from kit import procs
from bench.run import wrk


class Readers:
    """`n` /events clients: reading everything (a thread drains them) or never reading."""

    def __init__(self, port, n, read):
        self.socks, self.stop = [], threading.Event()
        for _ in range(n):
            s = socket.create_connection(("127.0.0.1", port))
            if not read:
                s.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
            s.sendall(b"GET /events HTTP/1.1\r\nHost: b\r\n\r\n")
            self.socks.append(s)
        self.bytes = 0
        self.t = threading.Thread(target=self._drain, daemon=True) if read else None
        if self.t:
            self.t.start()

    def _drain(self):
        import selectors
        sel = selectors.DefaultSelector()
        for s in self.socks:
            s.setblocking(False)
            sel.register(s, selectors.EVENT_READ)
        while not self.stop.is_set():
            for key, _ in sel.select(0.2):
                try:
                    self.bytes += len(key.fileobj.recv(65536))
                except BlockingIOError:
                    pass

    def close(self):
        self.stop.set()
        if self.t:
            self.t.join()
        for s in self.socks:
            s.close()


def main():
    ap = common.arguments(__doc__.split("\n\n")[0], 256)
    ap.add_argument("--clients", type=int, default=100)
    ap.add_argument("--baseline", help="a tally-replica without the histograms, for their cost")
    args = ap.parse_args()
    if min(args.runs, args.seconds, args.connections, args.clients) < 1:
        ap.error("every count must be at least 1")
    procs.REPLICA = os.path.join(args.build, "replica", "tally-replica")
    with tempfile.TemporaryDirectory(prefix="tally-bench-live-") as d:
        static_port = procs.free_port()
        running = [procs.Proc("static", [os.path.join(args.build, "bench", "tally-static-h2o"), str(static_port)],
                              d).start()]
        procs.wait_for(lambda: subprocess.run(["curl", "-sf", "http://127.0.0.1:%d/" % static_port],
                                                capture_output=True).returncode == 0, what="the static ceiling")
        redis = procs.Redis(d, fsync="everysec").start()
        broker = procs.Broker(d).start()
        env = {"EVENTS_MAX_CLIENTS": str(2 * args.clients + 10), "LOG_LEVEL": "warn"}
        rep = procs.Replica(d, redis, broker, "live", extra_env=env).start()
        running += [redis, broker, rep]
        base = None
        if args.baseline:
            base = procs.Replica(d, redis, broker, "base", extra_env={"LOG_LEVEL": "warn"})
            base.argv = [args.baseline]
            running.append(base.start())
        cases = ["static h2o (ceiling)", "replica, no /events client",
                 "replica, %d reading /events clients" % args.clients,
                 "replica, %d stalled /events clients" % args.clients]
        if base:
            cases.append("replica without the histograms (--baseline), no client")
        res = {c: [] for c in cases}
        delivered = []
        try:
            for k in range(args.runs):
                for c in cases:
                    url = "http://127.0.0.1:%d/" % (static_port if c == cases[0] else
                                                     base.port if base and c == cases[-1] else rep.port)
                    readers = None
                    if c in (cases[2], cases[3]):
                        readers = Readers(rep.port, args.clients, read=c == cases[2])
                        procs.wait_for(lambda: rep.metric("tally_events_clients") >= args.clients,
                                         what="the event clients")
                    try:
                        res[c].append(wrk(url, args.seconds, args.connections))
                    finally:
                        if readers:
                            if c == cases[2]:
                                delivered.append(readers.bytes)
                            readers.close()
                print("run %d/%d done" % (k + 1, args.runs), file=sys.stderr, flush=True)
        finally:
            for p in reversed(running):
                p.stop()
    ceiling = statistics.median(r["rps"] for r in res[cases[0]])
    plain = statistics.median(r["rps"] for r in res[cases[1]])
    out = ["| case (%d connections) | req/s (median of %d) | x ceiling | x no client | p99 ms | non-2xx |" % (
        args.connections, args.runs), "|---|---:|---:|---:|---:|---:|"]
    for c in cases:
        rps = statistics.median(r["rps"] for r in res[c])
        out.append("| %s | %.0f | %.2f | %s | %.2f | %d |" % (
            c, rps, rps / ceiling, "-" if c == cases[0] else "%.3f" % (rps / plain),
            statistics.median(r["p99"] for r in res[c]), sum(r["non2xx"] for r in res[c])))
    print("\n".join(out))
    print("\nThe reading clients took %.0f kB of events each per run (median)." % (
        statistics.median(delivered) / args.clients / 1024 if delivered else 0))


if __name__ == "__main__":
    main()
