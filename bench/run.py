#!/usr/bin/env python3
"""Benchmark: one tally replica (Redis + MQTT) against ceilings measured in the same run.

Starts redis-server, mosquitto (with one watcher subscribed to total_count), the replica,
the static h2o ceiling (bench/static_h2o.c: same h2o flavour, same allocator setting,
nothing but a fixed answer) and, if installed, nginx `return 200` with one worker. Runs
wrk -t1 against each at every connection count given (64 and 256 by default),
interleaving the cases so machine noise hits all alike, and prints medians of req/s, p50
and p99 with the ratio to the static h2o ceiling at the same connection count.

    python3 -m bench.run [--runs 5] [--seconds 5] [--connections 64,256] [--write docs/benchmarks.md]
"""
import os
import platform
import re
import shutil
import statistics
import subprocess
import sys
import tempfile
import time

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(HERE)
from bench import cluster, common  # cluster: several replicas, propagation, memory, start-up
from kit import procs


def parse_latency(text, pct):
    m = re.search(r"^\s+%s%%\s+([0-9.]+)(us|ms|s)\s*$" % pct, text, re.M)
    if not m:
        return float("nan")
    scale = {"us": 0.001, "ms": 1.0, "s": 1000.0}[m.group(2)]
    return float(m.group(1)) * scale


def wrk(url, seconds, connections, header=None):
    """One wrk run; with @header, every request carries that header with a value of its own
    (bench/keyed.lua), which costs wrk a Lua call per request."""
    script = ["-s", os.path.join(HERE, "keyed.lua")] if header else []
    out = subprocess.run(["wrk", "-t1", "-c%d" % connections, "-d%ds" % seconds, "--latency"] + script + [url] +
                         (["--", header] if header else []), capture_output=True, text=True, check=True).stdout
    rps = float(re.search(r"Requests/sec:\s+([0-9.]+)", out).group(1))
    errors = re.search(r"Non-2xx or 3xx responses: (\d+)", out)
    return {"rps": rps, "p50": parse_latency(out, 50), "p99": parse_latency(out, 99),
            "non2xx": int(errors.group(1)) if errors else 0}


def start_nginx(workdir, port):
    if not shutil.which("nginx"):
        return None
    conf = os.path.join(workdir, "nginx.conf")
    body = "You are talking to instance bench-nginx:8080.\\nThis is request 1 to this instance and request 1 to the cluster.\\n"
    with open(conf, "w") as f:
        f.write("""worker_processes 1; daemon off; pid %(d)s/nginx.pid; error_log stderr error;
events { worker_connections 4096; }
http { access_log off; client_body_temp_path %(d)s; proxy_temp_path %(d)s; fastcgi_temp_path %(d)s;
  uwsgi_temp_path %(d)s; scgi_temp_path %(d)s; keepalive_requests 100000000;
  server { listen 127.0.0.1:%(p)d; location / { default_type text/plain; return 200 "%(b)s"; } } }
""" % {"d": workdir, "p": port, "b": body})
    p = procs.Proc("nginx", ["nginx", "-p", workdir, "-c", conf], workdir).start()
    procs.wait_for(lambda: subprocess.run(["curl", "-sf", "http://127.0.0.1:%d/" % port],
                                            capture_output=True).returncode == 0, what="nginx")
    return p


def main():
    ap = common.arguments(__doc__, "64,256")  # --connections: comma-separated; the first drives the cluster part
    ap.add_argument("--baseline", help="also run the replica of this other build directory (e.g. of the commit "
                    "before a change), interleaved with the others, on a Redis of its own (appendfsync everysec)")
    ap.add_argument("--write", help="also write the table into this markdown file")
    ap.add_argument("--no-cluster", action="store_true",
                    help="only the single-replica table (skip 3/10 replicas, propagation, memory, start-up)")
    args = ap.parse_args()
    try:
        conns = [int(c) for c in args.connections.split(",")]
        if not conns or min(conns) < 1:
            raise ValueError
    except ValueError:
        ap.error("--connections wants positive numbers separated by commas, not %r" % args.connections)

    replica_bin = os.path.join(args.build, "replica", "tally-replica")
    static_bin = os.path.join(args.build, "bench", "tally-static-h2o")
    for b in (replica_bin, static_bin):
        if not os.access(b, os.X_OK):
            sys.exit("bench: %s is missing; build first (cmake -S . -B build && cmake --build build)" % b)
    procs.REPLICA = replica_bin

    workdir = tempfile.mkdtemp(prefix="tally-bench-")
    running, watchers = [], []
    try:
        cases = []  # (name, url, replica or None, header wrk adds or None)
        static_port = procs.free_port()
        running.append(procs.Proc("static", [static_bin, str(static_port)], workdir).start())
        procs.wait_for(lambda: subprocess.run(["curl", "-sf", "http://127.0.0.1:%d/" % static_port],
                                                capture_output=True).returncode == 0, what="static h2o")
        cases.append(("h2o static answer (ceiling)", "http://127.0.0.1:%d/" % static_port, None, None))
        nginx = start_nginx(workdir, procs.free_port())
        if nginx:
            running.append(nginx)
            cases.append(("nginx `return 200`, 1 worker", nginx_url(workdir), None, None))

        broker = procs.Broker(workdir).start()
        running.append(broker)
        watchers.append(procs.Watcher(broker))
        for fsync in ("everysec", "always"):
            redis = procs.Redis(workdir, fsync=fsync).start()
            running.append(redis)
            rep = procs.Replica(workdir, redis, broker, "bench-%s" % fsync,
                                  extra_env={"LOG_LEVEL": "warn"}).start()
            running.append(rep)
            cases.append(("replica + Redis (appendfsync %s) + MQTT" % fsync, "http://127.0.0.1:%d/" % rep.port,
                          rep, None))
            if fsync == "everysec":
                plain_rep, plain_redis = rep, redis
        if args.baseline:  # the same case, the other build's binary
            base_redis = procs.Redis(workdir, fsync="everysec").start()
            running.append(base_redis)
            base = procs.Replica(workdir, base_redis, broker, "bench-baseline", extra_env={"LOG_LEVEL": "warn"})
            base.argv[0] = os.path.join(args.baseline, "replica", "tally-replica")
            running.append(base.start())
            cases.append(("replica (everysec), the build in %s (baseline)" % args.baseline,
                          "http://127.0.0.1:%d/" % base.port, base, None))
        # Idempotency-Key: every request keyed, on a replica with a Redis of its own (its
        # memory per key is measured), against the same wrk work without a key. A short TTL
        # keeps the keys of all runs from filling the machine's memory.
        keyed_redis = procs.Redis(workdir, fsync="everysec").start()
        running.append(keyed_redis)
        keyed_rep = procs.Replica(workdir, keyed_redis, broker, "bench-keyed",
                                    extra_env={"LOG_LEVEL": "warn", "IDEMPOTENCY_TTL_S": "10"}).start()
        running.append(keyed_rep)
        cases.append(("replica (everysec), wrk adds a header of its own to every request, no key",
                      "http://127.0.0.1:%d/" % plain_rep.port, plain_rep, "X-Padding"))
        cases.append(("replica (everysec), every request keyed (`Idempotency-Key`, TTL 10 s)",
                      "http://127.0.0.1:%d/" % keyed_rep.port, keyed_rep, "Idempotency-Key"))
        key_memory = []  # bytes per key after each keyed run
        redis_cpu = {}  # case -> [Redis CPU seconds per request] (the two cases with a header)
        before_keys = [0.0]

        # Warm-up, then interleaved measured runs. A replica's batch and publish counts are
        # taken around each run, so the notes belong to one connection count.
        for _, url, _, header in cases:
            wrk(url, 1, conns[0], header)
        keys = ("tally_redis_batches_total", "tally_redis_batched_requests_total",
                "tally_mqtt_messages_published_total")
        results = {(name, c): [] for name, _, _, _ in cases for c in conns}
        counts = {(name, c): [0.0] * len(keys) for name, _, _, _ in cases for c in conns}
        for run in range(args.runs):
            for c in conns:
                for name, url, rep, header in cases:
                    before = [rep.metric(k) for k in keys] if rep else None
                    if rep is keyed_rep:  # the keys of earlier runs expire first
                        procs.wait_for(lambda: keyed_redis.command("DBSIZE") <= 16, timeout=30,
                                         what="the keys of the last run to expire")
                        mem0 = redis_memory(keyed_redis)
                    cpu0 = cpu_seconds(keyed_redis if rep is keyed_rep else plain_redis) if header else 0
                    results[(name, c)].append(wrk(url, args.seconds, c, header))
                    if header:
                        served = results[(name, c)][-1]["rps"] * args.seconds
                        used = cpu_seconds(keyed_redis if rep is keyed_rep else plain_redis) - cpu0
                        redis_cpu.setdefault(name, []).append(used / max(served, 1))
                    if rep is keyed_rep:
                        stored = keyed_rep.metric("tally_idempotency_keys_stored_total") - before_keys[0]
                        before_keys[0] += stored
                        held = keyed_redis.command("DBSIZE")
                        key_memory.append((redis_memory(keyed_redis) - mem0) / max(held - 3, 1))
                    if rep:
                        counts[(name, c)] = [t + rep.metric(k) - b for t, k, b in zip(counts[(name, c)], keys, before)]
            print("run %d/%d done" % (run + 1, args.runs), file=sys.stderr)

        rps_of = {k: statistics.median(r["rps"] for r in rs) for k, rs in results.items()}
        rows = []
        for c in conns:
            ceiling = rps_of[(cases[0][0], c)]
            for name, url, rep, _ in cases:
                rs = results[(name, c)]
                extra = ""
                if rep is not None:
                    batches, batched, pubs = counts[(name, c)]
                    extra = "%.1f req/INCRBY, %.1f req/publish" % (batched / max(batches, 1),
                                                                   batched / max(pubs, 1))
                    if sum(r["non2xx"] for r in rs):
                        extra += ", %d non-2xx" % sum(r["non2xx"] for r in rs)
                rows.append("| %d | %s | %.0f | %.2f | %.2f | %.0f%% | %s |" % (
                    c, name, rps_of[(name, c)], statistics.median(r["p50"] for r in rs),
                    statistics.median(r["p99"] for r in rs), 100.0 * rps_of[(name, c)] / ceiling, extra))

        header = ("| connections | case | req/s | p50 ms | p99 ms | vs ceiling | notes |\n"
                  "|---:|---|---:|---:|---:|---:|---|")
        table = header + "\n" + "\n".join(rows)
        keyed_cost = " / ".join("%.0f%%" % (100 * rps_of[(cases[-1][0], c)] / rps_of[(cases[-2][0], c)])
                                for c in conns)
        table += ("\n\nEvery request keyed, against the same wrk work without a key, at %s connections: %s of "
                  "its req/s. Redis memory per key held: median %.0f bytes (%.0f MB per million keys; %d runs). "
                  "Redis CPU per request: %.1f us keyed, %.1f us without a key (medians)." % (
                      " / ".join(map(str, conns)), keyed_cost, statistics.median(key_memory),
                      statistics.median(key_memory), len(key_memory),
                      1e6 * statistics.median(redis_cpu[cases[-1][0]]), 1e6 * statistics.median(redis_cpu[cases[-2][0]])))
        names = [n for n, _, _, _ in cases if not n.startswith("replica (everysec), ")]

        def ratio(name):
            return " / ".join("%.0f%%" % (100 * rps_of[(name, c)] / rps_of[(names[0], c)]) for c in conns)
        if not args.no_cluster:
            for p in reversed(running):  # the single-replica servers are done: free the cores
                p.stop()
            for w in watchers:
                w.stop()
            running, watchers = [], []
            scale, prop_table, summ = cluster.run_cluster(
                workdir, args.runs, args.seconds, conns[0], wrk, rps_of[(names[-2], conns[0])],
                lambda m: print(m, file=sys.stderr))
            prop = summ["prop"]
            at = " / ".join("%d" % c for c in conns)
            lines = [
                "| one replica, appendfsync everysec, vs static ceiling, at %s connections | %s | >= 85%% |" % (
                    at, ratio(names[-2])),
                "| one replica, appendfsync always, vs static ceiling, at %s connections | %s | >= 70%% |" % (
                    at, ratio(names[-1])),
                "| 3 replicas on this host vs 1 (req/s all together) | %.0f%% | - |" % (100 * summ["scale3"]),
                "| 10 replicas on this host vs 1 | %.0f%% | - |" % (100 * summ["scale10"])]
            for label, (p50, p99, mx) in prop.items():
                lines.append("| propagation A -> B at 10k req/s, %s: p50 / p99 / max | %.2f / %.2f / %.2f ms "
                             "| p99 < 1 ms |" % (label, p50, p99, mx))
            lines += [
                "| broker messages/s at 10 replicas, in / out | %.0f / %.0f | bounded |" % (summ["in10"], summ["out10"]),
                "| RSS per replica, idle / under load (max) | %.1f / %.1f MB | < 10 MB |" % (summ["rss_idle"],
                                                                                     summ["rss_load"]),
                "| start to ready, p50 / max of %d starts | %.0f / %.0f ms | - |" % (14, summ["ready_p50"],
                                                                                  summ["ready_max"])]
            table = ("| measure | reached | target |\n|---|---:|---|\n" + "\n".join(lines) +
                     "\n\n" + table + "\n\n" + scale + "\n\n" + prop_table)
        env = "%s, %d cores, %s; wrk -t1 -c%s, %d runs x %d s, medians" % (
            time.strftime("%Y-%m-%d"), os.cpu_count(), platform.release(), "/".join(map(str, conns)), args.runs,
            args.seconds)
        print(table)
        print(env)
        if args.write:
            write_doc(args.write, table, env)
    finally:
        for w in watchers:
            w.stop()
        for p in reversed(running):
            p.stop()
        shutil.rmtree(workdir, ignore_errors=True)


def cpu_seconds(proc):
    """User + system CPU seconds a process has used (/proc/<pid>/stat)."""
    with open("/proc/%d/stat" % proc.p.pid) as f:
        fields = f.read().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def redis_memory(redis):
    info = redis.command("INFO", "memory")
    return int(re.search(r"^used_memory:(\d+)", info, re.M).group(1))


def nginx_url(workdir):
    with open(os.path.join(workdir, "nginx.conf")) as f:
        port = int(re.search(r"listen 127\.0\.0\.1:(\d+)", f.read()).group(1))
    return "http://127.0.0.1:%d/" % port


def write_doc(path, table, env):
    with open(path) as f:
        doc = f.read()
    begin, end = "<!-- bench:begin -->", "<!-- bench:end -->"
    if begin not in doc or end not in doc:
        sys.exit("bench: %s has no %s ... %s markers" % (path, begin, end))
    head, rest = doc.split(begin, 1)
    _, tail = rest.split(end, 1)
    with open(path, "w") as f:
        f.write(head + begin + "\n" + table + "\n\n" + env + "\n" + end + tail)


if __name__ == "__main__":
    main()
