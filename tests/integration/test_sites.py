"""Sites (docs/sites.md): the brokers of two sites bridged as make-secrets.sh --site renders
them. Only sites/<site>/total crosses, retained and with its signature; nothing comes back
(no loop); a site's bridge account may publish its own site's topics and nothing else; a cut
heals by itself; the bridge can run over TLS."""
import os
import socket
import subprocess

from kit.procs import SecureBroker, free_port, wait_for
from kit.signed import pub5, signature
from kit.testcase import ClusterTest

PUBLISHER = ["-u", "tally-publisher", "-P", "publisher-pw"]


def site_broker(test, site, bridge_port, bridges=(), tls=False, cafile=None):
    args = ["--site", site, "--bridge-port", str(bridge_port)]
    for other, port in bridges:
        args += ["--bridge", "%s=127.0.0.1:%d" % (other, port)]
    if tls:
        args += ["--bridge-tls"]
    if cafile:
        args += ["--bridge-cafile", cafile]
    b = test.add(SecureBroker(test.dir, extra_args=args))
    b.bridge_port = bridge_port
    return b


def started(b):
    b.start()
    wait_for(lambda: socket.create_connection(("127.0.0.1", b.bridge_port), timeout=1).close() or True,
             what="the bridge listener")
    return b


def retained_v5(broker, topic, timeout=3):
    """(retain flag, payload, user properties) of the retained message on `topic`, read by a
    watcher, or None."""
    p = subprocess.run(["mosquitto_sub", "-V", "mqttv5", "-h", "127.0.0.1", "-p", str(broker.watch_port), "-t", topic,
                        "-C", "1", "-W", str(timeout), "--retained-only", "-F", "%r|%p|%P"] + broker.auth,
                       capture_output=True, text=True)
    out = p.stdout.strip()
    return tuple(out.split("|", 2)) if p.returncode == 0 and out else None


def publish_site(broker, site, value):
    """What a site's leading publisher sends: its component, signed, retained."""
    topic = "sites/%s/total" % site
    pub5(broker.port, topic, str(value), sig=signature(topic, str(value)), retain=True, auth=PUBLISHER)


class Subscriber:
    """mosquitto_sub -v on a broker's watcher port, counting what it gets per topic."""

    def __init__(self, test, broker, topic):
        self.lines = []
        self.p = subprocess.Popen(["mosquitto_sub", "-h", "127.0.0.1", "-p", str(broker.watch_port), "-t", topic, "-v"]
                                  + broker.auth, stdout=subprocess.PIPE, text=True)
        test.addCleanup(self.close)
        os.set_blocking(self.p.stdout.fileno(), False)

    def read(self):
        while True:
            line = self.p.stdout.readline()
            if not line:
                return self.lines
            self.lines.append(line.strip())

    def close(self):
        self.p.terminate()
        self.p.wait()
        self.p.stdout.close()


class BridgeTest(ClusterTest):
    def setUp(self):
        super().setUp()
        pa, pb = free_port(), free_port()
        self.a = site_broker(self, "a", pa, [("b", pb)])
        self.b = site_broker(self, "b", pb, [("a", pa)])
        started(self.a)
        started(self.b)

    def test_a_site_total_crosses_retained_with_its_signature(self):
        publish_site(self.a, "a", 41)
        got = wait_for(lambda: retained_v5(self.b, "sites/a/total"), timeout=15, what="sites/a/total on site b")
        self.assertEqual(got, ("1", "41", "tally-sig:" + signature("sites/a/total", "41")))
        publish_site(self.b, "b", 7)
        wait_for(lambda: retained_v5(self.a, "sites/b/total") == ("1", "7", "tally-sig:" + signature("sites/b/total", "7")),
                 timeout=15, what="sites/b/total on site a")

    def test_only_the_sites_topics_cross_and_nothing_comes_back(self):
        here = Subscriber(self, self.a, "#")
        subprocess.run(["mosquitto_pub", "-h", "127.0.0.1", "-p", str(self.a.port), "-t", "total_count", "-m", "99",
                        "-r", "-q", "1"] + PUBLISHER, check=True, timeout=10)
        publish_site(self.a, "a", 42)
        wait_for(lambda: retained_v5(self.b, "sites/a/total"), timeout=15, what="sites/a/total on site b")
        # A mark from b crossing to a: once it is here, an echo of a's message would be too.
        publish_site(self.b, "b", 1)
        wait_for(lambda: "sites/b/total 1" in here.read(), timeout=15, what="b's mark on site a")
        self.assertEqual(here.read().count("sites/a/total 42"), 1, "a's own total came back over a bridge")
        self.assertIsNone(retained_v5(self.b, "total_count", timeout=1), "total_count crossed to site b")

    def test_a_bridge_account_publishes_only_its_own_site(self):
        as_a = ["-u", "tally-bridge-a", "-P", "bridge-pw"]
        for topic in ("sites/b/total", "total_count", "replicas/x/status"):
            pub5(self.b.bridge_port, topic, "666", sig=signature(topic, "666"), retain=True, auth=as_a)
        pub5(self.b.bridge_port, "sites/a/total", "5", sig=signature("sites/a/total", "5"), retain=True, auth=as_a)
        wait_for(lambda: retained_v5(self.b, "sites/a/total"), what="the bridge account's own site's total")
        for topic in ("sites/b/total", "total_count", "replicas/x/status"):
            self.assertIsNone(retained_v5(self.b, topic, timeout=1), "tally-bridge-a wrote %s" % topic)
        p = subprocess.run(["mosquitto_pub", "-h", "127.0.0.1", "-p", str(self.b.bridge_port), "-t", "sites/a/total",
                            "-m", "1", "-u", "tally-bridge-a", "-P", "wrong"], capture_output=True, timeout=10)
        self.assertNotEqual(p.returncode, 0, "a wrong bridge password is refused")

    def test_a_cut_between_sites_heals_by_itself(self):
        publish_site(self.a, "a", 10)
        wait_for(lambda: retained_v5(self.b, "sites/a/total"), timeout=15, what="the first total on b")
        self.b.stop()
        publish_site(self.a, "a", 11)  # while b is away
        started(self.b)  # the same files: a's bridge reconnects and hands over the newest total
        wait_for(lambda: (retained_v5(self.b, "sites/a/total") or ("",) * 3)[1] == "11", timeout=20,
                 what="site a's newest total on b after the cut")


class BridgeTlsTest(ClusterTest):
    def test_the_bridge_runs_over_tls(self):
        # a bridges to b's TLS listener, verifying b's certificate; b to a's in clear.
        pa, pb = free_port(), free_port()
        b = started(site_broker(self, "b", pb, [("a", pa)], tls=True))
        a = started(site_broker(self, "a", pa, [("b", pb)], cafile=os.path.join(b.conf_dir, "tls", "ca.crt")))
        publish_site(a, "a", 3)
        wait_for(lambda: retained_v5(b, "sites/a/total") is not None, timeout=15, what="sites/a/total over TLS")
        # The listener speaks TLS only: a cleartext client is not let in.
        p = subprocess.run(["mosquitto_pub", "-h", "127.0.0.1", "-p", str(pb), "-t", "sites/a/total", "-m", "1",
                            "-u", "tally-bridge-a", "-P", "bridge-pw"], capture_output=True, timeout=10)
        self.assertNotEqual(p.returncode, 0)


class SiteSettingsTest(ClusterTest):
    def render(self, *args):
        return subprocess.run([os.path.join(os.path.dirname(__file__), "..", "..", "broker-config", "make-secrets.sh"),
                               os.path.join(self.dir, "x")] + list(args), capture_output=True, text=True, timeout=30)

    def test_bad_site_settings_are_one_line_and_exit_2(self):
        for args, word in ((["--site", "A_B"], "--site"), (["--bridge-port", "1"], "--site"),
                           (["--site", "a", "--bridge", "a=h:1"], "--bridge"),
                           (["--site", "a", "--bridge", "b=h"], "--bridge")):
            p = self.render(*args)
            self.assertEqual(p.returncode, 2, (args, p.stderr))
            self.assertEqual(len(p.stderr.strip().splitlines()), 1, p.stderr)
            self.assertIn(word, p.stderr)
