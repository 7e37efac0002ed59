"""The cluster epoch (tally:epoch): after a deliberate restore of an older Redis the operator
raises it, and nothing learned before (cached totals, signed totals recorded off the broker,
the retained total) lifts the restored total back."""
import subprocess
import time

from kit.procs import retained, wait_for
from kit.signed import SIGNED, SignedPairTest, pub5, signature


class EpochTest(SignedPairTest):
    def setUp(self):
        super().setUp()
        self.p = self.publisher(self.r, self.b, "p", extra_env=SIGNED)

    def restore(self, total):
        """What docs/operations.md says to do after restoring an older AOF: a new epoch."""
        epoch = int(time.time())
        self.r.command("SET", "total_count", str(total))
        self.r.command("SET", "tally:epoch", str(epoch))
        return epoch

    def test_a_restore_is_not_undone_by_what_was_learned_before_it(self):
        for _ in range(10):
            self.assertEqual(self.a.count()[0], 200)
        wait_for(lambda: self.c.total() == 10, what="c to learn the total")
        wait_for(lambda: retained(self.b, "total_count") == "10", what="the publisher to retain 10")
        epoch = self.restore(4)  # the backup held 4
        # Each replica's cache (10) is of the old epoch: its first batch is not lifted by it.
        self.assertEqual(self.a.count()[2], 5)
        self.assertEqual(self.c.count()[2], 6)
        self.assertEqual(self.r.total(), 6)
        for rep in (self.a, self.c):
            self.assertEqual(rep.metric("tally_cluster_epoch"), epoch)
            self.assertIn("cluster epoch %d" % epoch, rep.output())
        # A signed total recorded before the restore, replayed retained: dropped everywhere.
        dropped = self.a.metric("tally_mqtt_stale_epoch_dropped_total")
        pub5(self.b.port, "total_count", "10", sig=signature("total_count", "10"), retain=True)
        wait_for(lambda: self.a.metric("tally_mqtt_stale_epoch_dropped_total") > dropped, what="the replay dropped")
        self.assertEqual(self.a.count()[2], 7)
        self.assertEqual(self.r.total(), 7, "nothing of the old epoch lifted Redis")
        # The publisher retains the restored total in the new epoch, over the replayed one;
        # totals of the new epoch still travel between replicas.
        wait_for(lambda: retained(self.b, "total_count") == "7", what="the publisher to retain 7 again")
        self.assertEqual(self.p.metric("tally_cluster_epoch"), epoch)
        wait_for(lambda: self.c.total() == 7, what="c to learn a's total of the new epoch")
        self.assertEqual(self.c.metric("tally_mqtt_unsigned_dropped_total"), 0)

    def test_a_forged_epoch_property_is_not_authentic(self):
        # The epoch is inside the signature: moving a signed total to another epoch breaks it.
        dropped = self.a.metric("tally_mqtt_unsigned_dropped_total")
        argv_sig = signature("total_count", "50")  # genuine, for epoch 0
        subprocess.run(["mosquitto_pub", "-V", "mqttv5", "-h", "127.0.0.1", "-p", str(self.b.port), "-t", "total_count",
                        "-m", "50", "-D", "publish", "user-property", "tally-sig", argv_sig,
                        "-D", "publish", "user-property", "tally-epoch", str(int(time.time()))],
                       check=True, timeout=10, capture_output=True)
        wait_for(lambda: self.a.metric("tally_mqtt_unsigned_dropped_total") > dropped, what="the forgery dropped")
        self.assertEqual(self.a.metric("tally_cluster_epoch"), 0)
        self.assertEqual(self.a.count()[2], 1)
