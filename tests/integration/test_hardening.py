"""Hardening: no forged MQTT message moves anything, readiness means "can count", HEAD on
every GET route, and the lifecycle (SIGHUP, drain, duplicate INSTANCE_ID, presence expiry)."""
import hashlib
import hmac
import json
import os
import signal
import socket
import subprocess
import threading
import time

from harness import (LOAD_SCALE, ClusterTest, Redis, Replica, SecureBroker, load, retained, wait_for, ROOT,
                     _read_response, read_response)

SECRET = "test-cluster-secret-0123456789"
SIGNED = {"CLUSTER_SECRET": SECRET}


def signature(topic, payload, secret=SECRET):
    """What a holder of the secret attaches (common/sign.h): HMAC-SHA256 of tally1 NUL topic NUL payload."""
    return hmac.new(secret.encode(), b"tally1\0" + topic.encode() + b"\0" + payload.encode(), hashlib.sha256).hexdigest()


def pub5(port, topic, payload, sig=None, retain=False, auth=()):
    """mosquitto_pub over MQTT v5, with a tally-sig user property when sig is given."""
    argv = ["mosquitto_pub", "-V", "mqttv5", "-h", "127.0.0.1", "-p", str(port), "-t", topic, "-m", payload,
            "-q", "1"] + list(auth)
    if sig is not None:
        argv += ["-D", "publish", "user-property", "tally-sig", sig]
    if retain:
        argv += ["-r"]
    subprocess.run(argv, check=True, timeout=10, capture_output=True)


class ForgeryTest(ClusterTest):
    """A cluster with CLUSTER_SECRET: forged totals and statuses move nothing, signed ones still do."""

    def setUp(self):
        super().setUp()
        self.r = self.redis(fsync="everysec")
        self.b = self.broker()
        self.a = self.replica(self.r, self.b, instance="a", extra_env=SIGNED)
        self.c = self.replica(self.r, self.b, instance="c", extra_env=SIGNED)

    def settle(self, rep, before):
        """Waits until @p rep has dropped @p before + 1 unsigned messages."""
        wait_for(lambda: rep.metric("tally_mqtt_unsigned_dropped_total") > before, what="the forgery to be dropped")

    def test_signed_totals_still_propagate_between_replicas(self):
        for _ in range(5):
            self.assertEqual(self.a.count()[0], 200)
        wait_for(lambda: self.c.total() == 5, what="c to learn a's signed total over MQTT")
        self.assertEqual(self.c.metric("tally_mqtt_unsigned_dropped_total"), 0)

    def test_forged_totals_leave_redis_and_the_caches_unmoved(self):
        self.assertEqual(self.a.count()[0], 200)
        wait_for(lambda: self.c.total() == 1, what="c to learn the total")
        forged = "3000000000"
        dropped = self.c.metric("tally_mqtt_unsigned_dropped_total")
        self.b.publish(forged)  # plain, v3.1.1
        pub5(self.b.port, "total_count", forged, sig="00" * 32)  # v5, wrong signature
        pub5(self.b.port, "total_count", forged, sig=signature("replicas/a/status", forged))  # other topic's
        pub5(self.b.port, "total_count", forged, sig=signature("total_count", forged, secret="another-secret-123456"))
        pub5(self.b.port, "total_count", forged, retain=True)  # retained, no signature
        wait_for(lambda: self.c.metric("tally_mqtt_unsigned_dropped_total") >= dropped + 5, what="5 drops")
        # A replica started now meets the forged retained total first.
        late = self.replica(self.r, self.b, instance="late", extra_env=SIGNED)
        self.assertGreaterEqual(late.metric("tally_mqtt_unsigned_dropped_total"), 1)
        for rep in (self.a, self.c, late):
            st, n, m = rep.count()
            self.assertEqual(st, 200)
            self.assertLess(m, 10, "a forged total reached the lift floor of %s" % rep.name)
            self.assertLess(rep.total(), 10)
        self.assertEqual(self.r.total(), 4, "Redis counts the 4 real requests, nothing forged")
        self.assertIn("without a valid signature", self.c.output())

    def test_a_holder_of_the_secret_can_publish(self):
        # The check is a signature, not "drop everything from outside": a correctly signed
        # total from any client is accepted (and raises the floor, as a real total would).
        pub5(self.b.port, "total_count", "40", sig=signature("total_count", "40"))
        wait_for(lambda: self.a.total() == 40 and self.c.total() == 40, what="the signed total to arrive")
        self.assertEqual(self.a.count()[2], 41)

    def test_forged_statuses_leave_replicas_unmoved(self):
        wait_for(lambda: len(json.loads(self.a.get("/replicas")[1])["replicas"]) == 2, what="two replicas")
        fake = json.dumps({"id": "ghost", "host": "ghost:1", "version": "1.0.0", "started_at": 1, "served": 9,
                           "state": "online"})
        dropped = self.a.metric("tally_mqtt_unsigned_dropped_total")
        self.b.publish(fake, topic="replicas/ghost/status")
        offline_c = json.dumps({"id": "c", "host": "c:1", "version": "1.0.0", "started_at": 1, "served": 0,
                                "state": "offline"})
        pub5(self.b.port, "replicas/c/status", offline_c, sig="ab" * 32, retain=True)
        self.b.publish_empty(topic="replicas/c/status")  # an unsigned "gone for good"
        wait_for(lambda: self.a.metric("tally_mqtt_unsigned_dropped_total") >= dropped + 3, what="3 drops")
        reps = {x["id"]: x for x in json.loads(self.a.get("/replicas")[1])["replicas"]}
        self.assertEqual(sorted(reps), ["a", "c"])
        self.assertEqual(reps["c"]["state"], "online")


class ForgedStatusOnSecureBrokerTest(ClusterTest):
    def test_the_replica_account_cannot_forge_a_status(self):
        b = self.add(SecureBroker(self.dir)).start()
        pw = SecureBroker.PASSWORDS
        r = self.add(Redis(self.dir, fsync="everysec", password=pw["REDIS_PASSWORD"])).start()
        secrets = b.conf_dir + "/secrets/"
        env = {"MQTT_USERNAME": "tally-replica", "MQTT_PASSWORD_FILE": secrets + "mqtt-replica.txt",
               "REDIS_PASSWORD_FILE": secrets + "redis.txt", "CLUSTER_SECRET_FILE": secrets + "cluster-secret.txt"}
        rep = self.replica(r, b, instance="real", extra_env=env)
        self.assertEqual(rep.count()[0], 200)
        # Anyone holding the replica account's password may write replicas/<its id>/status
        # and total_count: the ACL allows it, the signature does not.
        auth = ["-u", "tally-replica", "-P", pw["MQTT_REPLICA_PASSWORD"], "-i", "intruder"]
        fake = json.dumps({"id": "intruder", "host": "x:1", "version": "1.0.0", "started_at": 1, "served": 1,
                           "state": "online"})
        pub5(b.port, "replicas/intruder/status", fake, retain=True, auth=auth)
        pub5(b.port, "total_count", "999999", retain=True, auth=auth)
        wait_for(lambda: rep.metric("tally_mqtt_unsigned_dropped_total") >= 2, what="both drops")
        self.assertEqual([x["id"] for x in json.loads(rep.get("/replicas")[1])["replicas"]], ["real"])
        self.assertEqual(rep.count()[2], 2)
        self.assertEqual(r.total(), 2)


class SecretSettingTest(ClusterTest):
    def test_a_short_secret_is_a_config_error(self):
        p = subprocess.run([os.environ["TALLY_REPLICA"]], env=dict(os.environ, CLUSTER_SECRET="short"),
                           capture_output=True, text=True, timeout=10)
        self.assertEqual(p.returncode, 2)
        self.assertEqual(len(p.stderr.strip().splitlines()), 1)
        self.assertIn("CLUSTER_SECRET", p.stderr)

    def test_no_secret_is_a_warning(self):
        r = self.redis(fsync="everysec")
        b = self.broker()
        rep = self.replica(r, b, instance="plain")
        self.assertIn("CLUSTER_SECRET is not set", rep.output())


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
        self.assertEqual(load(rep.port, n)["statuses"], {200: n})

    def test_a_redis_outage_makes_it_unready_but_alive(self):
        r = self.redis(fsync="everysec")
        b = self.broker()
        rep = self.replica(r, b, instance="waiting")
        r.kill9()
        wait_for(lambda: rep.get("/readyz")[0] == 503, what="unready without Redis")
        self.assertEqual(rep.get("/healthz")[0], 200, "liveness does not depend on Redis")


class HeadTest(ClusterTest):
    def setUp(self):
        super().setUp()
        self.r = self.redis(fsync="everysec")
        self.b = self.broker()
        self.rep = self.replica(self.r, self.b, instance="h")

    def raw(self, data):
        with socket.create_connection(("127.0.0.1", self.rep.port), timeout=5) as s:
            s.sendall(data)
            s.shutdown(socket.SHUT_WR)
            out = b""
            while True:
                chunk = s.recv(65536)
                if not chunk:
                    return out
                out += chunk

    def test_head_on_every_get_route_has_the_get_headers_and_no_body(self):
        self.assertEqual(self.rep.count()[0], 200)
        for path in ("/total", "/healthz", "/readyz", "/replicas", "/metrics", "/nope"):
            gst, gbody, gh = self.rep.get(path)
            hst, hbody, hh = self.rep.get(path, method="HEAD")
            self.assertEqual((hst, hbody), (gst, ""), path)
            self.assertEqual(hh["content-type"], gh["content-type"], path)
            if path not in ("/metrics", "/replicas"):  # their bodies change between two requests
                self.assertEqual(hh["content-length"], gh["content-length"], path)
        hst, hbody, hh = self.rep.get("/", method="HEAD", headers={"Accept": "application/json"})
        self.assertEqual((hst, hbody, hh["content-type"], hh["vary"]), (200, "", "application/json", "Accept"))

    def test_head_never_counts_and_keeps_the_connection_usable(self):
        out = self.raw(b"HEAD / HTTP/1.1\r\nHost: t\r\n\r\n" * 3 + b"GET / HTTP/1.1\r\nHost: t\r\nConnection: close\r\n\r\n")
        self.assertEqual(out.count(b"HTTP/1.1 200 OK"), 4)
        self.assertIn(b"This is request 1 to this instance and request 1 to the cluster.", out)
        self.assertEqual(self.r.total(), 1)

    def test_get_root_varies_on_accept(self):
        self.assertEqual(self.rep.get("/")[2]["vary"], "Accept")


def slurp(path):
    with open(path) as f:
        return f.read()


class LifecycleTest(ClusterTest):
    def setUp(self):
        super().setUp()
        self.r = self.redis(fsync="everysec")
        self.b = self.broker()

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


class PresenceExpiryTest(ClusterTest):
    def setUp(self):
        super().setUp()
        self.r = self.redis(fsync="everysec")
        self.b = self.broker()

    def ids(self, rep):
        return sorted(x["id"] for x in json.loads(rep.get("/replicas")[1])["replicas"])

    def start_pair(self, expire):
        env = dict(SIGNED, PRESENCE_EXPIRE_S=str(expire), PRESENCE_INTERVAL_MS="200")
        keep = self.replica(self.r, self.b, instance="keep", extra_env=env)
        gone = self.replica(self.r, self.b, instance="gone", extra_env=env)
        wait_for(lambda: self.ids(keep) == ["gone", "keep"], what="both replicas listed")
        self.assertEqual(gone.stop(), 0)
        self.procs.remove(gone)
        wait_for(lambda: '"state":"offline"' in keep.get("/replicas")[1], what="gone shown offline")
        return keep

    def test_the_publisher_clears_a_status_offline_for_presence_expire_s(self):
        pub = self.publisher(self.r, self.b, "p1", extra_env=dict(SIGNED, PRESENCE_EXPIRE_S="3"))
        keep = self.start_pair(expire=3600)  # the replica alone would keep it for an hour
        wait_for(lambda: retained(self.b, "replicas/gone/status") is None, what="the retained status cleared")
        wait_for(lambda: self.ids(keep) == ["keep"], what="keep to forget gone")
        self.assertEqual(pub.metric("tally_publisher_statuses_cleared_total"), 1)
        self.assertIsNotNone(retained(self.b, "replicas/keep/status"), "an online replica is never cleared")

    def test_a_replica_forgets_offline_entries_by_itself(self):
        keep = self.start_pair(expire=3)
        wait_for(lambda: self.ids(keep) == ["keep"], what="keep to forget gone after 3 s")

    def test_forget_replica_by_hand(self):
        keep = self.start_pair(expire=3600)
        p = subprocess.run([os.environ["TALLY_PUBLISHER"]], capture_output=True, text=True, timeout=20,
                           env=dict(os.environ, FORGET_REPLICA="gone", MQTT_URL=self.b.url(), CLUSTER_SECRET=SECRET))
        self.assertEqual(p.returncode, 0, p.stderr)
        wait_for(lambda: self.ids(keep) == ["keep"], what="keep to forget gone")
        self.assertIsNone(retained(self.b, "replicas/gone/status"))


class SecretsAndTlsTest(ClusterTest):
    def setUp(self):
        super().setUp()
        self.b = self.add(SecureBroker(self.dir)).start()

    def test_secret_files_are_private(self):
        d = self.b.conf_dir
        self.assertEqual(os.stat(os.path.join(d, "secrets")).st_mode & 0o777, 0o700)
        private = [os.path.join(d, "secrets", n) for n in os.listdir(os.path.join(d, "secrets"))]
        private += [os.path.join(d, "tls", "server.key"), os.path.join(d, "tls", "ca.key"),
                    os.path.join(d, "redis-auth.conf"), os.path.join(d, "passwd-services"),
                    os.path.join(d, "watcher", "mosquitto_sub"), os.path.join(d, "watcher-tls", "mosquitto_sub")]
        self.assertIn(os.path.join(d, "secrets", "cluster-secret.txt"), private)
        for path in private:
            self.assertEqual(os.stat(path).st_mode & 0o777, 0o600, path)
        with open(os.path.join(d, "secrets", "cluster-secret.txt")) as f:
            secret = f.read()
        self.assertGreaterEqual(len(secret), 32)
        # A second run keeps every secret and the CA; --owner gives the files to a user.
        with open(os.path.join(d, "tls", "ca.crt")) as f:
            ca = f.read()
        subprocess.run([os.path.join(ROOT, "broker-config", "make-secrets.sh"), d, "--owner", str(os.getuid())],
                       check=True, capture_output=True)
        with open(os.path.join(d, "secrets", "cluster-secret.txt")) as f:
            self.assertEqual(f.read(), secret)
        with open(os.path.join(d, "tls", "ca.crt")) as f:
            self.assertEqual(f.read(), ca)

    def test_half_a_certificate_is_refused_with_one_line(self):
        out = os.path.join(self.dir, "own-cert")
        p = subprocess.run([os.path.join(ROOT, "broker-config", "make-secrets.sh"), out], capture_output=True,
                           text=True, env=dict(os.environ, TLS_CERT_FILE=os.path.join(self.b.conf_dir, "tls",
                                                                                      "server.crt")))
        self.assertEqual(p.returncode, 2)
        self.assertEqual(len(p.stderr.strip().splitlines()), 1, p.stderr)
        self.assertIn("TLS_KEY_FILE", p.stderr)

    def test_watchers_read_over_tls_with_the_local_ca(self):
        pw = SecureBroker.PASSWORDS
        self.assertEqual(self.b.pub("total_count", "55", user="tally-publisher", password=pw["MQTT_PUBLISHER_PASSWORD"],
                                    retain=True), 0)

        def sub(options_dir, port, host="localhost"):
            return subprocess.run(["mosquitto_sub", "-h", host, "-p", str(port), "-t", "total_count", "-C", "1",
                                   "-W", "3"], capture_output=True, text=True, timeout=15,
                                  env=dict(os.environ, XDG_CONFIG_HOME=os.path.join(self.b.conf_dir, options_dir)))

        p = sub("watcher-tls", self.b.watch_tls_port)
        self.assertEqual((p.returncode, p.stdout.strip()), (0, "55"), p.stderr)
        p = sub("watcher", self.b.watch_port)  # the password comes from the options file, not the command line
        self.assertEqual((p.returncode, p.stdout.strip()), (0, "55"), p.stderr)
        self.assertNotEqual(sub("watcher", self.b.watch_tls_port).returncode, 0, "no clear text on the TLS port")
        import ssl
        ctx = ssl.create_default_context(cafile=os.path.join(self.b.conf_dir, "tls", "ca.crt"))
        with socket.create_connection(("127.0.0.1", self.b.wss_port), timeout=5) as raw:
            with ctx.wrap_socket(raw, server_hostname="localhost") as s:
                s.sendall(b"GET /mqtt HTTP/1.1\r\nHost: x\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n"
                          b"Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 13\r\n"
                          b"Sec-WebSocket-Protocol: mqtt\r\n\r\n")
                self.assertTrue(s.recv(200).startswith(b"HTTP/1.1 101"), "WebSockets over TLS")


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


class PublishRuleTest(ClusterTest):
    def test_a_total_below_one_already_known_is_not_published(self):
        r = self.redis(fsync="everysec")
        b = self.broker()
        # One publish per second at most: the second total waits for the trailing timer.
        rep = self.replica(r, b, instance="quiet", extra_env=dict(
            SIGNED, PUBLISH_EAGER_RPS="0", PUBLISH_INTERVAL_US="1000000", PRESENCE_INTERVAL_MS="3600000"))
        w = self.watcher(b)
        self.assertEqual(rep.count()[2], 1)
        wait_for(lambda: 1 in w.totals(), what="the first total published at once")
        self.assertEqual(rep.count()[2], 2)  # held back by the interval
        pub5(b.port, "total_count", "100", sig=signature("total_count", "100"))  # a peer's higher total
        wait_for(lambda: rep.total() == 100, what="the peer's total in the cache")
        published = rep.metric("tally_mqtt_messages_published_total")
        time.sleep(1.5)  # past the trailing timer: the interval itself is what is tested
        self.assertEqual(w.totals(), [1, 100], "2 would have shown the watcher a step back")
        self.assertEqual(rep.metric("tally_mqtt_messages_published_total") - published, 0,
                         "nothing sent for a total every peer already passed")
