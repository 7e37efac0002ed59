#!/usr/bin/env python3
"""Profiles the replica's hot path with callgrind (instruction counts: repeatable on a noisy
machine). Starts redis-server, mosquitto and one replica under valgrind, sends a fixed
number of counted requests with tally-load, stops the replica cleanly and prints the
instructions per request and the functions that cost the most (inclusive and self).

    python3 -m bench.profile [--requests 20000] [--build build] [--top 25]
"""
import argparse
import glob
import os
import re
import subprocess
import sys
import tempfile

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(HERE)
from kit import procs


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--requests", type=int, default=20000)
    ap.add_argument("--build", default=os.path.join(ROOT, "build"))
    ap.add_argument("--top", type=int, default=25)
    args = ap.parse_args()
    replica = os.path.join(args.build, "replica", "tally-replica")
    if not os.access(replica, os.X_OK):
        sys.exit("profile: %s is missing; build first" % replica)
    work = tempfile.mkdtemp(prefix="tally-profile-")
    out = os.path.join(work, "callgrind.out")
    redis = procs.Redis(work, fsync="everysec").start()
    broker = procs.Broker(work).start()
    rep = procs.Replica(work, redis, broker, "prof", extra_env={"LOG_LEVEL": "warn"},
                          args=())
    rep.argv = ["valgrind", "--tool=callgrind", "--callgrind-out-file=" + out, "--separate-threads=no",
                replica]
    try:
        rep.start(ready=False)
        rep.wait_ready(timeout=60)
        subprocess.run([os.path.join(ROOT, "load", "tally-load"), "-n", str(args.requests), "-c", "16",
                        "--depth", "8", "--sample-ms", "0", "--no-progress",
                        "http://127.0.0.1:%d/" % rep.port], check=True, capture_output=True)
        rep.stop(timeout=60)
    finally:
        for p in (rep, broker, redis):
            p.stop()
    files = glob.glob(out + "*")
    ann = subprocess.run(["callgrind_annotate", "--inclusive=no", files[0]], capture_output=True, text=True).stdout
    incl = subprocess.run(["callgrind_annotate", "--inclusive=yes", files[0]], capture_output=True,
                          text=True).stdout
    total = int(re.search(r"([\d,]+) \(100\.0%\)\s+PROGRAM TOTALS", ann).group(1).replace(",", ""))
    print("instructions in all: %d, per counted request: %.0f (start-up and shutdown included)"
          % (total, total / args.requests))
    for title, text in (("self", ann), ("inclusive", incl)):
        print("\n-- top %d by %s cost --" % (args.top, title))
        body = text.split("file:function", 1)[1].splitlines()[1:]
        for line in [ln for ln in body if ln.strip()][:args.top]:
            print(line[:150])
    print("\nraw profile kept in %s (callgrind_annotate / kcachegrind)" % files[0])


if __name__ == "__main__":
    main()
