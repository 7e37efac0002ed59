"""Presence: retained replicas/<id>/status, the Last Will, GET /replicas, and how long an
offline entry is kept (PRESENCE_EXPIRE_S, forget by hand)."""
import json
import os
import subprocess

from kit.load import counted
from kit.procs import retained, wait_for
from kit.signed import SECRET, SIGNED
from kit.testcase import ClusterTest

FAST = {"PRESENCE_INTERVAL_MS": "200"}


def status(broker, rid):
    raw = retained(broker, "replicas/%s/status" % rid)
    return json.loads(raw) if raw else None


class PresenceTest(ClusterTest):
    servers = True

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
            self.assertEqual(counted(rep.port, 10 * (i + 1))["statuses"], {200: 10 * (i + 1)})

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


class PresenceExpiryTest(ClusterTest):
    servers = True

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
