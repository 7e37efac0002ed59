"""Signed MQTT messages as a holder of CLUSTER_SECRET sends them (common/sign.h), for the
tests that forge, replay or sign totals and statuses."""
import hashlib
import hmac
import subprocess

from kit.testcase import ClusterTest

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


class SignedPairTest(ClusterTest):
    """Base class: replicas a and c on one Redis and broker, both holding the secret."""

    servers = True

    def setUp(self):
        super().setUp()
        self.a = self.replica(self.r, self.b, instance="a", extra_env=SIGNED)
        self.c = self.replica(self.r, self.b, instance="c", extra_env=SIGNED)
