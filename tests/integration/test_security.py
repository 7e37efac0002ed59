"""The production broker configuration (broker-config/): accounts, ACL, listeners, and
replicas and publishers running on it with their secrets."""
import json
import socket

from harness import ClusterTest, Redis, SecureBroker, wait_for

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

    def test_wrong_mqtt_password_keeps_a_replica_unready(self):
        r = self.add(Redis(self.dir, fsync="everysec")).start()
        rep = self.replica(r, self.b, instance="bad", ready=False,
                           extra_env={"MQTT_USERNAME": "tally-replica", "MQTT_PASSWORD": "wrong"})
        wait_for(lambda: "cannot connect" in rep.output() or "refused" in rep.output(), what="a clear log line")
        self.assertEqual(rep.get("/readyz")[0], 503)
        self.assertEqual(rep.count()[0], 200, "counting does not need the broker")
