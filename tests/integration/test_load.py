"""tally-load (load/tally-load): its checker on made-up runs, and whole runs on real replicas."""
import os
import subprocess
import threading
import unittest

from kit.procs import LOAD_SCALE, ROOT, wait_for
from kit.testcase import ClusterTest

TOOL = os.path.join(ROOT, "load", "tally-load")
from kit import load as tally_load
from kit.http_reader import parse_answer


def made_up(answers, attempted=None, samples=None):
    r = tally_load.Result()
    r.answers = [("a:1", i + 1, m) for i, m in enumerate(answers)]
    r.attempted = len(answers) if attempted is None else attempted
    r.samples = samples or {}
    return r


def verdicts(checks):
    return {name: ok for name, ok, _ in checks}


class CheckerTest(unittest.TestCase):
    def test_a_clean_run_passes(self):
        checks, fig = tally_load.check(made_up([11, 12, 13], samples={"u": [10, 12, 13]}), 10, 13)
        self.assertEqual(verdicts(checks), {"jepsen": True, "unique-M": True, "monotonic": True})
        self.assertEqual((fig["lost"], fig["duplicated"]), (0, 0))

    def test_a_repeated_m_fails(self):
        checks, fig = tally_load.check(made_up([11, 12, 12]), 10, 13)
        self.assertFalse(verdicts(checks)["unique-M"])
        self.assertEqual(fig["duplicated"], 1)

    def test_an_m_not_above_the_starting_total_fails(self):
        checks, _ = tally_load.check(made_up([9, 11]), 10, 12)
        self.assertFalse(verdicts(checks)["unique-M"])

    def test_fewer_increments_than_acknowledged_is_a_loss(self):
        checks, fig = tally_load.check(made_up([11, 12, 13]), 10, 12)
        self.assertFalse(verdicts(checks)["jepsen"])
        self.assertEqual(fig["lost"], 1)

    def test_more_increments_than_attempted_is_a_double_count(self):
        checks, fig = tally_load.check(made_up([11, 12], attempted=3), 10, 14)
        self.assertFalse(verdicts(checks)["jepsen"])
        self.assertEqual(fig["duplicated"], 1)

    def test_unanswered_attempts_may_or_may_not_count(self):
        for after in (12, 13, 14):
            checks, _ = tally_load.check(made_up([11, 12], attempted=4), 10, after)
            self.assertTrue(verdicts(checks)["jepsen"], after)

    def test_a_cached_total_going_back_fails(self):
        checks, _ = tally_load.check(made_up([11], samples={"u": [5, 7, 6, 8]}), 10, 11)
        self.assertFalse(verdicts(checks)["monotonic"])

    def test_answer_parsing(self):
        body = b"You are talking to instance r1:8080.\nThis is request 3 to this instance and request 42 to the cluster.\n"
        self.assertEqual(parse_answer(body), ("r1:8080", 3, 42))
        self.assertIsNone(parse_answer(body[:-1]))
        self.assertIsNone(parse_answer(b'{"cluster_total":1}'))

    def test_bad_usage_exits_2(self):
        p = subprocess.run([TOOL, "ftp://x/"], capture_output=True, text=True)
        self.assertEqual(p.returncode, 2)
        self.assertIn("only http://", p.stderr)
        for bad in (["--redis-password-file", "/nonexistent", "--redis", "127.0.0.1:1"],
                    ["--redis", "127.0.0.1:notaport"], ["--redis", "127.0.0.1:1"]):
            p = subprocess.run([TOOL] + bad + ["http://127.0.0.1:1/"], capture_output=True,
                               text=True)
            self.assertEqual(p.returncode, 2, (bad, p.stderr))
            self.assertEqual(len(p.stderr.strip().splitlines()), 1, p.stderr)
            self.assertTrue(p.stderr.startswith("tally-load: "), p.stderr)


class LiveRunTest(ClusterTest):
    def cluster(self, n=3):
        redis = self.redis()
        broker = self.broker()
        reps = [self.replica(redis, broker, "r%d" % i) for i in range(n)]
        return redis, reps

    def run_tool(self, redis, reps, *args):
        argv = [TOOL, "--redis", "127.0.0.1:%d" % redis.port] + list(args) + \
               ["http://127.0.0.1:%d/" % r.port for r in reps]
        return subprocess.run(argv, capture_output=True, text=True, timeout=120)

    def test_a_run_on_three_replicas_passes_and_shows_each_instance(self):
        redis, reps = self.cluster()
        redis.command("SET", "total_count", "1000")
        n = int(6000 * LOAD_SCALE)
        p = self.run_tool(redis, reps, "-n", str(n), "-c", "6")
        self.assertEqual(p.returncode, 0, p.stdout + p.stderr)
        for r in reps:
            self.assertRegex(p.stdout, r"%s:%d +\d+ +\d+\.\d%% +#+" % (r.instance, r.port))
        self.assertIn("acknowledged %d <= Redis +%d <= attempted %d" % (n, n, n), p.stdout)
        self.assertEqual(redis.total(), 1000 + n)

    def test_increments_nobody_asked_for_make_it_fail(self):
        redis, reps = self.cluster(1)
        # Something adds to the total behind the replicas' back while the load runs (taking
        # some away would be repaired by the replicas' lift, see test_faults.LostWritesTest).
        stop = threading.Event()

        def thief():
            wait_for(lambda: redis.total() > 50, what="the load to start")
            redis.command("INCRBY", "total_count", "7")
            stop.set()

        t = threading.Thread(target=thief)
        t.start()
        p = self.run_tool(redis, reps, "-n", str(int(4000 * LOAD_SCALE)), "-c", "4")
        t.join()
        self.assertTrue(stop.is_set())
        self.assertEqual(p.returncode, 1, p.stdout + p.stderr)
        self.assertRegex(p.stdout, r"jepsen +FAIL  acknowledged (\d+) <= Redis \+(\d+) <= attempted \1\n")

    def test_pause_holds_every_request_answered_until_resume(self):
        redis, reps = self.cluster(2)
        load = tally_load.Load(["http://127.0.0.1:%d/" % r.port for r in reps], duration=60, concurrency=4,
                               depth=4).start()
        own = 0  # requests of the test's own, counted beside the load's
        try:
            for _ in range(3):
                base = load.snapshot()["acked"]
                wait_for(lambda: load.snapshot()["acked"] > base + 200, what="the load to count")
                load.pause()
                held = load.snapshot()
                # Nothing in flight: every attempt answered, and Redis holds exactly those.
                self.assertEqual(held["attempted"], held["acked"])
                self.assertEqual(held["statuses"], {200: held["acked"]})
                self.assertEqual(redis.total(), held["acked"] + own)
                self.assertEqual(reps[0].count()[0], 200)  # a request of our own while held
                own += 1
                self.assertEqual(load.snapshot()["attempted"], held["attempted"], "the load sent while paused")
                self.assertEqual(redis.total(), held["acked"] + own)
                load.resume()
                wait_for(lambda: load.snapshot()["attempted"] > held["attempted"], what="the load to go on")
        finally:
            load.stop()
            load.join()

    def test_nothing_reachable_exits_2(self):
        redis, reps = self.cluster(1)
        reps[0].stop()
        p = self.run_tool(redis, reps, "-n", "10", "--give-up", "0.5")
        self.assertEqual(p.returncode, 2, p.stdout + p.stderr)
        self.assertIn("no request could be sent", p.stderr)


if __name__ == "__main__":
    unittest.main()
