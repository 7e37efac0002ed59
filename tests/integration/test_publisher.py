"""The publisher: retained total for late subscribers, leader election by Redis lease,
failover on kill -9 and on a pause, a retained total that never goes backwards."""
import signal
import time

from kit.procs import retained, wait_for
from kit.testcase import undocumented_metrics, ClusterTest

TTL_S = 1.5  # LEASE_TTL_MS of the harness's publishers


def retained_total(broker, timeout=3):
    v = retained(broker, "total_count", timeout=timeout)
    return int(v) if v else None


class PublisherTest(ClusterTest):
    servers = True

    def test_late_subscriber_gets_the_retained_total(self):
        self.r.command("SET", "total_count", "41")
        self.publisher(self.r, self.b, "p1")
        wait_for(lambda: retained_total(self.b) == 41, what="the retained total")
        rep = self.replica(self.r, self.b)
        self.assertEqual(rep.count()[2], 42)
        wait_for(lambda: retained_total(self.b) == 42, what="the retained total to follow Redis")

    def test_every_metric_is_documented(self):
        p = self.publisher(self.r, self.b, "p1")
        wait_for(p.leading, what="p1 to lead")
        st, body = p.get("/metrics")[0:2]
        self.assertEqual(st, 200)
        self.assertIn("tally_publisher_leader", body)
        self.assertEqual(undocumented_metrics(body), [], "every metric has a line in docs/api.md")

    def test_heartbeat_repairs_a_lost_message(self):
        self.r.command("SET", "total_count", "7")
        p = self.publisher(self.r, self.b, "p1")
        wait_for(lambda: retained_total(self.b) == 7, what="the retained total")
        # Someone clears the retained message: the heartbeat puts it back.
        beats = p.metric("tally_publisher_heartbeats_total")
        self.b.publish_empty(retain=True)
        wait_for(lambda: p.metric("tally_publisher_heartbeats_total") > beats, what="a heartbeat after the clear")
        wait_for(lambda: retained_total(self.b) == 7, timeout=5, what="the heartbeat to restore the total")

    def _two(self):
        a = self.publisher(self.r, self.b, "pa")
        c = self.publisher(self.r, self.b, "pc")
        wait_for(lambda: a.leading() != c.leading(), what="exactly one leader")
        return (a, c) if a.leading() else (c, a)

    def test_exactly_one_leads_and_kill9_fails_over_within_the_ttl(self):
        watcher = self.watcher(self.b)
        leader, standby = self._two()
        self.assertEqual(self.r.command("GET", "tally:publisher:leader").split(":")[0], leader.instance)
        self.r.command("SET", "total_count", "100")
        wait_for(lambda: retained_total(self.b) == 100, what="the leader to publish")
        leader.kill9()
        self.procs.remove(leader)
        t0 = time.monotonic()
        wait_for(standby.leading, timeout=TTL_S * 3, interval=0.02, what="the standby to lead")
        took = time.monotonic() - t0
        self.assertLess(took, TTL_S + 0.5, "takeover within the lease TTL (+ one poll)")
        self.r.command("INCRBY", "total_count", "5")
        wait_for(lambda: retained_total(self.b) == 105, what="the new leader to publish")
        seen = watcher.totals()
        self.assertEqual(seen, sorted(seen), "the published total never went backwards: %r" % seen)

    def test_paused_leader_loses_the_lease_and_stays_quiet_after_waking(self):
        watcher = self.watcher(self.b)
        leader, standby = self._two()
        self.r.command("SET", "total_count", "10")
        wait_for(lambda: retained_total(self.b) == 10, what="first publish")
        leader.signal(signal.SIGSTOP)
        try:
            wait_for(standby.leading, timeout=TTL_S * 3, what="the standby to take over from a paused leader")
            self.r.command("SET", "total_count", "20")
            wait_for(lambda: retained_total(self.b) == 20, what="the new leader to publish")
        finally:
            leader.signal(signal.SIGCONT)
        wait_for(lambda: leader.metric("tally_publisher_lease_lost_total") >= 1, what="the woken leader to step down")
        self.assertFalse(leader.leading())
        sent = leader.metric("tally_publisher_publishes_total") + leader.metric("tally_publisher_heartbeats_total")
        self.r.command("SET", "total_count", "30")
        wait_for(lambda: retained_total(self.b) == 30, what="the standby to keep publishing")
        wait_for(lambda: standby.metric("tally_publisher_heartbeats_total") >= 1, what="a heartbeat cycle to pass")
        self.assertEqual(leader.metric("tally_publisher_publishes_total")
                         + leader.metric("tally_publisher_heartbeats_total"), sent,
                         "the woken ex-leader published nothing")
        self.assertTrue(standby.leading())
        seen = watcher.totals()
        self.assertEqual(seen, sorted(seen), seen)

    def test_retained_total_never_goes_backwards_when_redis_lost_increments(self):
        self.r.command("SET", "total_count", "1000")
        first = self.publisher(self.r, self.b, "p1")
        wait_for(lambda: retained_total(self.b) == 1000, what="1000 retained")
        first.kill9()
        self.procs.remove(first)
        # Redis restarted from an older AOF, say: it now says less than watchers were told.
        self.r.command("SET", "total_count", "500")
        second = self.publisher(self.r, self.b, "p2")
        wait_for(second.leading, timeout=TTL_S * 3, what="p2 to lead")
        wait_for(lambda: second.metric("tally_publisher_held_back_total") >= 1, what="p2 to hold 500 back")
        self.assertEqual(retained_total(self.b), 1000)
        self.r.command("SET", "total_count", "1001")
        wait_for(lambda: retained_total(self.b) == 1001, what="publishing to resume above the floor")

    def test_clean_exit_releases_the_lease(self):
        leader, standby = self._two()
        t0 = time.monotonic()
        self.assertEqual(leader.stop(), 0)
        self.procs.remove(leader)
        wait_for(standby.leading, timeout=TTL_S * 3, interval=0.02, what="the standby to lead")
        self.assertLess(time.monotonic() - t0, TTL_S * 0.8, "released, not left to expire")
        self.assertIn("lease: released", leader.output())

    def test_bad_config_exits_2(self):
        import subprocess
        from kit.procs import PUBLISHER
        for args in (["--lease-ttl-ms", "10"], ["--publish-interval-ms", "x"], ["--mqtt-url", "udp://x"]):
            p = subprocess.run([PUBLISHER] + args, capture_output=True, text=True, timeout=10)
            self.assertEqual(p.returncode, 2, args)
            self.assertEqual(len(p.stderr.strip().splitlines()), 1, p.stderr)
