"""README command 1: scripts/run-local.sh runs the whole system on loopback (Redis,
mosquitto, two publishers, the replicas; with --ha three Redis nodes and three sentinels),
counts through it, and stops every process it started on Ctrl-C. It runs here on the
tests' own build (TALLY_PREBUILT) with every port and its data folder chosen by the test."""
import json
import os
import signal
import socket
import subprocess
import tempfile
import threading
import unittest

from kit import resp
from kit.http_reader import parse_answer
from kit.procs import REPLICA, ROOT, free_port, wait_for

SCRIPT = os.path.join(ROOT, "scripts", "run-local.sh")


def free_run(n):
    """A port p with p .. p+n-1 all free (the script numbers some of its ports in a row)."""
    while True:
        p = free_port()
        ok = True
        for q in range(p + 1, p + n):
            with socket.socket() as s:
                try:
                    s.bind(("127.0.0.1", q))
                except OSError:
                    ok = False
        if ok:
            return p


def listening(port):
    try:
        socket.create_connection(("127.0.0.1", port), timeout=1).close()
        return True
    except OSError:
        return False


class RunLocalTest(unittest.TestCase):
    def start(self, *args):
        self.run_dir = tempfile.mkdtemp(prefix="tally-run-local-")
        self.ports = {"HTTP_PORT": free_port(), "REDIS_PORT": free_run(3), "MQTT_PORT": free_port(),
                      "MQTT_WATCH_PORT": free_port(), "MQTT_WS_PORT": free_port(), "MQTT_WATCH_TLS_PORT": free_port(),
                      "MQTT_WSS_PORT": free_port(), "PUBLISHER_HTTP_PORT": free_run(2), "SENTINEL_PORT": free_run(3)}
        env = dict(os.environ, TALLY_RUN_DIR=self.run_dir,
                   TALLY_PREBUILT=os.path.dirname(os.path.dirname(REPLICA)),
                   **{k: str(v) for k, v in self.ports.items()})
        env.pop("REDIS_WAIT_REPLICAS", None)
        self.p = subprocess.Popen([SCRIPT] + list(args), env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                                  start_new_session=True)
        self.out = []
        self.running = threading.Event()

        def read():
            for line in self.p.stdout:
                self.out.append(line.decode(errors="replace"))
                if line.startswith(b"tally is running"):
                    self.running.set()

        self.reader = threading.Thread(target=read, daemon=True)
        self.reader.start()
        self.addCleanup(self.stop)
        wait_for(lambda: self.running.is_set() or self.p.poll() is not None, timeout=120, interval=0.1,
                 what="run-local.sh to say it is running")
        self.assertTrue(self.running.is_set(), "run-local.sh exited %s:\n%s" % (self.p.poll(), "".join(self.out)))

    def stop(self):
        if self.p.poll() is None:
            os.killpg(self.p.pid, signal.SIGKILL)
            self.p.wait()
        self.reader.join(10)
        self.p.stdout.close()
        subprocess.run(["rm", "-rf", self.run_dir])

    def get(self, port, path="/"):
        with socket.create_connection(("127.0.0.1", port), timeout=10) as s:
            s.sendall(("GET %s HTTP/1.1\r\nHost: t\r\nConnection: close\r\n\r\n" % path).encode())
            raw = b""
            while True:
                d = s.recv(65536)
                if not d:
                    break
                raw += d
        head, _, body = raw.partition(b"\r\n\r\n")
        return int(head.split()[1]), body

    def counts_and_stops(self, replicas):
        http = self.ports["HTTP_PORT"]
        ms = []
        for _ in range(20):
            st, body = self.get(http)
            self.assertEqual(st, 200, body)
            ms.append(parse_answer(body)[2])
        self.assertEqual(ms, sorted(set(ms)), "every M once, rising")
        wait_for(lambda: len([r for r in json.loads(self.get(http, "/replicas")[1])["replicas"]
                              if r["state"] == "online"]) == replicas, timeout=30, what="every replica online")
        pub = self.ports["PUBLISHER_HTTP_PORT"]
        leaders = lambda: sum(b"\ntally_publisher_leader 1\n" in self.get(port, "/metrics")[1] for port in (pub, pub + 1))
        wait_for(lambda: leaders() == 1, timeout=30, what="one of the two publishers to lead")
        # Ctrl-C: the terminal signals the whole group; everything stops, the script exits 0.
        os.killpg(self.p.pid, signal.SIGINT)
        self.assertEqual(self.p.wait(60), 0, "".join(self.out))
        self.reader.join(10)
        self.assertIn("stopped; data and logs are in %s" % self.run_dir, "".join(self.out))
        for name, port in self.ports.items():
            if name != "SENTINEL_PORT" or self.ha:
                self.assertFalse(listening(port), "%s %d still answers after Ctrl-C" % (name, port))

    def test_the_whole_system_counts_and_stops_on_ctrl_c(self):
        self.ha = False
        self.start("2")
        self.counts_and_stops(2)

    def test_ha_finds_the_master_through_the_sentinels(self):
        self.ha = True
        self.start("--ha", "2")
        with open(os.path.join(self.run_dir, "broker", "secrets", "redis-sentinel-client.txt")) as f:
            client = ("tally-client", f.read().strip())
        redis_port = self.ports["REDIS_PORT"]
        for i in range(3):
            host, port = resp.session("127.0.0.1", self.ports["SENTINEL_PORT"] + i, client,
                                      ("SENTINEL", "get-master-addr-by-name", "tally"))[0]
            self.assertEqual(int(port), redis_port, "sentinel %d names the master" % i)
        # Synchronous by default: a replica that counted has sent WAITs.
        waits = lambda: self.get(self.ports["HTTP_PORT"])[0] == 200 and any(
            line.startswith("tally_redis_waits_total ") and float(line.split()[1]) > 0
            for line in self.get(self.ports["HTTP_PORT"], "/metrics")[1].decode().splitlines())
        wait_for(waits, timeout=30, what="a replica to report WAITs (REDIS_WAIT_REPLICAS=1)")
        self.counts_and_stops(2)


class PortSettingsTest(unittest.TestCase):
    """A port variable that is not a port stops the script at once: one line naming it, exit 2,
    before anything is installed, built or started."""

    def test_bad_ports_exit_2_naming_the_variable(self):
        for name, value in (("HTTP_PORT", "http"), ("REDIS_PORT", "0"), ("MQTT_PORT", "70000"),
                            ("SENTINEL_PORT", "08080"), ("PUBLISHER_HTTP_PORT", "65535"), ("MQTT_WSS_PORT", "-1")):
            with tempfile.TemporaryDirectory() as d:
                env = dict(os.environ, TALLY_RUN_DIR=d, TALLY_PREBUILT="/nonexistent", **{name: value})
                p = subprocess.run(["bash", SCRIPT], env=env, capture_output=True, text=True, timeout=30)
                self.assertEqual(p.returncode, 2, (name, value, p.stderr))
                lines = p.stderr.strip().splitlines()
                self.assertEqual(len(lines), 1, p.stderr)
                self.assertTrue(lines[0].startswith("run-local.sh: %s must be a port" % name), lines[0])
                self.assertIn("'%s'" % value, lines[0])
                self.assertEqual(os.listdir(d), [], "nothing started")


if __name__ == "__main__":
    unittest.main()
