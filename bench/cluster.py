"""Cluster benchmarks for bench/run.py: several replicas on one host, propagation delay of
the cached total between replicas, broker message rates, memory and start-up time.

Each group gets its own redis-server (appendfsync everysec) and mosquitto, so the message
counts of one group are not mixed with another's.
"""
import os
import socket
import statistics
import subprocess
import time

from kit import http_reader, procs

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def rss_kib(pid):
    with open("/proc/%d/status" % pid) as f:
        for line in f:
            if line.startswith("VmRSS:"):
                return int(line.split()[1])
    return 0


def start_timed(rep):
    """Starts a replica; returns milliseconds from spawn to the first 200 on /readyz."""
    t0 = time.perf_counter()
    rep.start(ready=False)
    while True:
        try:
            if rep.get("/readyz", timeout=1)[0] == 200:
                return (time.perf_counter() - t0) * 1000.0
        except OSError:
            pass
        if time.perf_counter() - t0 > 15:
            raise RuntimeError("%s never got ready" % rep.name)
        time.sleep(0.001)


class Group:
    """n replicas with their own Redis and broker."""

    def __init__(self, workdir, n, env=None):
        self.redis = procs.Redis(workdir, fsync="everysec").start()
        self.broker = procs.Broker(workdir).start()
        self.replicas = []
        self.ready_ms = []
        for i in range(n):
            rep = procs.Replica(workdir, self.redis, self.broker, "g%d-r%d" % (n, i),
                                  extra_env=dict({"LOG_LEVEL": "warn"}, **(env or {})))
            self.replicas.append(rep)
            self.ready_ms.append(start_timed(rep))

    def metric_sum(self, name):
        return sum(r.metric(name) for r in self.replicas)

    def stop(self):
        for p in self.replicas + [self.broker, self.redis]:
            p.stop()


def scale_run(group, seconds, connections, wrk):
    """All replicas of the group under wrk at once (connections split among them)."""
    per = max(4, connections // len(group.replicas))
    idle = [rss_kib(r.p.pid) for r in group.replicas]
    pub0 = group.metric_sum("tally_mqtt_messages_published_total")
    rec0 = group.metric_sum("tally_mqtt_totals_received_total")
    req0 = group.metric_sum("tally_redis_batched_requests_total")
    t0 = time.monotonic()
    procs = [subprocess.Popen(["wrk", "-t1", "-c%d" % per, "-d%ds" % seconds, "http://127.0.0.1:%d/" % r.port],
                              stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
             for r in group.replicas]
    time.sleep(seconds / 2.0)
    loaded = [rss_kib(r.p.pid) for r in group.replicas]
    rps = 0.0
    for p in procs:
        out = p.communicate()[0]
        rps += float(out.split("Requests/sec:")[1].split()[0])
    elapsed = time.monotonic() - t0
    published = group.metric_sum("tally_mqtt_messages_published_total") - pub0
    received = group.metric_sum("tally_mqtt_totals_received_total") - rec0
    requests = group.metric_sum("tally_redis_batched_requests_total") - req0
    return {"rps": rps, "in": published / elapsed, "out": received / elapsed,
            "pub_per_kreq": 1000.0 * published / max(requests, 1),
            "rss_idle": max(idle) / 1024.0, "rss_load": max(loaded) / 1024.0}


def _conn(port):
    s = socket.create_connection(("127.0.0.1", port))
    s.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
    return s, s.makefile("rb")


def propagation(workdir, seconds, rate, env=None, probes=800):
    """Replica A under about `rate` req/s of background load (paced wrk);
    probes: a counted GET / on A, then GET /total on B until B's cached total reaches the M
    A answered. B serves nothing else, so only MQTT can move its cache. Returns delays in
    ms (they include up to one poll of B, ~0.05-0.1 ms) and the background rate reached."""
    g = Group(workdir, 2, env)
    a, b = g.replicas
    try:
        # wrk paced by a 1 ms delay per request and connection: ~rate/1000 connections give
        # about `rate` req/s at a fraction of the CPU a Python load would take.
        script = os.path.join(workdir, "paced.lua")
        with open(script, "w") as f:
            f.write("function delay()\n  return 1\nend\n")
        bg = subprocess.Popen(["wrk", "-t1", "-c%d" % max(1, int(rate * 1.8 / 1000)), "-d%ds" % (seconds + 2),
                               "-s", script, "http://127.0.0.1:%d/" % a.port],
                              stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
        sa, fa = _conn(a.port)
        sb, fb = _conn(b.port)
        req_a = b"GET / HTTP/1.1\r\nHost: a\r\n\r\n"
        req_b = b"GET /total HTTP/1.1\r\nHost: b\r\n\r\n"
        time.sleep(1.0)  # let the background load reach its rate
        c0 = a.metric("tally_redis_batched_requests_total")
        t_start = time.monotonic()
        delays = []
        while len(delays) < probes and time.monotonic() - t_start < seconds:
            sa.sendall(req_a)
            _, _, body = http_reader.read_response(fa)
            t0 = time.perf_counter()
            m = http_reader.parse_answer(body)[2]
            while True:
                sb.sendall(req_b)
                _, _, tb = http_reader.read_response(fb)
                total = int(tb.decode().split('"cluster_total":')[1].split(",")[0].rstrip("}"))
                if total >= m:
                    delays.append((time.perf_counter() - t0) * 1000.0)
                    break
                if time.perf_counter() - t0 > 1.0:
                    delays.append(1000.0)
                    break
            time.sleep(0.002)
        achieved = (a.metric("tally_redis_batched_requests_total") - c0) / (time.monotonic() - t_start)
        bg.kill()
        bg.wait()
        sa.close()
        sb.close()
        return delays, achieved
    finally:
        g.stop()


def pct(values, p):
    v = sorted(values)
    return v[min(len(v) - 1, int(round(p / 100.0 * (len(v) - 1))))]


def run_cluster(workdir, runs, seconds, connections, wrk, single_rps, log):
    """Returns markdown tables and the summary figures."""
    sizes = (1, 3, 10)
    groups = {}
    try:
        for n in sizes:
            groups[n] = Group(workdir, n)
        res = {n: [] for n in sizes}
        for run in range(runs):
            for n in sizes:
                res[n].append(scale_run(groups[n], seconds, connections, wrk))
            log("cluster run %d/%d done" % (run + 1, runs))
        ready = [ms for g in groups.values() for ms in g.ready_ms]
    finally:
        for g in groups.values():
            g.stop()

    def med(n, key):
        return statistics.median(r[key] for r in res[n])

    rows = []
    for n in sizes:
        rows.append("| %d | %.0f | %.0f%% | %.0f | %.0f | %.1f | %.1f | %.1f |" % (
            n, med(n, "rps"), 100.0 * med(n, "rps") / med(1, "rps"), med(n, "in"), med(n, "out"),
            med(n, "pub_per_kreq"), med(n, "rss_idle"), med(n, "rss_load")))
    scale = ("| replicas | req/s, all together | vs 1 replica | broker in msg/s | broker out msg/s "
             "| publishes per 1k req | RSS idle MB (max) | RSS under load MB (max) |\n"
             "|---:|---:|---:|---:|---:|---:|---:|---:|\n" + "\n".join(rows))

    prop_rows = []
    prop = {}
    for label, env in (("defaults (eager publishing below PUBLISH_EAGER_RPS)", None),
                       ("PUBLISH_EAGER_RPS=0 (PUBLISH_INTERVAL_US=%s always applies)" % default_interval(),
                        {"PUBLISH_EAGER_RPS": "0"})):
        per_run, rates, probes = [], [], 0
        for _ in range(runs):  # medians of the runs' percentiles: one noisy run moves nothing
            d, r = propagation(workdir, seconds, 10000, env, probes=500)
            per_run.append((pct(d, 50), pct(d, 99), max(d)))
            rates.append(r)
            probes += len(d)
        prop[label] = (statistics.median(x[0] for x in per_run), statistics.median(x[1] for x in per_run),
                       max(x[2] for x in per_run))
        prop_rows.append("| %s | %.0f | %d x %d | %.2f | %.2f | %.2f | %s |" % (
            label, statistics.median(rates), runs, probes // runs, *prop[label],
            ", ".join("%.2f" % x[1] for x in per_run)))
        log("propagation %s done" % label)
    propagation_table = ("| replica setting | background req/s on A | runs x probes | p50 ms (median) "
                         "| p99 ms (median) | max ms | p99 of each run |\n"
                         "|---|---:|---:|---:|---:|---:|---|\n" + "\n".join(prop_rows))
    summary = {"scale3": med(3, "rps") / med(1, "rps"), "scale10": med(10, "rps") / med(1, "rps"),
               "rss_idle": max(med(n, "rss_idle") for n in sizes),
               "rss_load": max(med(n, "rss_load") for n in sizes),
               "ready_p50": statistics.median(ready), "ready_max": max(ready),
               "prop": prop, "in10": med(10, "in"), "out10": med(10, "out")}
    return scale, propagation_table, summary


def default_interval():
    with open(os.path.join(ROOT, "replica", "options.c")) as f:
        for line in f:
            if '"PUBLISH_INTERVAL_US"' in line:
                return line.split('"')[-2]
    return "?"
