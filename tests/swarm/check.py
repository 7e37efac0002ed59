#!/usr/bin/env python3
"""Checks a deployed tally stack through its load balancer, under a bounded load:
counting and spreading, scale 3 -> 6 -> 2, a replica task killed, a rolling update of the
replicas (0 non-2xx, 0 connection errors), the broker stopped for 30 s (0 non-2xx, every
replica back on it after), the Redis master's container killed (a failover), every Redis
node stopped for 30 s (503s, recovery, no replica task restarted), then the Jepsen counter
rule, every M unique (if not: each repeated M, who answered it and when), the total kept
across the Redis restart, /replicas, and an outside watcher on MQTT. Each fault phase prints
one line of figures. Exit code 0 only if everything held."""
import argparse
import http.client
import json
import os
import re
import socket
import subprocess
import time

from kit import load as tally_load
from kit.http_reader import parse_answer
from kit.procs import wait_for

args = None


def docker(*a, check=True):
    return subprocess.run(["docker"] + list(a), capture_output=True, text=True, check=check).stdout.strip()


def service(name):
    return "%s_%s" % (args.stack, name)


def running_tasks(name):
    out = docker("service", "ps", service(name), "--filter", "desired-state=running", "--format",
                 "{{.CurrentState}}")
    return sum(1 for line in out.splitlines() if line.startswith("Running"))


def task_ids(name):
    return docker("service", "ps", "-q", "--filter", "desired-state=running", service(name)).split()


def update_state(name):
    return docker("service", "inspect", "--format", "{{if .UpdateStatus}}{{.UpdateStatus.State}}{{end}}",
                  service(name), check=False)


def replica_totals():
    """Each replica's cached total, asked inside its container (the LB picks one at random)."""
    out = []
    for cid in containers("replica"):
        body = docker("exec", cid, "curl", "-s", "http://127.0.0.1:8080/total", check=False)
        try:
            out.append(json.loads(body)["cluster_total"])
        except (ValueError, KeyError):
            out.append(None)
    return out


def replica_metric(name):
    """One metric of each replica, asked inside its container (None where unreadable)."""
    out = []
    for cid in containers("replica"):
        body = docker("exec", cid, "curl", "-s", "http://127.0.0.1:8080/metrics", check=False)
        mt = re.search(r"^%s(?:\{[^}]*\})? (\S+)$" % re.escape(name), body, re.M)
        out.append(float(mt.group(1)) if mt else None)
    return out


def containers(name):
    return docker("ps", "-q", "--filter", "label=com.docker.swarm.service.name=" + service(name)).split()


REDIS_NODES = ("redis", "redis-2", "redis-3")
SENTINELS = ("sentinel-1", "sentinel-2", "sentinel-3")


def redis_cli(name, *cmd, port=6379):
    """redis-cli inside the container of service `name` (the password from its secret)."""
    cid = containers(name)[0]
    return docker("exec", cid, "sh", "-c", 'REDISCLI_AUTH="$(cat /run/secrets/redis_password)" redis-cli '
                  "--no-auth-warning -p %d %s" % (port, " ".join(cmd)))


def master():
    """The Redis master's name (= its service) as the first sentinel that answers says."""
    for s in SENTINELS:
        try:
            out = redis_cli(s, "SENTINEL", "get-master-addr-by-name", "tally", port=26379).split()
        except (subprocess.CalledProcessError, IndexError):
            continue
        if out and out[0] in REDIS_NODES:
            return out[0]
    raise AssertionError("no sentinel names a master")


def redis_total():
    out = redis_cli(master(), "GET", "total_count")
    return int(out) if out else 0


# Counted requests sent outside the load (readiness wait, spreading check), for the
# Jepsen bounds: attempted, and acknowledged (answered 200).
outside = {"attempted": 0, "acked": 0}


def replicas():
    """GET /replicas through the LB; [] while the LB has no ready replica (its own 503)."""
    st, body = lb_get("/replicas")
    return json.loads(body)["replicas"] if st == 200 else []


def lb_get(path, timeout=5):
    if path == "/":
        outside["attempted"] += 1
    c = http.client.HTTPConnection("127.0.0.1", args.http_port, timeout=timeout)
    try:
        c.request("GET", path)
        r = c.getresponse()
        if path == "/" and r.status == 200:
            outside["acked"] += 1
        return r.status, r.read().decode()
    finally:
        c.close()


class Load(tally_load.Load):
    """The bounded load through the LB (kit/load.py): `threads` keep-alive clients, each at
    `rate` requests per second and at most `limit` requests, reconnecting for as long as the
    run lasts. Every request sent counts as attempted; only a 200 with a well-formed body
    counts as acknowledged. One request is in flight per client, so each 200 has its own
    entry in result.ok_times, in the order of result.answers."""

    def __init__(self, threads=4, limit=400000, rate=400):
        super().__init__(["http://127.0.0.1:%d/" % args.http_port], requests=threads * limit, concurrency=threads,
                         rate=threads * rate, timeout=10, give_up=float("inf"))
        self.start()

    def figures(self, name, a):
        """One line for the phase since snapshot a: the fault-suite figures."""
        d = self.since(a)
        other = {k: v for k, v in d["statuses"].items() if k != 200}
        f = {"attempted": d["attempted"], "acked": d["acked"], "non2xx": sum(other.values()),
             "s503": other.get(503, 0), "errors": d["errors"], "gap": d["gap"]}
        step("%s: attempted %d, acknowledged %d, non-2xx %d (503s %d), connection errors %d, "
             "longest time without a 200 %.2f s (from %.1f s into the phase)"
             % (name, f["attempted"], f["acked"], f["non2xx"], f["s503"], f["errors"], d["gap"], d["gap_at"]))
        return f

    def acked_count(self):
        return self.result.acknowledged

    def finish(self):
        self.stop()
        return self.join()


T0 = time.monotonic()
steps = []  # (monotonic time, message) of every step, to place a failure in its phase


def step(msg):
    steps.append((time.monotonic(), msg))
    print("swarm-e2e: [%5.1f s] %s" % (time.monotonic() - T0, msg), flush=True)


def duplicates_report(load, limit=20):
    """Every M answered more than once: who answered it and when (s since start, the step
    before it), so a failure says which phase handed it out twice."""
    with load.result.lock:
        rows = list(zip(load.result.answers, load.result.ok_times))
    seen = {}
    for (inst, n, m), t in rows:
        seen.setdefault(m, []).append((t, inst, n))
    dups = sorted((m, occ) for m, occ in seen.items() if len(occ) > 1)
    lines = ["%d M answered more than once (%d extra answers)" % (len(dups), sum(len(o) - 1 for _, o in dups))]
    for m, occ in dups[:limit]:
        parts = []
        for t, inst, n in occ:
            before = [msg for (ts, msg) in steps if ts <= t]
            wall = time.strftime("%H:%M:%S", time.gmtime(time.time() - (time.monotonic() - t)))
            parts.append("%s n=%d at %.3f s, %s UTC (after: %s)"
                         % (inst, n, t - T0, wall, before[-1][1][:60] if before else "start"))
        lines.append("  M=%d: %s" % (m, "; ".join(parts)))
    return "\n".join(lines)


def replica_and_broker_phases(load):
    docker("service", "scale", "-d", service("replica") + "=6")
    wait_for(lambda: running_tasks("replica") == 6, timeout=180, interval=1, what="6 replica tasks")

    def online():
        return {x["id"] for x in replicas() if x["state"] == "online"}

    wait_for(lambda: len(online()) >= 6, timeout=120, interval=1, what="6 replicas online in /replicas")
    step("scaled to 6: %s" % ", ".join(sorted(online())))
    docker("service", "scale", "-d", service("replica") + "=2")
    wait_for(lambda: running_tasks("replica") == 2 and len(containers("replica")) == 2, timeout=180, interval=1,
             what="2 replica tasks")
    wait_for(lambda: len(online()) == 2, timeout=60, interval=1, what="/replicas to show 4 gone offline")
    step("scaled to 2; load goes on (%d acknowledged so far)" % load.acked_count())

    victim = containers("replica")[0]
    docker("kill", victim)
    wait_for(lambda: victim not in containers("replica") and running_tasks("replica") == 2, timeout=120,
             interval=1, what="swarm to replace the killed replica")
    step("killed replica container %s; replaced" % victim[:12])

    # Rolling update under load: start-first, one at a time; every replica task replaced.
    before_ids = set(task_ids("replica"))
    a = load.snapshot()
    docker("service", "update", "--force", "--detach=true", service("replica"))
    wait_for(lambda: update_state("replica") == "completed", timeout=300, interval=1,
             what="the rolling update to complete")
    wait_for(lambda: not (set(task_ids("replica")) & before_ids), timeout=60, interval=1,
             what="every replica task replaced")
    f = load.figures("rolling update (docker service update --force, start-first)", a)
    assert f["non2xx"] == 0 and f["errors"] == 0, "a rolling update must cost no error at the edge"
    assert f["acked"] > 0

    # The broker away for 30 s: counting goes on through HAProxy, every replica stays ready.
    a = load.snapshot()
    docker("service", "scale", "-d", service("broker") + "=0")
    wait_for(lambda: not containers("broker"), timeout=60, interval=0.5, what="the broker to stop")
    time.sleep(30)  # the outage itself
    docker("service", "scale", "-d", service("broker") + "=1")
    wait_for(lambda: running_tasks("broker") == 1, timeout=120, interval=1, what="the broker back")
    # Back on the broker before the next fault: a Redis failover while the replicas cannot
    # hear each other's totals is a double fault that async mode does not cover (the lift
    # knows only each replica's own totals; docs/operations.md, and the fault suite's
    # sentinel-master-kill9-no-broker-* scenarios).
    wait_for(lambda: replica_metric("tally_mqtt_connected") == [1.0] * len(containers("replica")), timeout=60,
             interval=0.5, what="every replica's MQTT session back")
    f = load.figures("broker stopped for 30 s", a)
    assert f["non2xx"] == 0 and f["errors"] == 0, "a broker outage must not cost one answer"
    step("every replica is back on the broker")


def master_killed(load):
    # The master's container killed under load, and its service held at 0 tasks (the node
    # that ran it is gone: swarm would otherwise restart it within a second, before any
    # failover): the sentinels promote a replica and counting resumes; the node, back, joins
    # as a replica of the new master. (Before the all-nodes outage below: sentinels that
    # just failed to fail over wait 2 x failover-timeout before they try again.)
    wait_for(lambda: int(redis_cli(master(), "INFO", "replication").split("connected_slaves:")[1].split()[0]) == 2,
             timeout=120, interval=1, what="the master to have its two replicas")
    old = master()
    victim = containers(old)[0]
    a = load.snapshot()
    before_kill = load.acked_count()
    docker("kill", victim)
    docker("service", "scale", "-d", service(old) + "=0")
    step("killed the Redis master's container (%s, %s; %d acknowledged before)" % (old, victim[:12], before_kill))
    wait_for(lambda: master() != old, timeout=60, interval=0.2, what="the sentinels to promote a replica")
    new = master()
    wait_for(lambda: load.acked_count() > before_kill + 200, timeout=60, interval=0.5,
             what="counting to resume on the promoted master")
    f = load.figures("Redis master container killed (failover to %s)" % new, a)
    assert f["errors"] == 0, "a failover costs 503s at most, no broken connection at the edge"
    docker("service", "scale", "-d", service(old) + "=1")
    wait_for(lambda: containers(old) and containers(old)[0] != victim, timeout=120, interval=1,
             what="swarm to start the killed node again")
    wait_for(lambda: "role:slave" in redis_cli(old, "INFO", "replication"), timeout=120, interval=1,
             what="the killed node to come back as a replica")
    step("%s came back as a replica of %s" % (old, new))


def every_node_stopped(load):
    # Every Redis node away for 30 s (the sentinels stay): 503s, then recovery, and no
    # replica task replaced meanwhile (the health check asks liveness, never readiness).
    before_ids = sorted(task_ids("replica"))
    a = load.snapshot()
    for n in REDIS_NODES:
        docker("service", "scale", "-d", service(n) + "=0")
    wait_for(lambda: not any(containers(n) for n in REDIS_NODES), timeout=60, interval=0.5,
             what="every Redis node to stop")
    time.sleep(30)  # the outage itself
    for n in REDIS_NODES:
        docker("service", "scale", "-d", service(n) + "=1")
    mark = load.acked_count()
    wait_for(lambda: load.acked_count() > mark + 200, timeout=120, interval=0.5,
             what="counting to resume after the Redis outage")
    f = load.figures("every Redis node stopped for 30 s", a)
    assert f["s503"] > 0, "a Redis outage answers 503"
    assert sorted(task_ids("replica")) == before_ids, "no replica task was restarted during the Redis outage"
    step("no replica task restarted during the Redis outage (%d tasks, same ids)" % len(before_ids))
    wait_for(lambda: int(redis_cli(master(), "INFO", "replication").split("connected_slaves:")[1].split()[0]) == 2,
             timeout=120, interval=1, what="the master to have its two replicas again")


def main():
    global args
    ap = argparse.ArgumentParser()
    ap.add_argument("--stack", required=True)
    ap.add_argument("--http-port", type=int, required=True)
    ap.add_argument("--watch-port", type=int, required=True)
    ap.add_argument("--watcher-options", required=True, help="folder with the watcher's mosquitto_sub file")
    ap.add_argument("--redis-rounds", type=int, default=1,
                    help="run the two Redis fault phases this many times (diagnosis of rare faults)")
    ap.add_argument("--redis-only", action="store_true", help="skip the phases before the Redis faults")
    args = ap.parse_args()

    wait_for(lambda: lb_get("/")[0] == 200, timeout=300, interval=1, what="the stack to answer through the LB")
    step("stack answers through the load balancer")
    instances = set()

    def spread():
        st, body = lb_get("/")
        a = parse_answer(body) if st == 200 else None
        if a:
            instances.add(a[0])
        return len(instances) >= 3

    wait_for(spread, timeout=120, interval=0.05, what="answers from 3 different instances")
    assert all(re.match(r"^%s-\d+:8080$" % re.escape(service("replica")), i) for i in instances), instances
    step("answers name %d instances: %s" % (len(instances), ", ".join(sorted(instances))))

    # The live view through the edge: the page, and a stream that delivers a total event.
    st, body = lb_get("/dashboard")
    assert st == 200 and 'src="/dashboard.js"' in body, "GET /dashboard through the edge: %d" % st
    assert lb_get("/dashboard.js")[0] == 200 and lb_get("/dashboard.css")[0] == 200
    with socket.create_connection(("127.0.0.1", args.http_port), timeout=10) as s:
        s.sendall(b"GET /events HTTP/1.1\r\nHost: edge\r\n\r\n")
        got = b""
        while b"event: total" not in got:
            data = s.recv(65536)
            assert data, "the edge closed the event stream: %r" % got[:300]
            got += data
    assert got.startswith(b"HTTP/1.1 200") and b"text/event-stream" in got.split(b"\r\n\r\n")[0].lower(), got[:300]
    step("the live view works through the edge: /dashboard, and /events streams a total")

    st, _ = lb_get("/metrics")
    assert st == 404, "the public edge must not serve /metrics (got %d)" % st
    st, _ = lb_get("/./metrics")
    assert st == 404, "nor any other spelling of it (got %d)" % st
    step("the edge serves the API only: /metrics is 404 there")

    load = Load()
    wait_for(lambda: load.acked_count() > 200, timeout=60, what="the load to run")

    if not args.redis_only:
        replica_and_broker_phases(load)
    for r in range(args.redis_rounds):
        master_killed(load)
        every_node_stopped(load)
        if args.redis_rounds > 1:
            with load.result.lock:
                dup = len(load.result.answers) - len({m for (_, _, m) in load.result.answers})
            step("Redis round %d: %d M answered twice so far" % (r + 1, dup))
            if dup:
                print(duplicates_report(load), flush=True)

    res = load.finish()
    total = redis_total()
    acked = res.acknowledged
    ms = [m for (_, _, m) in res.answers]
    figures = ("requests attempted %d, acknowledged %d, other statuses %r, connection errors %d, Redis total %d"
               % (res.attempted, acked, {k: v for k, v in res.statuses.items() if k != 200}, res.conn_errors, total))
    step(figures)
    (name, unique, detail), = [c for c in tally_load.check(res)[0] if c[0] == "unique-M"]
    if not unique:
        print(duplicates_report(load), flush=True)
    assert unique, "every acknowledged M is unique: " + detail
    lo, hi = acked + outside["acked"], res.attempted + outside["attempted"]
    assert lo <= total, "Jepsen: no acknowledged increment lost (acked %d > total %d)" % (lo, total)
    assert total <= hi, "Jepsen: nothing counted that was not attempted (total %d > attempted %d)" % (total, hi)
    step("Jepsen counter rule holds: acknowledged %d <= Redis total %d <= attempted %d" % (lo, total, hi))
    if args.redis_only:
        return
    assert max(ms) <= total, "the total survived the failover"
    wait_for(lambda: replica_totals() and all(t == total for t in replica_totals()), timeout=60, interval=1,
             what="every replica's cached total to converge on Redis's (the broker came back)")
    step("every replica's cached total converged on %d" % total)
    # The mode the stack was deployed in (TALLY_REDIS_WAIT_REPLICAS) is the one the replicas ran.
    waits = sum(v or 0 for v in replica_metric("tally_redis_waits_total"))
    mode = os.environ.get("TALLY_REDIS_WAIT_REPLICAS") or "1"  # the shipped files' default
    synchronous = int(mode) > 0
    assert (waits > 0) == synchronous, "TALLY_REDIS_WAIT_REPLICAS=%s, yet the replicas sent %d WAITs" % (
        mode, waits)
    step("Redis mode: %s (%d WAITs sent by the replicas running now)" % (
        "synchronous, REDIS_WAIT_REPLICAS=%s" % mode if synchronous else "async",
        waits))

    rows = wait_for(lambda: [r for r in [replicas()] if len({x["id"] for x in r}) >= 6
                             and len([x for x in r if x["state"] == "online"]) == 2],
                    timeout=60, interval=1, what="/replicas to list every instance, 2 online")[0]
    ids = {x["id"] for x in rows}
    step("/replicas lists %d instances, 2 online; served: %s" % (
        len(ids), ", ".join("%s=%d" % (x["id"].rsplit("-", 1)[1], x["served"]) for x in sorted(rows, key=lambda r: r["id"]))))

    def watched():
        # The watcher's password comes from its options file, never from the command line.
        p = subprocess.run(["mosquitto_sub", "-h", "127.0.0.1", "-p", str(args.watch_port), "-t", "total_count",
                            "-C", "1", "-W", "5"], capture_output=True, text=True,
                           env=dict(os.environ, XDG_CONFIG_HOME=args.watcher_options))
        return int(p.stdout.strip()) if p.returncode == 0 and p.stdout.strip().isdigit() else None

    wait_for(lambda: watched() == redis_total(), timeout=60, interval=1,
             what="an outside watcher to read the total on MQTT")
    step("an outside mosquitto_sub (watcher account) reads total_count = %d" % total)


if __name__ == "__main__":
    main()
