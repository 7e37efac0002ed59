"""The production configuration (broker-config/, make-secrets.sh): accounts, ACL, listeners,
private secret files, TLS for watchers, and replicas and publishers running on it."""
import json
import os
import re
import socket
import subprocess
import tempfile

from kit.procs import BROKER_PLUGIN, ROOT, wait_for, Redis, SecureBroker
from kit.testcase import ClusterTest

PW = SecureBroker.PASSWORDS


class SecurityTest(ClusterTest):
    def setUp(self):
        super().setUp()
        self.b = self.add(SecureBroker(self.dir)).start()

    def test_anonymous_and_unknown_users_are_refused(self):
        for port in (self.b.port, self.b.watch_port):
            self.assertNotEqual(self.b.pub("total_count", "1", port=port), 0, "anonymous on %d" % port)
            self.assertNotEqual(self.b.pub("total_count", "1", port=port, user="mallory", password="x"), 0)
            self.assertNotEqual(self.b.pub("total_count", "1", port=port, user="tally-replica", password="wrong"), 0)
        rc, _ = self.b.watch("total_count", timeout=1, user=None)
        self.assertNotEqual(rc, 0, "anonymous watchers are refused too")

    def test_watcher_reads_only_on_the_watcher_listeners(self):
        self.assertEqual(self.b.pub("total_count", "77", user="tally-publisher", password=PW["MQTT_PUBLISHER_PASSWORD"],
                                    retain=True), 0)
        rc, lines = self.b.watch("total_count")
        self.assertEqual((rc, lines), (0, ["77"]), "the watcher reads the retained total")
        # On the services listener the watcher account does not exist.
        self.assertNotEqual(self.b.pub("total_count", "1", user="watcher", password=PW["MQTT_WATCHER_PASSWORD"]), 0)
        # On its own listener its publishes go nowhere (QoS 1: the broker drops them).
        self.b.pub("total_count", "99999", port=self.b.watch_port, user="watcher",
                   password=PW["MQTT_WATCHER_PASSWORD"], retain=True)
        self.b.pub("replicas/w/status", '{"id":"w","host":"h","state":"online"}', port=self.b.watch_port,
                   user="watcher", password=PW["MQTT_WATCHER_PASSWORD"], client_id="w", retain=True)
        self.assertEqual(self.b.watch("total_count")[1], ["77"])
        rc, lines = self.b.watch("replicas/w/status", timeout=1)
        self.assertEqual(lines, [], "the watcher wrote no status")

    def test_a_replica_account_writes_only_its_own_status(self):
        ok = self.b.pub("replicas/r1/status", '{"id":"r1","host":"r1:1","state":"online"}', user="tally-replica",
                        password=PW["MQTT_REPLICA_PASSWORD"], client_id="r1", retain=True)
        self.assertEqual(ok, 0)
        self.b.pub("replicas/r2/status", '{"id":"r2","host":"evil","state":"online"}', user="tally-replica",
                   password=PW["MQTT_REPLICA_PASSWORD"], client_id="r1", retain=True)
        self.assertEqual(len(self.b.watch("replicas/r1/status")[1]), 1)
        self.assertEqual(self.b.watch("replicas/r2/status", timeout=1)[1], [], "r1 cannot write r2's status")

    def test_websocket_listener_speaks_mqtt_over_websockets(self):
        with socket.create_connection(("127.0.0.1", self.b.ws_port), timeout=5) as s:
            s.sendall(b"GET /mqtt HTTP/1.1\r\nHost: x\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n"
                      b"Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 13\r\n"
                      b"Sec-WebSocket-Protocol: mqtt\r\n\r\n")
            head = s.recv(200)
        self.assertTrue(head.startswith(b"HTTP/1.1 101"), head)

    def test_replicas_and_publishers_run_on_the_secured_broker(self):
        r = self.add(Redis(self.dir, fsync="everysec", password=PW["REDIS_PASSWORD"])).start()
        secrets = self.b.conf_dir + "/secrets/"
        env = {"MQTT_USERNAME": "tally-replica", "MQTT_PASSWORD_FILE": secrets + "mqtt-replica.txt",
               "REDIS_PASSWORD_FILE": secrets + "redis.txt", "PRESENCE_INTERVAL_MS": "200"}
        a = self.replica(r, self.b, instance="sa", extra_env=env)
        c = self.replica(r, self.b, instance="sc", extra_env=env)
        self.publisher(r, self.b, "sp", extra_env={"MQTT_USERNAME": "tally-publisher",
                                                   "MQTT_PASSWORD_FILE": secrets + "mqtt-publisher.txt",
                                                   "REDIS_PASSWORD_FILE": secrets + "redis.txt"})
        for _ in range(5):
            self.assertEqual(a.count()[0], 200)
        wait_for(lambda: c.total() == 5, what="the other replica to learn the total over MQTT")
        wait_for(lambda: self.b.watch("total_count")[1] == ["5"], what="the watcher to read the retained total")
        wait_for(lambda: sorted(x["id"] for x in json.loads(a.get("/replicas")[1])["replicas"]) == ["sa", "sc"],
                 what="presence under the ACL")
        rc, lines = self.b.watch("replicas/+/status", count=2)
        self.assertEqual(sorted(json.loads(x)["id"] for x in lines), ["sa", "sc"])

    def test_programs_count_with_their_own_redis_users(self):
        r = self.add(Redis(self.dir, fsync="everysec", password=PW["REDIS_PASSWORD"],
                           acl=os.path.join(self.b.conf_dir, "redis-auth.conf"))).start()
        secrets = self.b.conf_dir + "/secrets/"
        mqtt = {"MQTT_USERNAME": "tally-replica", "MQTT_PASSWORD": PW["MQTT_REPLICA_PASSWORD"]}
        a = self.replica(r, self.b, instance="ua", extra_env=dict(
            mqtt, REDIS_USERNAME="tally-replica", REDIS_PASSWORD_FILE=secrets + "redis-replica.txt"))
        self.publisher(r, self.b, "up", extra_env={
            "MQTT_USERNAME": "tally-publisher", "MQTT_PASSWORD": PW["MQTT_PUBLISHER_PASSWORD"],
            "REDIS_USERNAME": "tally-publisher", "REDIS_PASSWORD_FILE": secrets + "redis-publisher.txt"})
        for _ in range(4):
            self.assertEqual(a.count()[0], 200)
        # A keyed request: its answer is stored (tally:idem:*) and read back under the user.
        for _ in range(2):
            self.assertEqual(a.get("/", {"Idempotency-Key": "acl-key"})[0], 200)
        self.assertEqual(r.total(), 5)
        wait_for(lambda: self.b.watch("total_count")[1] == ["5"], what="the publisher (its own user) to publish")
        self.assertNotIn("REDIS_PASSWORD without REDIS_USERNAME", a.output())
        # The default user's single password still works, with a warning.
        old = self.replica(r, self.b, instance="uo", extra_env=dict(mqtt, REDIS_PASSWORD=PW["REDIS_PASSWORD"]))
        self.assertEqual(old.count()[0], 200)
        self.assertEqual(old.output().count("REDIS_PASSWORD without REDIS_USERNAME authenticates as Redis's default user"), 1)
        # A wrong user is named in the log, and the replica stays unready.
        bad = self.replica(r, self.b, instance="ub", ready=False, extra_env=dict(
            mqtt, REDIS_USERNAME="tally-publisher", REDIS_PASSWORD_FILE=secrets + "redis-replica.txt"))
        wait_for(lambda: "check REDIS_USERNAME and REDIS_PASSWORD" in bad.output(), what="a clear log line")
        self.assertEqual(bad.get("/readyz")[0], 503)

    def test_wrong_mqtt_password_keeps_a_replica_unready(self):
        r = self.add(Redis(self.dir, fsync="everysec")).start()
        rep = self.replica(r, self.b, instance="bad", ready=False,
                           extra_env={"MQTT_USERNAME": "tally-replica", "MQTT_PASSWORD": "wrong"})
        wait_for(lambda: "cannot connect" in rep.output() or "refused" in rep.output(), what="a clear log line")
        self.assertEqual(rep.get("/readyz")[0], 503)
        self.assertEqual(rep.count()[0], 200, "counting does not need the broker")

    def hold(self, port, client_id, user, password):
        """A mosquitto_sub that stays connected as client_id (until the broker drops it)."""
        p = subprocess.Popen(["mosquitto_sub", "-h", "127.0.0.1", "-p", str(port), "-i", client_id, "-t", "total_count",
                              "-u", user, "-P", password], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        self.addCleanup(lambda: (p.kill(), p.wait()))
        return p

    def test_a_watcher_cannot_take_over_a_service_client_id(self):
        r = self.add(Redis(self.dir, fsync="everysec")).start()
        rep = self.replica(r, self.b, instance="tk", extra_env={
            "MQTT_USERNAME": "tally-replica", "MQTT_PASSWORD": PW["MQTT_REPLICA_PASSWORD"]})
        watcher = ("watcher", PW["MQTT_WATCHER_PASSWORD"])
        for port in (self.b.watch_port, self.b.watch_tls_port):
            argv = ["mosquitto_sub", "-h", "127.0.0.1", "-p", str(port), "-i", "tk", "-t", "total_count",
                    "-u", watcher[0], "-P", watcher[1], "-C", "1", "-W", "2"]
            if port == self.b.watch_tls_port:
                argv += ["--cafile", os.path.join(self.b.conf_dir, "tls", "ca.crt")]
            p = subprocess.run(argv, capture_output=True, text=True, timeout=15)
            self.assertIn("not authori", p.stderr, "a watcher with the replica's client id on %d" % port)
        self.assertEqual(rep.metric("tally_mqtt_connected"), 1, "the replica kept its session")
        self.assertEqual(self.b.output().count("refused client id tk "), 2)
        self.assertNotIn("Client tk closed its connection", self.b.output())
        self.assertNotIn("Client tk disconnected", self.b.output())
        # A watcher that takes a service's id first (a broker just restarted) holds it only
        # until the service connects; after that the id is refused to watchers.
        self.hold(self.b.watch_port, "early", *watcher)
        wait_for(lambda: "as early (" in self.b.output(), what="the watcher to connect as 'early'")
        self.assertEqual(self.b.pub("total_count", "1", user="tally-replica", password=PW["MQTT_REPLICA_PASSWORD"],
                                    client_id="early"), 0, "the service takes its id back")
        self.assertEqual(self.b.output().count("as early ("), 2, "the service connected as 'early'")
        again = self.hold(self.b.watch_port, "early", *watcher)
        wait_for(lambda: again.poll() is not None, what="the second watcher to be refused")
        self.assertNotEqual(again.returncode, 0)
        self.assertIn("refused client id early ", self.b.output())
        self.assertIn("Client early already connected, closing old connection", self.b.output(),
                      "the squatter lost the id to the service")
        self.assertEqual(self.b.watch("total_count", timeout=2)[0], 27, "watchers with their own ids still connect")

    def test_cleartext_watcher_listeners_bind_loopback_unless_told(self):
        def listeners(*args):
            d = tempfile.mkdtemp(dir=self.dir)
            subprocess.run([os.path.join(ROOT, "broker-config", "make-secrets.sh"), d, "--bind", "0.0.0.0",
                            "--plugin", BROKER_PLUGIN] + list(args), check=True, capture_output=True,
                           env=dict(os.environ, **PW))
            with open(os.path.join(d, "mosquitto.conf")) as f:
                conf = f.read()
            return dict(re.findall(r"^listener (\d+) (\S+)$", conf, re.M)), conf
        binds, conf = listeners()
        self.assertEqual(binds, {"1883": "0.0.0.0", "1884": "127.0.0.1", "9001": "127.0.0.1",
                                 "8884": "0.0.0.0", "9443": "0.0.0.0"})
        self.assertEqual(conf.count("plugin %s" % BROKER_PLUGIN), 5, "the client-id plugin on every listener")
        self.assertEqual(re.findall(r"^max_connections (\d+)$", conf, re.M), ["1024", "1000", "1000", "1000", "1000"])
        self.assertIn("max_queued_messages 256\n", conf)
        binds, _ = listeners("--watch-bind", "0.0.0.0", "--watch-max-connections", "50")
        self.assertEqual(set(binds.values()), {"0.0.0.0"})
        d = tempfile.mkdtemp(dir=self.dir)
        p = subprocess.run([os.path.join(ROOT, "broker-config", "make-secrets.sh"), d, "--watch-max-connections", "x"],
                           capture_output=True, text=True, env=dict(os.environ, **PW))
        self.assertEqual(p.returncode, 2)
        self.assertIn("--watch-max-connections", p.stderr)


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
