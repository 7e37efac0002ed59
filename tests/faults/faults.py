#!/usr/bin/env python3
"""Fault suite: real redis-server, mosquitto, publishers and replicas under tally-load, one
fault scenario at a time. Every scenario ends with tally-load's checks (Jepsen counter rule,
every M unique, no cached total going back) plus: every replica's cached total comes back to
the Redis total. Each prints one line of figures; the exit code is 1 if any check failed.

    TALLY_REPLICA=build/replica/tally-replica TALLY_PUBLISHER=build/publisher/tally-publisher \\
        python3 tests/faults/faults.py [scenario ...] [--seconds 6] [--ha]

Network scenarios put one replica in its own network namespace (ip netns + veth, needs
root) and cut its route to Redis or to the broker with a blackhole route: packets vanish,
as on a real partition, instead of connections being refused.
"""
import argparse
import importlib.machinery
import importlib.util
import os
import shutil
import signal
import subprocess
import sys
import tempfile
import threading
import time

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(os.path.dirname(HERE))
sys.path.insert(0, os.path.join(ROOT, "tests", "integration"))
import harness  # noqa: E402

_loader = importlib.machinery.SourceFileLoader("tally_load", os.path.join(ROOT, "load", "tally-load"))
_spec = importlib.util.spec_from_loader("tally_load", _loader)
tally_load = importlib.util.module_from_spec(_spec)
_loader.exec_module(tally_load)


def sh(*argv):
    subprocess.run(argv, check=True, capture_output=True, timeout=20)


class Netns:
    """A network namespace joined to this one by a veth pair. Host side: .4 (primary, the
    source address of the load), .1 (Redis) and .3 (the broker); namespace side: .2."""

    def __init__(self):
        tag = os.getpid() % 10000
        self.name = "tally-f%d" % tag
        self.host_if, self.ns_if = "tfh%d" % tag, "tfn%d" % tag
        net = 200 + os.getpid() % 50
        self.prefix = "10.%d.0." % net
        self.redis_ip, self.ns_ip, self.broker_ip = self.prefix + "1", self.prefix + "2", self.prefix + "3"
        self.up = False
        self.cuts = set()

    def create(self):
        self.destroy()
        sh("ip", "netns", "add", self.name)
        self.up = True
        sh("ip", "link", "add", self.host_if, "type", "veth", "peer", "name", self.ns_if)
        sh("ip", "link", "set", self.ns_if, "netns", self.name)
        for last in ("4", "1", "3"):  # .4 first: the primary, so the load's packets come from it
            sh("ip", "addr", "add", self.prefix + last + "/24", "dev", self.host_if)
        sh("ip", "link", "set", self.host_if, "up")
        sh("ip", "-n", self.name, "addr", "add", self.ns_ip + "/24", "dev", self.ns_if)
        sh("ip", "-n", self.name, "link", "set", self.ns_if, "up")
        sh("ip", "-n", self.name, "link", "set", "lo", "up")
        return self

    def cut(self, ip):
        """Drops every packet between the namespace and `ip`, both ways: a blackhole route
        inside (packets to it) and a policy rule outside (its packets to the namespace)."""
        sh("ip", "-n", self.name, "route", "add", "blackhole", ip + "/32")
        sh("ip", "rule", "add", "from", ip, "to", self.ns_ip, "blackhole", "priority", "1000")
        self.cuts.add(ip)

    def heal(self, ip):
        sh("ip", "-n", self.name, "route", "del", "blackhole", ip + "/32")
        sh("ip", "rule", "del", "from", ip, "to", self.ns_ip, "blackhole", "priority", "1000")
        self.cuts.discard(ip)

    def destroy(self):
        for ip in list(getattr(self, "cuts", ())):
            subprocess.run(["ip", "rule", "del", "from", ip, "to", self.ns_ip, "blackhole", "priority", "1000"],
                           capture_output=True)
        self.cuts = set()
        subprocess.run(["ip", "link", "del", self.host_if], capture_output=True)
        subprocess.run(["ip", "netns", "del", self.name], capture_output=True)
        self.up = False


class NsReplica(harness.Replica):
    """A replica inside the namespace: it reaches Redis and the broker over the veth."""

    def __init__(self, workdir, ns, redis, broker, instance):
        super().__init__(workdir, redis, broker, instance, extra_env={
            "SERVICE_HOST": ns.ns_ip, "REDIS_HOST": ns.redis_ip,
            "MQTT_URL": "tcp://%s:%d" % (ns.broker_ip, broker.port), "LOG_LEVEL": "warn"})
        self.host = ns.ns_ip
        self.argv = ["ip", "netns", "exec", ns.name] + self.argv


class Cluster:
    """Redis, mosquitto, two publishers and the replicas of one scenario."""

    def __init__(self, fsync="always", replicas=3, netns=None, ha=None):
        self.dir = tempfile.mkdtemp(prefix="tally-faults-")
        self.procs = []
        self.ns = netns
        self.fsync = fsync
        self.nodes, self.sentinels = [], []
        binds = ["127.0.0.1"] + ([netns.redis_ip] if netns else [])
        self.redis = harness.Redis(self.dir, fsync=fsync)
        self.redis.argv[self.redis.argv.index("--bind"):self.redis.argv.index("--bind") + 2] = ["--bind"] + binds
        if netns:  # reached over the private veth only; no password on a test Redis
            self.redis.argv += ["--protected-mode", "no"]
        self.start(self.redis)
        env = {"LOG_LEVEL": "warn"}
        if ha is not None:
            # Redis HA: the master above, two Redis replicas, three sentinels (quorum 2);
            # replicas and publishers find the master through the sentinels. ha = the
            # REDIS_WAIT_REPLICAS of the replicas ("0": async, "1": synchronous).
            self.nodes = [self.redis] + [self.start(harness.Redis(self.dir, fsync=fsync, replica_of=self.redis))
                                         for _ in range(2)]
            harness.wait_for(lambda: self.redis.replicas_online() == 2, timeout=20, what="the Redis replicas")
            self.sentinels = [self.start(harness.Sentinel(self.dir, self.redis, quorum=2)) for _ in range(3)]
            for sn in self.sentinels:
                harness.wait_for(lambda: sn.command("SENTINEL", "get-master-addr-by-name", "tally"), what="sentinels")
            env["REDIS_SENTINELS"] = ",".join(sn.addr() for sn in self.sentinels)
        self.broker = self.make_broker()
        self.start(self.broker)
        self.publishers = [self.start(harness.Publisher(self.dir, self.redis, self.broker, "p%d" % i,
                                                        extra_env=env)) for i in (1, 2)]
        self.replicas = []
        renv = dict(env, REDIS_WAIT_REPLICAS=ha) if ha is not None else env
        for i in range(replicas):
            self.replicas.append(self.start(harness.Replica(self.dir, self.redis, self.broker, "r%d" % i,
                                                            extra_env=renv)))
        if netns:
            self.replicas.append(self.start(NsReplica(self.dir, netns, self.redis, self.broker, "ns")))

    def make_broker(self):
        b = harness.Broker(self.dir)
        if self.ns:
            with open(b.argv[-1], "a") as f:
                f.write("listener %d %s\n" % (b.port, self.ns.broker_ip))
        return b

    def start(self, p):
        self.procs.append(p)
        return p.start()

    @staticmethod
    def url(r):
        return "http://%s:%d/" % (r.host, r.port)

    def restart(self, old, new):
        self.procs[self.procs.index(old)] = new
        return new.start()

    def stop(self):
        bad = []
        for p in reversed(self.procs):
            rc = p.stop()
            if isinstance(p, (harness.Replica, harness.Publisher)) and rc not in (0, None, -9):
                bad.append("%s exited %s:\n%s" % (p.name, rc, p.output()[-3000:]))
        shutil.rmtree(self.dir, ignore_errors=True)
        return bad


def when(load, acked):
    """Waits until the load has at least `acked` answers (so a fault hits a busy cluster)."""
    harness.wait_for(lambda: load.result.acknowledged >= acked, timeout=20, what="%d answers" % acked)


def max_m(load):
    with load.result.lock:
        return max((m for _, _, m in load.result.answers), default=0)


# Each scenario injects its faults into a cluster under load and returns (faults, notes,
# effect): effect is a check that the fault really hit (a fault that missed proves nothing).


def metric_sum(replicas, name):
    total = 0.0
    for r in replicas:
        try:
            total += r.metric(name)
        except (OSError, KeyError):
            pass
    return total


def effect(ok, detail):
    return ("effect", bool(ok), detail)

def replicas_killed(c, load, args):
    faults = 0
    for victim in c.replicas[:2]:
        when(load, load.result.acknowledged + 2000)
        victim.kill9()
        faults += 1
        time.sleep(0.3)  # down for a while under load (not a readiness wait)
        fresh = harness.Replica(c.dir, c.redis, c.broker, victim.instance, port=victim.port,
                                extra_env={"LOG_LEVEL": "warn"})
        c.restart(victim, fresh)
        c.replicas[c.replicas.index(victim)] = fresh
    errors = load.result.conn_errors
    return faults, "", effect(errors >= faults, "%d load connections broken by the kills" % errors)


def broker_restarted(c, load, args):
    when(load, 3000)
    c.broker.kill9()
    t0 = time.monotonic()
    try:
        harness.wait_for(lambda: metric_sum(c.replicas, "tally_mqtt_connected") == 0, timeout=5,
                         what="every replica to see the broker gone")
        seen = True
    except AssertionError:
        seen = False
    time.sleep(max(0.0, 1.0 - (time.monotonic() - t0)))  # an outage of at least a second, under load
    fresh = harness.Broker(c.dir, port=c.broker.port)
    c.restart(c.broker, fresh)
    c.broker = fresh
    return 1, "", effect(seen, "every replica saw the broker gone")


def redis_killed(c, load, args):
    """kill -9 of Redis, restarted from its AOF. Reports what the AOF alone kept: read from a
    copy by a second Redis, before the replicas reconnect and can repair anything."""
    when(load, 3000)
    c.redis.kill9()
    acked_max = max_m(load)
    notes = "aof lost %d" % aof_loss(c, acked_max)
    down = metric_sum(c.replicas, "tally_redis_connected") == 0
    restart_redis(c)
    return 1, notes, effect(down, "every replica lost its Redis connection")


def redis_lost_last_second(c, load, args):
    """A machine crash under appendfsync everysec: the AOF comes back without its last second
    of writes (the most everysec may lose), simulated by cutting the AOF back to its length a
    second before the kill. The replicas' lift must give the lost totals back."""
    sizes = []
    stop = threading.Event()

    def watch():
        while not stop.is_set():
            sizes.append((time.monotonic(), aof_incr_size(c)))
            time.sleep(0.02)

    t = threading.Thread(target=watch, daemon=True)
    t.start()
    when(load, 3000)
    time.sleep(1.2)
    c.redis.kill9()
    killed = time.monotonic()
    stop.set()
    t.join()
    keep = max(s for ts, s in sizes if ts <= killed - 1.0)
    path = aof_incr_path(c)
    with open(path, "r+b") as f:
        f.truncate(keep)
    acked_max = max_m(load)
    lost = aof_loss(c, acked_max)
    restart_redis(c)
    harness.wait_for(lambda: metric_sum(c.replicas, "tally_redis_total_lifted_total") > 0, timeout=10,
                     what="a replica to lift the total") if lost else None
    lifted = metric_sum(c.replicas, "tally_redis_total_lifted_total")
    return 1, "aof lost %d, lifted back %d" % (lost, lifted), effect(lost > 0, "the cut AOF lost %d" % lost)


def aof_dir(c):
    return os.path.join(c.redis.dir, "appendonlydir")


def aof_incr_path(c):
    names = [n for n in os.listdir(aof_dir(c)) if n.endswith(".incr.aof")]
    return os.path.join(aof_dir(c), sorted(names)[-1])


def aof_incr_size(c):
    try:
        return os.path.getsize(aof_incr_path(c))
    except (OSError, IndexError):
        return 0


def aof_loss(c, acked_max):
    """How far below the highest acknowledged M the AOF alone would bring Redis back."""
    side = tempfile.mkdtemp(prefix="aof-", dir=c.dir)
    shutil.copytree(aof_dir(c), os.path.join(side, "appendonlydir"))
    r = harness.Redis(side, fsync="always")
    r.argv[r.argv.index("--dir") + 1] = side
    r.start()
    try:
        return max(0, acked_max - r.total())
    finally:
        r.stop()


def restart_redis(c):
    fresh = harness.Redis(c.dir, fsync=c.redis.argv[c.redis.argv.index("--appendfsync") + 1], port=c.redis.port)
    fresh.argv = list(c.redis.argv)
    c.restart(c.redis, fresh)
    c.redis = fresh


def redis_paused(c, load, args):
    """CLIENT PAUSE: once shorter than REDIS_TIMEOUT_MS (requests only wait), once longer
    (overdue requests get 503, the replicas reconnect and resend)."""
    when(load, 2000)
    c.redis.command("CLIENT", "PAUSE", "800", "ALL")
    time.sleep(1.5)
    c.redis.command("CLIENT", "PAUSE", "3000", "ALL")
    time.sleep(3.2)
    timeouts = metric_sum(c.replicas, "tally_redis_timeouts_total")
    return 2, "", effect(timeouts > 0, "%d overdue replies" % timeouts)


def ns_cut(target):
    def scenario(c, load, args):
        ip = c.ns.redis_ip if target == "redis" else c.ns.broker_ip
        inside, outside = c.replicas[-1], c.replicas[:-1]
        when(load, 2000)
        c.ns.cut(ip)
        time.sleep(0.5)
        received = [inside.metric("tally_mqtt_totals_received_total"),
                    metric_sum(outside, "tally_mqtt_totals_received_total")]
        time.sleep(2.5)  # cut for 3 s in all: longer than REDIS_TIMEOUT_MS
        received = [inside.metric("tally_mqtt_totals_received_total") - received[0],
                    metric_sum(outside, "tally_mqtt_totals_received_total") - received[1]]
        timeouts = inside.metric("tally_redis_timeouts_total")
        c.ns.heal(ip)
        if target == "redis":
            return 1, "", effect(timeouts > 0, "%d overdue replies inside the namespace" % timeouts)
        return 1, "", effect(received[0] == 0 and received[1] > 0,
                             "totals heard during the cut: %d inside, %d outside" % tuple(received))
    return scenario


def publisher_leader_killed(c, load, args):
    when(load, 2000)
    leader = harness.wait_for(lambda: next((p for p in c.publishers if p.leading()), None), what="a leader")
    leader.kill9()
    t0 = time.monotonic()
    harness.wait_for(lambda: any(p.leading() for p in c.publishers if p is not leader), timeout=10,
                     what="the standby to lead")
    return 1, "standby led after %.1f s" % (time.monotonic() - t0), effect(True, "the standby leads")


def master_killed(c, load, args):
    """kill -9 of the Redis master; the sentinels promote a replica; the old master comes
    back as a replica of the new one."""
    when(load, load.result.acknowledged + 2000)
    old = c.redis
    old.kill9()
    t0 = time.monotonic()
    harness.wait_for(lambda: c.sentinels[0].master()[1] != old.port, timeout=20, interval=0.05,
                     what="a promotion")
    promoted = time.monotonic() - t0
    port = c.sentinels[0].master()[1]
    c.redis = next(n for n in c.nodes if n.port == port)
    fresh = harness.Redis(c.dir, fsync=c.fsync, port=old.port, replica_of=c.redis)
    c.restart(old, fresh)
    c.nodes[c.nodes.index(old)] = fresh
    harness.wait_for(lambda: metric_sum(c.replicas, "tally_redis_failovers_total") >= len(c.replicas), timeout=10,
                     what="every replica to follow")
    return 1, "promoted :%d %.1f s after the kill" % (port, promoted), effect(True, "every replica followed")


def sentinel_killed(c, load, args):
    when(load, load.result.acknowledged + 2000)
    c.sentinels[0].kill9()
    mark = load.result.acknowledged
    when(load, mark + 2000)
    return 1, "", effect(load.result.acknowledged > mark, "counting went on")


SCENARIOS = [
    ("replicas-kill9", "always", False, replicas_killed),
    ("broker-restart", "always", False, broker_restarted),
    ("redis-kill9-always", "always", False, redis_killed),
    ("redis-kill9-everysec", "everysec", False, redis_killed),
    ("redis-crash-everysec-lost-1s", "everysec", False, redis_lost_last_second),
    ("redis-client-pause", "always", False, redis_paused),
    ("netns-replica-cut-from-redis", "always", True, ns_cut("redis")),
    ("netns-replica-cut-from-broker", "always", True, ns_cut("broker")),
    ("publisher-leader-kill9", "always", False, publisher_leader_killed),
]

# Redis HA with Sentinel (a master, two Redis replicas, three sentinels): run by name or with
# --ha, not yet in the default set that .ci/run runs (one of nine runs of the WAIT scenario
# once ended with the retained total 71 behind Redis after 10 s; not understood yet).
HA_SCENARIOS = [
    ("sentinel-master-kill9-async", "everysec", False, master_killed, "0"),
    ("sentinel-master-kill9-wait1", "everysec", False, master_killed, "1"),
    ("sentinel-killed", "everysec", False, sentinel_killed, "0"),
]


def run(name, fsync, needs_ns, inject, args, ha=None):
    ns = Netns().create() if needs_ns else None
    c = None
    try:
        c = Cluster(fsync=fsync, netns=ns, ha=ha)
        before = c.redis.total()
        load = tally_load.Load([c.url(r) for r in c.replicas], duration=args.seconds, concurrency=8, depth=4,
                               sample_ms=20, give_up=args.seconds + 10)
        load.start()
        try:
            faults, notes, hit = inject(c, load, args)
        except AssertionError as e:  # a step of the scenario did not happen in time
            faults, notes, hit = 0, "", ("effect", False, str(e))
        res = load.join()
        notes = "; ".join(x for x in (notes, hit[2]) if x)
        after = tally_load.settle_total("127.0.0.1:%d" % c.redis.port, None)
        checks, fig = tally_load.check(res, before, after)
        checks.append(hit)
        # Every replica comes back to the cluster total, and the retained total follows.
        behind = []
        for r in c.replicas:
            try:
                harness.wait_for(lambda: r.total() == after, timeout=10, what="%s to hold the total" % r.name)
            except AssertionError:
                behind.append("%s holds %s" % (r.instance, r.total()))
        checks.append(("converged", not behind, "; ".join(behind) or "every replica holds %d" % after))
        try:
            harness.wait_for(lambda: harness.retained(c.broker, "total_count") == str(after), timeout=10,
                             what="the retained total")
            checks.append(("retained", True, "retained total %d" % after))
        except AssertionError:
            checks.append(("retained", False, "retained total %s, Redis %d" %
                           (harness.retained(c.broker, "total_count"), after)))
        s503 = res.statuses.get(503, 0)
        ok = all(v for _, v, _ in checks)
        print("%-30s requests %6d  acknowledged %6d  503 %5d  faults %d  lost %d  duplicated %d  %s%s" % (
            name, fig["requests"], fig["acknowledged"], s503, faults, fig["lost"], fig["duplicated"],
            "PASS" if ok else "FAIL", ("  (" + notes + ")") if notes else ""), flush=True)
        if not ok:
            for n, v, d in checks:
                print("    %-9s %s  %s" % (n, "PASS" if v else "FAIL", d), flush=True)
            for p in c.publishers + c.replicas:  # what they said, for the failing check
                print("    --- %s (last lines):\n    %s" % (p.name, "\n    ".join(p.output().splitlines()[-8:])))
        return ok, fig
    finally:
        bad = c.stop() if c else []
        if ns:
            ns.destroy()
        for b in bad:
            print("    " + b.replace("\n", "\n    "))
        if bad:
            return False, None


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("scenarios", nargs="*", help="names to run (default: all)")
    ap.add_argument("--seconds", type=float, default=6.0, help="load per scenario (default 6)")
    ap.add_argument("--ha", action="store_true", help="also the Redis HA (Sentinel) scenarios")
    args = ap.parse_args()
    if not harness.REPLICA or not harness.PUBLISHER:
        sys.exit("faults: set TALLY_REPLICA and TALLY_PUBLISHER (ctest does)")
    every = SCENARIOS + HA_SCENARIOS
    chosen = [s for s in every if s[0] in args.scenarios] if args.scenarios else \
        SCENARIOS + (HA_SCENARIOS if args.ha else [])
    unknown = set(args.scenarios) - {s[0] for s in every}
    if unknown:
        sys.exit("faults: unknown scenario(s): %s" % ", ".join(sorted(unknown)))
    if any(s[2] for s in chosen) and os.geteuid() != 0:
        sys.exit("faults: the network scenarios need root (ip netns); run as root or name other scenarios")
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(1))
    failed = []
    for name, fsync, needs_ns, inject, *ha in chosen:
        ok, _ = run(name, fsync, needs_ns, inject, args, *ha)
        if not ok:
            failed.append(name)
    print("%d scenarios, %d failed%s" % (len(chosen), len(failed), (": " + ", ".join(failed)) if failed else ""))
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
