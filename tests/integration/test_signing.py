"""Signed messages: no forged MQTT total or status moves Redis, a cache or the replicas list;
CLUSTER_SECRET's settings."""
import json
import os
import subprocess

from kit.procs import wait_for, Redis, SecureBroker
from kit.signed import SIGNED, SignedPairTest, pub5, signature
from kit.testcase import ClusterTest


class ForgeryTest(SignedPairTest):
    """A cluster with CLUSTER_SECRET: forged totals and statuses move nothing, signed ones still do."""

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
