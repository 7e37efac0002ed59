"""Presence: retained replicas/<id>/status, the Last Will, GET /replicas."""
import json
import signal

from harness import ClusterTest, load, retained, wait_for

FAST = {"PRESENCE_INTERVAL_MS": "200"}


def status(broker, rid):
    raw = retained(broker, "replicas/%s/status" % rid)
    return json.loads(raw) if raw else None


class PresenceTest(ClusterTest):
    def setUp(self):
        super().setUp()
        self.r = self.redis(fsync="everysec")
        self.b = self.broker()

    def test_online_on_connect_and_offline_on_clean_exit(self):
        rep = self.replica(self.r, self.b, instance="p1", extra_env=FAST)
        st = wait_for(lambda: status(self.b, "p1"), what="a retained status")
        self.assertEqual(st["state"], "online")
        self.assertEqual(st["id"], "p1")
        self.assertEqual(st["host"], "p1:%d" % rep.port)
        self.assertRegex(st["version"], r"^\d+\.\d+\.\d+$")
        self.assertGreater(st["started_at"], 1_600_000_000_000)
        for _ in range(3):
            rep.count()
        wait_for(lambda: status(self.b, "p1")["served"] == 3, what="the heartbeat to carry served")
        self.assertEqual(rep.stop(), 0)
        self.procs.remove(rep)
        st = status(self.b, "p1")
        self.assertEqual((st["state"], st["served"]), ("offline", 3), "a clean exit publishes offline itself")

    def test_last_will_marks_a_killed_replica_offline(self):
        a = self.replica(self.r, self.b, instance="alive", extra_env=FAST)
        dead = self.replica(self.r, self.b, instance="doomed", extra_env=FAST)
        wait_for(lambda: (status(self.b, "doomed") or {}).get("state") == "online", what="doomed online")
        dead.kill9()
        self.procs.remove(dead)
        wait_for(lambda: status(self.b, "doomed")["state"] == "offline", what="the Last Will")
        wait_for(lambda: any(x["id"] == "doomed" and x["state"] == "offline"
                             for x in json.loads(a.get("/replicas")[1])["replicas"]),
                 what="/replicas to show doomed offline")

    def test_replicas_lists_every_instance_with_its_load(self):
        reps = [self.replica(self.r, self.b, instance="n%d" % i, extra_env=FAST) for i in range(3)]
        for i, rep in enumerate(reps):
            self.assertEqual(load(rep.port, 10 * (i + 1))["statuses"], {200: 10 * (i + 1)})

        def listing():
            doc = json.loads(reps[0].get("/replicas")[1])
            return {x["id"]: x for x in doc["replicas"]}

        wait_for(lambda: [listing().get("n%d" % i, {}).get("served") for i in range(3)] == [10, 20, 30],
                 what="/replicas to show how the load spread")
        rows = listing()
        for i, rep in enumerate(reps):
            row = rows["n%d" % i]
            self.assertEqual(row["host"], "n%d:%d" % (i, rep.port))
            self.assertEqual(row["state"], "online")
            self.assertGreater(row["last_seen"], row["started_at"] - 1)
        self.assertEqual(sorted(rows), ["n0", "n1", "n2"], "sorted by id, nobody else")

    def test_bad_status_payloads_are_ignored(self):
        rep = self.replica(self.r, self.b, instance="judge", extra_env=FAST)
        bad = ["not json", "{}", '{"id":"x","host":"h"}', '{"id":"other","host":"h","state":"online"}',
               '{"id":"x","host":"h","state":"online","served":-4}', "[" * 5000]
        for payload in bad:
            self.b.publish(payload, topic="replicas/x/status")
        wait_for(lambda: rep.metric("tally_mqtt_status_dropped_total") == len(bad), what="drops counted")
        ids = [x["id"] for x in json.loads(rep.get("/replicas")[1])["replicas"]]
        self.assertEqual(ids, ["judge"])
        # A valid one is taken, and clearing the retained status forgets it.
        self.b.publish('{"id":"x","host":"x:1","state":"online","served":5}', topic="replicas/x/status")
        wait_for(lambda: "x" in [x["id"] for x in json.loads(rep.get("/replicas")[1])["replicas"]], what="x listed")
        self.b.publish_empty(topic="replicas/x/status", retain=True)
        wait_for(lambda: [x["id"] for x in json.loads(rep.get("/replicas")[1])["replicas"]] == ["judge"],
                 what="x forgotten")
        self.assertEqual(rep.get("/healthz")[0], 200)
