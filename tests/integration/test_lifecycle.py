"""A replica's life: readiness means "can count now" (a broker outage leaves it ready, a Redis
outage does not), SIGHUP reopens the log, SIGTERM drains (after SHUTDOWN_DELAY_MS unready), and
the INSTANCE_ID claim."""
import json
import os
import signal
import socket
import threading
import time

from kit.http_reader import read_response
from kit.load import counted
from kit.procs import LOAD_SCALE, wait_for, Replica
from kit.testcase import ClusterTest


def slurp(path):
    with open(path) as f:
        return f.read()


class LifecycleTest(ClusterTest):
    servers = True

    def test_sighup_reopens_the_log_and_reloads_the_level(self):
        log = os.path.join(self.dir, "tally.log")
        env_file = os.path.join(self.dir, "tally.env")
        with open(env_file, "w") as f:
            f.write("LOG_LEVEL=info\n")
        rep = self.replica(self.r, self.b, instance="hup",
                           extra_env={"LOG_LEVEL": None, "LOG_FILE": log, "ENV_FILE": env_file})
        wait_for(lambda: os.path.exists(log) and "listening on" in slurp(log), what="the log in LOG_FILE")
        os.rename(log, log + ".1")  # what logrotate does
        with open(env_file, "w") as f:
            f.write("LOG_LEVEL=debug\n")
        rep.signal(signal.SIGHUP)
        wait_for(lambda: os.path.exists(log) and "SIGHUP: log reopened (%s), level debug (was info)" % log
                 in slurp(log), what="one line in the new file")
        self.assertTrue(rep.alive(), "SIGHUP never kills")
        self.assertEqual(rep.count()[0], 200)
        # A broken edit keeps the running settings.
        with open(env_file, "w") as f:
            f.write("LOG_LEVEL=loud\n")
        rep.signal(signal.SIGHUP)
        wait_for(lambda: "no longer loads" in slurp(log), what="the warning")
        self.assertTrue(rep.alive())
        rc = rep.stop()
        self.procs.remove(rep)
        self.assertEqual(rc, 0, slurp(log))

    def test_sigterm_drains_pipelined_keep_alive_load(self):
        rep = self.replica(self.r, self.b, instance="drain", extra_env={"THREADS": "2"})
        conns, depth = 16, 16
        lock = threading.Lock()
        totals = {"sent": 0, "answered": 0, "ok": 0, "errors": [], "closed_by_server": 0, "connected": 0}
        started = threading.Event()
        req = b"GET / HTTP/1.1\r\nHost: t\r\n\r\n"

        def client():
            sent = answered = ok = 0
            err = None
            s = socket.create_connection(("127.0.0.1", rep.port), timeout=15)
            with lock:
                totals["connected"] += 1
            f = s.makefile("rb")
            try:
                while True:
                    s.sendall(req * depth)
                    sent += depth
                    close = False
                    for _ in range(depth):
                        st, h, _ = read_response(f)
                        answered += 1
                        ok += st == 200
                        if h.get("connection") == "close":
                            close = True
                            break
                    started.set()
                    if close:
                        break
            except OSError as e:  # resets, broken pipes, EOF without an answer
                err = repr(e)
            finally:
                s.close()
                with lock:
                    totals["sent"] += sent
                    totals["answered"] += answered
                    totals["ok"] += ok
                    totals["closed_by_server"] += close if err is None else 0
                    if err:
                        totals["errors"].append(err)

        threads = [threading.Thread(target=client) for _ in range(conns)]
        for t in threads:
            t.start()
        started.wait(10)
        # Every connection accepted before the SIGTERM (a thread that connects after it
        # meets a closed listener: no accepted connection, nothing this test is about).
        wait_for(lambda: totals["connected"] == conns, what="every connection accepted")
        wait_for(lambda: self.r.total() > 2000 * LOAD_SCALE, what="load to run")
        rep.signal(signal.SIGTERM)
        for t in threads:
            t.join(30)
        self.assertEqual(rep.stop(), 0)
        self.procs.remove(rep)
        self.assertEqual(totals["errors"], [], "no connection error on an accepted connection")
        self.assertEqual(totals["closed_by_server"], conns, "every connection ended by Connection: close")
        self.assertEqual(totals["answered"], totals["sent"], "every request sent before Connection: close answered")
        self.assertEqual(totals["ok"], totals["answered"])
        self.assertEqual(self.r.total(), totals["ok"])
        self.assertIn("draining", rep.output())

    def test_a_duplicated_instance_id_refuses_to_start(self):
        first = self.replica(self.r, self.b, instance="twin")
        second = self.add(Replica(self.dir, self.r, self.b, "twin")).start(ready=False)
        wait_for(lambda: not second.alive(), timeout=15, what="the second process to give up")
        self.assertEqual(second.stop(), 2)
        self.procs.remove(second)
        errors = [line for line in second.output().splitlines() if " error " in line]
        self.assertEqual(len(errors), 1, errors)
        self.assertIn("INSTANCE_ID twin is already in use by a live replica", errors[0])
        self.assertNotIn("connected as twin", second.output(), "it never touched the first one's MQTT session")
        self.assertEqual(first.output().count("connected as twin"), 1)
        self.assertEqual(first.get("/readyz")[0], 200)
        self.assertEqual(json.loads(first.get("/replicas")[1])["replicas"][0]["state"], "online")

    def test_with_instance_id_wait_the_newcomer_takes_over_once_the_holder_exits(self):
        old = self.replica(self.r, self.b, instance="slot-1")
        new = self.replica(self.r, self.b, instance="slot-1", ready=False, extra_env={"INSTANCE_ID_WAIT_MS": "20000"})
        wait_for(lambda: "waiting for it to exit" in new.output(), what="the newcomer to wait")
        self.assertEqual(new.get("/healthz")[0], 200, "alive while it waits")
        self.assertEqual(new.get("/readyz")[0], 503, "not ready: no MQTT session before the claim")
        self.assertEqual(old.stop(), 0)  # what a start-first rolling update does next
        self.procs.remove(old)
        new.wait_ready(timeout=10)
        self.assertEqual(new.count()[0], 200)

    def test_a_restart_after_kill9_gets_the_id_once_the_claim_lapses(self):
        first = self.replica(self.r, self.b, instance="phoenix")
        first.kill9()
        self.procs.remove(first)
        again = self.replica(self.r, self.b, instance="phoenix", ready=False)
        again.wait_ready(timeout=10)
        self.assertEqual(again.count()[0], 200)
        # A clean exit gives the id back at once.
        self.assertEqual(again.stop(), 0)
        self.procs.remove(again)
        self.assertIsNone(self.r.command("GET", "tally:instance:phoenix"))


class ReadinessTest(ClusterTest):
    def test_a_broker_outage_keeps_the_replica_ready_and_counting(self):
        r = self.redis(fsync="everysec")
        b = self.broker()
        rep = self.replica(r, b, instance="steady")
        b.kill9()
        wait_for(lambda: rep.metric("tally_mqtt_connected") == 0, what="the replica to notice")
        st, body, _ = rep.get("/readyz")
        self.assertEqual(st, 200)
        self.assertEqual(json.loads(body), {"ready": True, "redis": True, "mqtt": False, "stopping": False})
        self.assertEqual(rep.metric("tally_ready"), 1)
        n = int(500 * LOAD_SCALE)
        self.assertEqual(counted(rep.port, n)["statuses"], {200: n})

    def test_a_redis_outage_makes_it_unready_but_alive(self):
        r = self.redis(fsync="everysec")
        b = self.broker()
        rep = self.replica(r, b, instance="waiting")
        r.kill9()
        wait_for(lambda: rep.get("/readyz")[0] == 503, what="unready without Redis")
        self.assertEqual(rep.get("/healthz")[0], 200, "liveness does not depend on Redis")


class ShutdownDelayTest(ClusterTest):
    def test_unready_first_then_drain(self):
        r = self.redis(fsync="everysec")
        b = self.broker()
        rep = self.replica(r, b, instance="slow-exit", extra_env={"SHUTDOWN_DELAY_MS": "1500"})
        rep.signal(signal.SIGTERM)
        wait_for(lambda: rep.get("/readyz")[0] == 503, timeout=2, what="readyz to turn 503 at once")
        self.assertIn('"stopping":true', rep.get("/readyz")[1])
        self.assertEqual(rep.count()[0], 200, "still counting while load balancers take it out")
        t0 = time.monotonic()
        self.assertEqual(rep.p.wait(15), 0)
        self.assertGreater(time.monotonic() - t0, 0.5)
        self.procs.remove(rep)
        rep.log.close()
        self.assertIn("draining in 1500 ms", rep.output())
