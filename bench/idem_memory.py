#!/usr/bin/env python3
"""Redis memory per Idempotency-Key: one replica and a fresh redis-server; N keyed GET /
(UUID keys, pipelined 256 deep), then Redis's used_memory growth divided by N. This is the
"bytes per key" of the formula in docs/configuration.md (IDEMPOTENCY_TTL_S).

    python3 -m bench.idem_memory [--keys 100000] [--build build]
"""
import argparse
import os
import socket
import sys
import tempfile
import uuid

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(HERE)
from kit import http_reader, procs


def used_memory(redis):
    info = redis.command("INFO", "memory")
    return int(next(line for line in info.splitlines() if line.startswith("used_memory:")).split(":")[1])


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--keys", type=int, default=100000)
    ap.add_argument("--build", default=os.path.join(ROOT, "build"))
    args = ap.parse_args()
    procs.REPLICA = os.path.join(args.build, "replica", "tally-replica")
    workdir = tempfile.mkdtemp(prefix="tally-idem-")
    redis = procs.Redis(workdir, fsync="everysec").start()
    broker = procs.Broker(workdir).start()
    rep = procs.Replica(workdir, redis, broker, "replica-1", extra_env={"LOG_LEVEL": "warn"}).start()
    try:
        redis.command("SET", "total_count", "123456789")  # totals with the digits of a busy cluster
        before, keys0 = used_memory(redis), redis.command("DBSIZE")
        with socket.create_connection(("127.0.0.1", rep.port), timeout=30) as s:
            f = s.makefile("rb")
            sent = 0
            while sent < args.keys:
                k = min(256, args.keys - sent)
                s.sendall(b"".join(b"GET / HTTP/1.1\r\nHost: t\r\nIdempotency-Key: %s\r\n\r\n" %
                                   str(uuid.uuid4()).encode() for _ in range(k)))
                for _ in range(k):
                    status = http_reader.read_response(f)[0]
                    if status != 200:
                        sys.exit("idem_memory: a keyed request got %d" % status)
                sent += k
        grown, held = used_memory(redis) - before, redis.command("DBSIZE") - keys0
        print("| keys held | key | used_memory growth | bytes per key |\n|---:|---|---:|---:|")
        print("| %d | 36-character UUID, instance `replica-1:%d` | %.1f MB | %.0f |" % (
            held, rep.port, grown / 1e6, grown / held))
    finally:
        for p in (rep, broker, redis):
            p.stop()


if __name__ == "__main__":
    main()
