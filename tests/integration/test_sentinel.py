"""Redis Sentinel: the replica finds the master through the sentinels, follows a failover,
re-discovers after -READONLY, and refuses bad REDIS_SENTINELS values. Real redis-server
processes in sentinel mode, no mocks."""
import os
import subprocess
import time

from kit.load import counted
from kit.ha import RedisSet
from kit.procs import wait_for, Redis, Replica
from kit.testcase import ClusterTest


def role(r):
    return r.command("ROLE")[0]


def promotable(sentinel):
    """Whether `sentinel` knows a replica it could promote: one it learnt from the master's
    INFO (asked every 10 s), has heard from since, and whose link to the master is up."""
    for fields in sentinel.command("SENTINEL", "replicas", "tally"):
        info = dict(zip(fields[::2], fields[1::2]))
        if info["flags"] == "slave" and info["master-link-status"] == "ok" and int(info["info-refresh"]) < 5000:
            return True
    return False


class SentinelTest(ClusterTest):
    def setUp(self):
        super().setUp()
        self.b = self.broker()

    def ha(self, sentinels=1, quorum=1):
        """A master, one Redis replica, and `sentinels` sentinels watching the master. Without
        the shipped min-replicas guard: these tests cut the replica loose by hand and need the
        master to go on acknowledging alone (async replication at its worst)."""
        s = RedisSet(self.dir, lambda p: self.add(p).start(), replicas=1, sentinels=sentinels, quorum=quorum,
                     guard=False)
        return s.master, s.replicas[0], s.sentinels

    def sentinel_replica(self, ss, instance="s1", extra=None, ready=True, bad_first=False):
        addrs = ",".join(s.addr() for s in ss)
        if bad_first:
            addrs = "127.0.0.1:1," + addrs  # a sentinel that is down
        env = {"REDIS_SENTINELS": addrs, "REDIS_HOST": "192.0.2.1", "REDIS_PORT": "1"}  # the latter unused
        env.update(extra or {})
        return self.add(Replica(self.dir, None, self.b, instance, extra_env=env)).start(ready=ready)

    def test_a_sentinel_acl_of_an_earlier_release_still_follows_at_the_promotion(self):
        """make-secrets.sh of earlier releases let tally-client subscribe to +switch-master and
        +promoted-slave only. The refused +selected-slave costs the early leave, not the rest."""
        m, r, ss = self.ha()
        ss[0].command("ACL", "SETUSER", "tally-client", "on", ">pw", "resetchannels", "&+switch-master",
                      "&+promoted-slave", "resetkeys", "-@all", "+auth", "+hello", "+ping", "+subscribe",
                      "+sentinel|get-master-addr-by-name")
        rep = self.sentinel_replica(ss, extra={"REDIS_SENTINEL_USERNAME": "tally-client",
                                               "REDIS_SENTINEL_PASSWORD": "pw"})
        self.assertEqual(counted(rep.port, 50)["statuses"], {200: 50})
        wait_for(lambda: r.command("GET", "total_count") == "50", what="the replica to hold every write")
        wait_for(lambda: promotable(ss[0]), timeout=15, what="the sentinel to know the replica")
        ss[0].command("SENTINEL", "FAILOVER", "tally")
        wait_for(lambda: rep.metric("tally_redis_failovers_total") >= 1, timeout=15, what="the failover followed")
        self.assertIn("may not subscribe to +selected-slave", rep.output())
        self.assertIn("+promoted-slave: master tally is 127.0.0.1:%d now" % r.port, rep.output())
        self.assertNotIn("+selected-slave: ", rep.output())
        rep.wait_ready(timeout=10)
        self.assertEqual(counted(rep.port, 50)["statuses"], {200: 50}, rep.output())
        self.assertEqual(int(r.command("GET", "total_count")), 100)

    def test_discovery_skips_a_dead_sentinel(self):
        m, r, ss = self.ha()
        rep = self.sentinel_replica(ss, bad_first=True)
        self.assertEqual(rep.count()[0], 200)
        self.assertEqual(m.total(), 1, "the increment went to the master")
        self.assertIn("(master)", rep.output())

    def test_failover_is_followed_and_nothing_is_counted_twice(self):
        m, r, ss = self.ha(sentinels=3, quorum=2)
        rep = self.sentinel_replica(ss, extra={"REDIS_TIMEOUT_MS": "10000"})
        first = counted(rep.port, 300)
        self.assertEqual(first["statuses"], {200: 300})
        self.assertEqual(rep.metric('tally_redis_master{address="127.0.0.1:%d"}' % m.port), 1)
        wait_for(lambda: r.command("GET", "total_count") == "300", what="the replica to hold every write")
        t0 = time.monotonic()
        ss[0].command("SENTINEL", "FAILOVER", "tally")
        wait_for(lambda: role(r) == "master", timeout=15, what="the Redis replica to be promoted")
        promoted = time.monotonic()
        wait_for(lambda: rep.metric("tally_redis_failovers_total") >= 1, timeout=5, what="+switch-master followed")
        followed = time.monotonic()
        self.assertLess(followed - promoted, 1.5, "followed within a second of the promotion (+ polling)")
        rep.wait_ready(timeout=10)  # reconnected to the new master
        # It left the old master (alive, still taking writes) at the leader's choice, before the
        # promotion: what it writes there afterwards the demotion would throw away.
        self.assertIn("+selected-slave: 127.0.0.1:%d is to be promoted" % r.port, rep.output())
        self.assertEqual(rep.metric('tally_redis_master{address="127.0.0.1:%d"}' % r.port), 1, "the new master shown")
        self.assertGreater(rep.metric("tally_redis_without_master_seconds_total"), 0, "the switch took some time")
        res = counted(rep.port, 300)
        self.assertEqual(res["statuses"], {200: 300}, "counting goes on on the new master\n" + rep.output())
        ms = sorted(m_ for _, m_, _ in first["ok"] + res["ok"])
        self.assertEqual(ms, list(range(1, 601)), "every M once: nothing lost, nothing twice")
        self.assertEqual(int(r.command("GET", "total_count")), 600)
        wait_for(lambda: role(m) == "slave", timeout=15, what="the old master to rejoin as a replica")
        self.assertLess(followed - t0, 15)

    def test_a_promoted_node_without_the_last_writes_is_lifted_over_them(self):
        # Async replication: the promoted node lacks the last 50 increments the old master
        # acknowledged. Made certain here: the Redis replica is cut loose (REPLICAOF NO ONE)
        # before those 50, the old master is killed, and the sentinel then names the cut-off
        # node. The replica knows it handed out 150: the lift raises the new master to 150
        # before the next batch, so M 101..150 are not handed out again.
        m, r, ss = self.ha()
        rep = self.sentinel_replica(ss, extra={"REDIS_TIMEOUT_MS": "10000"})
        first = counted(rep.port, 100)
        wait_for(lambda: r.command("GET", "total_count") == "100", what="the Redis replica to hold 100")
        r.command("REPLICAOF", "NO", "ONE")
        second = counted(rep.port, 50)
        self.assertEqual((m.total(), r.total()), (150, 100), "the 50 reached the old master only")
        m.kill9()
        ss[0].command("SENTINEL", "REMOVE", "tally")
        ss[0].command("SENTINEL", "MONITOR", "tally", "127.0.0.1", str(r.port), "1")
        rep.wait_ready(timeout=15)
        third = counted(rep.port, 10)
        self.assertEqual(third["statuses"], {200: 10}, rep.output())
        ms = sorted(m_ for _, m_, _ in first["ok"] + second["ok"] + third["ok"])
        self.assertEqual(ms, list(range(1, 161)), "every M once: 151.. after the lift, not 101.. again")
        self.assertEqual(r.total(), 160)
        self.assertEqual(rep.metric("tally_redis_total_lifted_total"), 50)

    def test_readonly_from_a_demoted_node_leads_to_rediscovery(self):
        m, r, ss = self.ha()
        rep = self.sentinel_replica(ss, extra={"REDIS_TIMEOUT_MS": "15000"})
        self.assertEqual(rep.count()[0], 200)
        # Demote the master behind the sentinel's back: the next batch meets -READONLY. The
        # sentinel still names the old node, which answers ROLE as a replica; once it names
        # the new master, the batch that met -READONLY is resent there and answered.
        r.command("REPLICAOF", "NO", "ONE")
        m.command("REPLICAOF", "127.0.0.1", str(r.port))
        ss[0].command("SENTINEL", "REMOVE", "tally")
        st = {}

        def ask():
            st["r"] = rep.count()

        import threading
        t = threading.Thread(target=ask)
        t.start()
        wait_for(lambda: "no longer the master (READONLY)" in rep.output(), timeout=10, what="-READONLY seen")
        ss[0].command("SENTINEL", "MONITOR", "tally", "127.0.0.1", str(r.port), "1")
        t.join(20)
        self.assertEqual(st["r"][0], 200, "the request that met -READONLY was resent to the new master")
        self.assertEqual(st["r"][2], 2)
        self.assertEqual(int(r.command("GET", "total_count")), 2)
        self.assertGreaterEqual(rep.metric("tally_redis_not_master_total"), 1)


class SentinelConfigTest(ClusterTest):
    def run_replica(self, **env):
        p = subprocess.run([os.environ["TALLY_REPLICA"]], env=dict(os.environ, **env), capture_output=True, text=True,
                           timeout=10)
        return p.returncode, p.stderr.strip()

    def test_bad_values_exit_2_with_one_line(self):
        for value in ("127.0.0.1", "host:0", "host:70000", "host:12ab", ",", "a:1,,b:2", "[::1:26379", "h st:1"):
            rc, err = self.run_replica(REDIS_SENTINELS=value)
            self.assertEqual(rc, 2, value)
            self.assertEqual(len(err.splitlines()), 1, err)
            self.assertIn("REDIS_SENTINELS", err)
        rc, err = self.run_replica(REDIS_SENTINELS="127.0.0.1:26379", REDIS_MASTER_NAME="bad name")
        self.assertEqual((rc, "REDIS_MASTER_NAME" in err), (2, True))
        for prog in (os.environ["TALLY_PUBLISHER"],):
            p = subprocess.run([prog], env=dict(os.environ, REDIS_SENTINELS="nope"), capture_output=True, text=True,
                               timeout=10)
            self.assertEqual(p.returncode, 2)
            self.assertIn("REDIS_SENTINELS", p.stderr)


class PublisherSentinelTest(ClusterTest):
    def test_the_publisher_leads_through_the_sentinels_and_follows_a_failover(self):
        from kit.procs import Publisher, retained
        b = self.broker()
        # One replica, one sentinel; without the guard, as the new master writes before the
        # old one has rejoined it.
        rs = RedisSet(self.dir, lambda p: self.add(p).start(), replicas=1, sentinels=1, quorum=1, guard=False)
        m, r, s = rs.master, rs.replicas[0], rs.sentinels[0]
        env = {"REDIS_SENTINELS": rs.sentinel_addrs(), "REDIS_PORT": "1"}
        m.command("SET", "total_count", "41")
        pub = self.add(Publisher(self.dir, m, b, "p1", extra_env=env)).start()
        wait_for(lambda: pub.leading(), what="the publisher to lead through the sentinel")
        wait_for(lambda: retained(b, "total_count") == "41", what="the retained total from the master")
        wait_for(lambda: r.command("GET", "total_count") == "41", what="replication")
        s.command("SENTINEL", "FAILOVER", "tally")
        wait_for(lambda: role(r) == "master", timeout=15, what="the promotion")
        r.command("INCRBY", "total_count", "1")
        wait_for(lambda: retained(b, "total_count") == "42", timeout=15, what="the new master's total retained")
        self.assertGreaterEqual(pub.metric("tally_redis_failovers_total"), 1)
        wait_for(lambda: pub.leading(), what="one leader again")


class WaitModeTest(ClusterTest):
    def test_a_batch_is_acknowledged_only_once_a_replica_holds_it(self):
        import signal as sig
        b = self.broker()
        m = self.redis(fsync="everysec")
        r = self.add(Redis(self.dir, fsync="everysec", replica_of=m)).start()
        wait_for(lambda: m.replicas_acking(1), what="the replica to confirm writes")
        rep = self.add(Replica(self.dir, m, b, "sync", extra_env={"REDIS_WAIT_REPLICAS": "1",
                                                                  "REDIS_WAIT_TIMEOUT_MS": "300"})).start()
        res = counted(rep.port, 500)
        self.assertEqual(res["statuses"], {200: 500})
        self.assertEqual(r.command("GET", "total_count"), "500", "every acknowledged increment is on the replica")
        waits = rep.metric("tally_redis_waits_total")
        self.assertGreater(waits, 0)
        self.assertLess(waits, 500, "WAITs are grouped, never one per request")
        r.signal(sig.SIGSTOP)  # the replica stops acknowledging
        try:
            st, _, _ = rep.count()
            self.assertEqual(st, 503, "not confirmed: not acknowledged")
            self.assertGreaterEqual(rep.metric("tally_redis_wait_timeouts_total"), 1)
        finally:
            r.signal(sig.SIGCONT)
        wait_for(lambda: rep.count()[0] == 200, what="acknowledged again once the replica is back")
        self.assertIn("WAIT confirmed 0 of 1 replicas", rep.output())

    def test_asynchronous_mode_sends_no_wait(self):
        b = self.broker()
        m = self.redis(fsync="everysec")
        rep = self.add(Replica(self.dir, m, b, "async")).start()
        self.assertEqual(counted(rep.port, 100)["statuses"], {200: 100}, "no replica needed")
        self.assertEqual(rep.metric("tally_redis_waits_total"), 0)
