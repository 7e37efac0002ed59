"""The processes the tests, the fault and attack suites and the benchmarks start: real
redis-server, sentinels, mosquitto, publishers and tally replicas on free loopback ports.

Every process runs in a work directory its caller owns, with its output in a log file there.
Readiness is always polled with a deadline (wait_for), never slept for.
"""
import http.client
import json
import os
import random
import signal
import socket
import subprocess
import threading
import time

from kit import resp
from kit.http_reader import parse_answer

REPLICA = os.environ.get("TALLY_REPLICA", "")
PUBLISHER = os.environ.get("TALLY_PUBLISHER", "")
ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
# The broker's plugin (broker-config/plugin), built beside the replica unless named.
BROKER_PLUGIN = os.environ.get("TALLY_BROKER_PLUGIN") or (
    os.path.join(os.path.dirname(os.path.dirname(REPLICA)), "broker-config", "tally-client-ids.so") if REPLICA else "")
SANITIZED = bool(os.environ.get("TALLY_SANITIZE"))
# Sanitizer builds run several times slower: scale loads, not deadlines' meaning.
LOAD_SCALE = 0.25 if SANITIZED else 1.0


def wait_for(cond, timeout=10.0, interval=0.02, what="condition"):
    """Polls cond() until it returns a truthy value; fails the test after timeout seconds."""
    deadline = time.monotonic() + timeout
    last_exc = None
    while time.monotonic() < deadline:
        try:
            v = cond()
            if v:
                return v
        except Exception as e:  # the server may not be up yet
            last_exc = e
        time.sleep(interval)
    raise AssertionError("timed out after %.1fs waiting for %s (last error: %r)" % (timeout, what, last_exc))

def _ephemeral_low():
    """The lowest port the kernel hands out as an outgoing connection's source port."""
    try:
        with open("/proc/sys/net/ipv4/ip_local_port_range") as f:
            return int(f.read().split()[0])
    except (OSError, ValueError, IndexError):
        return 32768


_EPHEMERAL_LOW = _ephemeral_low()
_handed_out = set()
_ports = random.Random()  # seeded from os.urandom: two processes of the kit pick apart


def free_port():
    """A loopback port nobody listens on, for a server a test starts. Taken below the
    kernel's ephemeral range, so no outgoing connection of any process (a replica's to Redis,
    a client's) can hold it as its source port by the time the server binds it, and never the
    same twice in this process (the kernel may hand a port that bind(0) just gave back to the
    next bind(0); CI once saw mosquitto refused one of its five listeners)."""
    low = 10000
    for _ in range(500) if _EPHEMERAL_LOW - low > 1000 else ():
        port = _ports.randrange(low, _EPHEMERAL_LOW)
        if port in _handed_out:
            continue
        with socket.socket() as s:
            try:
                s.bind(("127.0.0.1", port))
            except OSError:
                continue
        _handed_out.add(port)
        return port
    while True:  # no room below the ephemeral range: what the kernel picks, never twice
        with socket.socket() as s:
            s.bind(("127.0.0.1", 0))
            port = s.getsockname()[1]
        if port not in _handed_out:
            _handed_out.add(port)
            return port


class Proc:
    """A child process with its output in a log file."""

    def __init__(self, name, argv, workdir, env=None):
        self.name, self.argv, self.workdir = name, argv, workdir
        # A value of None removes the variable.
        self.env = {k: v for k, v in dict(os.environ, **(env or {})).items() if v is not None}
        self.log_path = os.path.join(workdir, name + ".log")
        self.p = None

    def start(self):
        self.log = open(self.log_path, "ab")
        self.p = subprocess.Popen(self.argv, stdout=self.log, stderr=subprocess.STDOUT, cwd=self.workdir,
                                  env=self.env, start_new_session=True)
        return self

    def alive(self):
        return self.p is not None and self.p.poll() is None

    def signal(self, sig):
        if self.alive():
            self.p.send_signal(sig)

    def kill9(self):
        if self.alive():
            self.p.kill()
            self.p.wait()
        self.log.close()

    def stop(self, timeout=15):
        """SIGTERM, wait; returns the exit code (SIGKILL after timeout)."""
        if self.p is None:
            return None
        if self.p.poll() is None:
            self.p.send_signal(signal.SIGTERM)
            try:
                self.p.wait(timeout)
            except subprocess.TimeoutExpired:
                self.p.kill()
                self.p.wait()
        if not self.log.closed:
            self.log.close()
        return self.p.returncode

    def output(self):
        with open(self.log_path, "rb") as f:
            return f.read().decode("utf-8", "replace")

    def rss_kib(self):
        """Resident memory of the process now (VmRSS), in KiB."""
        with open("/proc/%d/status" % self.p.pid) as f:
            for line in f:
                if line.startswith("VmRSS:"):
                    return int(line.split()[1])
        raise KeyError("VmRSS")

    def connections_to(self, port):
        """How many established TCP connections this process holds to loopback `port`, read
        from /proc (its socket inodes matched against /proc/net/tcp), so no other client of
        that server is mistaken for one of its own."""
        inodes = set()
        fd_dir = "/proc/%d/fd" % self.p.pid
        for fd in os.listdir(fd_dir):
            try:
                target = os.readlink(os.path.join(fd_dir, fd))
            except OSError:
                continue  # closed meanwhile
            if target.startswith("socket:["):
                inodes.add(target[8:-1])
        n = 0
        with open("/proc/net/tcp") as f:
            next(f)
            for line in f:
                cols = line.split()
                remote, state, inode = cols[2], cols[3], cols[9]
                if state == "01" and int(remote.split(":")[1], 16) == port and inode in inodes:
                    n += 1
        return n


class Redis(Proc):
    def __init__(self, workdir, fsync="always", port=None, password=None, replica_of=None, host="127.0.0.1",
                 binds=("127.0.0.1",), acl=None, ha=False):
        """`host`: where tests reach it; `binds`: the addresses it listens on; `acl`: a file of
        ACL users to include (make-secrets.sh's redis-auth.conf), with `password` the default
        user's; `ha`: a node of a Redis set, with the shipped broker-config/redis-ha.conf."""
        self.port = port or free_port()
        self.host = host
        self.dir = os.path.join(workdir, "redis-%d" % self.port)
        os.makedirs(self.dir, exist_ok=True)
        argv = ["redis-server", "--port", str(self.port), "--bind", *binds, "--dir", self.dir,
                "--appendonly", "yes", "--appendfsync", fsync, "--save", "", "--daemonize", "no",
                "--repl-diskless-sync-delay", "0"]  # a replica in a test syncs at once, not after 5 s
        if ha:
            argv += ["--include", os.path.join(ROOT, "broker-config", "redis-ha.conf")]
        if acl:
            argv += ["--include", acl]
        elif password:
            argv += ["--requirepass", password, "--masterauth", password]
        if replica_of is not None:
            argv += ["--replicaof", replica_of.host, str(replica_of.port)]
        self.password = password
        super().__init__("redis-%d" % self.port, argv, workdir)

    def start(self):
        super().start()
        wait_for(lambda: self.command("PING") == "PONG", what="redis to answer PING")
        return self

    def command(self, *args, timeout=5):
        """One command over a fresh connection (RESP); returns str/int/None or raises on error."""
        return resp.session(self.host, self.port, self.password, args, timeout=timeout)[0]

    def replicas_online(self):
        """How many replicas the master lists as online (synced)."""
        return self.command("INFO", "replication").count(",state=online,")

    def replicas_acking(self, n):
        """Whether `n` replicas confirm a write (WAIT on the connection that made it), as
        synchronous mode needs. Online is not enough: measured here, a replica fresh from a full
        sync sometimes confirms nothing for about 0.9 s, until its first periodic ACK."""
        return resp.session(self.host, self.port, self.password, ("SET", "harness:probe", 1), ("WAIT", n, 100))[1] >= n

    def total(self):
        v = self.command("GET", "total_count")
        return int(v) if v is not None else 0


class Sentinel(Proc):
    """redis-server --sentinel monitoring `master` (a Redis) as "tally" with quorum `quorum`:
    its own writable file (Sentinel rewrites it), made from the shipped sentinel.conf.in by
    broker-config/sentinel-conf.sh. One setting differs from the shipped file: a failover
    timeout of 5 s, not 10, so a second failover of the same master (Sentinel waits twice the
    timeout) comes 10 s after the first, not 20: the fault suite's fail-back."""

    FAILOVER_TIMEOUT_MS = 5000

    def __init__(self, workdir, master, quorum=1, port=None, binds=("127.0.0.1",)):
        self.port = port or free_port()
        self.dir = os.path.join(workdir, "sentinel-%d" % self.port)
        os.makedirs(self.dir, exist_ok=True)
        self.conf = os.path.join(self.dir, "sentinel.conf")
        auth = []
        if master.password:
            auth = ["--auth", os.path.join(self.dir, "auth.conf")]
            with open(auth[1], "w") as f:
                f.write("sentinel auth-pass tally %s\n" % master.password)
        subprocess.run([os.path.join(ROOT, "broker-config", "sentinel-conf.sh"), self.conf, "--port", str(self.port),
                        "--bind", " ".join(binds), "--master", "%s:%d" % (master.host, master.port),
                        "--quorum", str(quorum)] + auth, check=True, capture_output=True, timeout=10)
        with open(self.conf, "a") as f:
            f.write("sentinel failover-timeout tally %d\n" % self.FAILOVER_TIMEOUT_MS)
        self.master_name = "tally"
        super().__init__("sentinel-%d" % self.port, ["redis-server", self.conf, "--sentinel"], workdir)

    def start(self):
        super().start()
        wait_for(lambda: self.command("PING") == "PONG", what="sentinel to answer PING")
        return self

    def command(self, *args, timeout=5):
        return resp.session("127.0.0.1", self.port, None, args, timeout=timeout)[0]

    def master(self):
        host, port = self.command("SENTINEL", "get-master-addr-by-name", self.master_name)
        return host, int(port)

    def addr(self):
        return "127.0.0.1:%d" % self.port


class Broker(Proc):
    def __init__(self, workdir, port=None):
        self.port = port or free_port()
        conf = os.path.join(workdir, "mosquitto-%d.conf" % self.port)
        with open(conf, "w") as f:
            f.write("listener %d 127.0.0.1\nallow_anonymous true\npersistence false\n"
                    "max_queued_messages 100000\nlog_dest stderr\n" % self.port)
            if os.geteuid() == 0:
                f.write("user root\n")
        super().__init__("mosquitto-%d" % self.port, ["mosquitto", "-c", conf], workdir)

    def start(self):
        super().start()
        wait_for(lambda: socket.create_connection(("127.0.0.1", self.port), timeout=1).close() or True,
                 what="mosquitto to accept connections")
        return self

    def url(self):
        return "tcp://127.0.0.1:%d" % self.port

    def publish(self, payload, topic="total_count"):
        subprocess.run(["mosquitto_pub", "-h", "127.0.0.1", "-p", str(self.port), "-t", topic, "-m", payload], check=True, timeout=10)

    def publish_empty(self, topic="total_count", retain=False):
        """An empty payload; with retain=True it clears the topic's retained message."""
        subprocess.run(["mosquitto_pub", "-h", "127.0.0.1", "-p", str(self.port), "-t", topic, "-n"]
                       + (["-r"] if retain else []), check=True, timeout=10)


def retained(broker, topic, timeout=3):
    """The retained payload on `topic` (None if there is none), read by a fresh mosquitto_sub."""
    p = subprocess.run(["mosquitto_sub", "-h", "127.0.0.1", "-p", str(broker.port), "-t", topic, "-C", "1",
                        "-W", str(timeout), "--retained-only"] + list(getattr(broker, "auth", [])),
                       capture_output=True, text=True)
    return p.stdout.strip() if p.returncode == 0 and p.stdout else None


class SecureBroker(Proc):
    """mosquitto with the production configuration of broker-config/, rendered by
    make-secrets.sh with known passwords: services port, watcher port, WebSocket port."""
    PASSWORDS = {"MQTT_REPLICA_PASSWORD": "replica-pw", "MQTT_PUBLISHER_PASSWORD": "publisher-pw",
                 "MQTT_WATCHER_PASSWORD": "watcher-pw", "REDIS_PASSWORD": "redis-pw",
                 "MQTT_BRIDGE_PASSWORD": "bridge-pw"}

    def __init__(self, workdir, port=None, root=ROOT, extra_args=()):
        """`extra_args`: more make-secrets.sh options (a site and its bridges)."""
        self.port, self.watch_port, self.ws_port = port or free_port(), free_port(), free_port()
        self.watch_tls_port, self.wss_port = free_port(), free_port()
        self.conf_dir = os.path.join(workdir, "broker-%d" % self.port)
        if not os.path.exists(os.path.join(self.conf_dir, "mosquitto.conf")):
            script = os.path.join(root, "broker-config", "make-secrets.sh")
            with open(script) as f:  # an older checkout (attacks.py --root) has no plugin
                plugin = ["--plugin", BROKER_PLUGIN] if "--plugin" in f.read() else []
            subprocess.run([script, self.conf_dir, "--port",
                            str(self.port), "--watch-port", str(self.watch_port), "--ws-port", str(self.ws_port),
                            "--watch-tls-port", str(self.watch_tls_port), "--wss-port", str(self.wss_port)] + plugin
                           + list(extra_args),
                           check=True, env=dict(os.environ, **self.PASSWORDS), capture_output=True)
            if os.geteuid() == 0:
                with open(os.path.join(self.conf_dir, "mosquitto.conf"), "a") as f:
                    f.write("user root\n")
        self.auth = ["-u", "watcher", "-P", "watcher-pw"]
        super().__init__("mosquitto-secure-%d" % self.port,
                         ["mosquitto", "-c", os.path.join(self.conf_dir, "mosquitto.conf")], workdir)

    def start(self):
        super().start()
        def up(port):
            if not self.alive():
                return "exited"
            socket.create_connection(("127.0.0.1", port), timeout=1).close()
            return "up"
        for port in (self.port, self.watch_port, self.ws_port, self.watch_tls_port, self.wss_port):
            if wait_for(lambda: up(port), what="mosquitto port %d" % port) == "exited":  # say why
                raise AssertionError("mosquitto exited at start:\n" + self.output())
        return self

    def url(self):
        return "tcp://127.0.0.1:%d" % self.port

    def pub(self, topic, payload, port=None, user=None, password=None, client_id=None, retain=False):
        """mosquitto_pub; returns its exit code (non-zero: refused)."""
        argv = ["mosquitto_pub", "-h", "127.0.0.1", "-p", str(port or self.port), "-t", topic, "-m", payload,
                "-q", "1"]
        if user:
            argv += ["-u", user, "-P", password]
        if client_id:
            argv += ["-i", client_id]
        if retain:
            argv += ["-r"]
        return subprocess.run(argv, capture_output=True, timeout=10).returncode

    def watch(self, topic, count=1, timeout=3, user="watcher", password="watcher-pw", port=None):
        """mosquitto_sub on the watcher port: (exit code, payload lines)."""
        argv = ["mosquitto_sub", "-h", "127.0.0.1", "-p", str(port or self.watch_port), "-t", topic, "-C",
                str(count), "-W", str(timeout)]
        if user:
            argv += ["-u", user, "-P", password]
        p = subprocess.run(argv, capture_output=True, text=True, timeout=timeout + 10)
        return p.returncode, p.stdout.splitlines()


class Publisher(Proc):
    def __init__(self, workdir, redis, broker, instance, extra_env=None):
        self.http_port = free_port()
        self.instance = instance
        env = {"INSTANCE_ID": instance, "HTTP_HOST": "127.0.0.1", "HTTP_PORT": str(self.http_port),
               "REDIS_HOST": "127.0.0.1", "REDIS_PORT": str(redis.port), "MQTT_URL": broker.url(),
               "PUBLISH_INTERVAL_MS": "100", "HEARTBEAT_MS": "500", "LEASE_TTL_MS": "1500", "LOG_LEVEL": "info"}
        env.update(extra_env or {})
        super().__init__("publisher-%s" % instance, [PUBLISHER], workdir, env)

    def start(self):
        super().start()
        wait_for(lambda: self.get("/readyz")[0] == 200, what="%s to be ready" % self.name)
        return self

    def get(self, path):
        c = http.client.HTTPConnection("127.0.0.1", self.http_port, timeout=5)
        try:
            c.request("GET", path)
            r = c.getresponse()
            return r.status, r.read().decode()
        finally:
            c.close()

    def metric(self, name):
        for line in self.get("/metrics")[1].splitlines():
            if line.startswith(name + " "):
                return float(line.split()[1])
        raise KeyError(name)

    def leading(self):
        return self.metric("tally_publisher_leader") == 1


class Watcher:
    """mosquitto_sub on total_count; collects every payload in a thread."""

    PROBE = "tally-test/probe"

    def __init__(self, broker, topic="total_count"):
        self.values = []
        self.probes = 0
        self.lock = threading.Lock()
        self.p = subprocess.Popen(["mosquitto_sub", "-h", "127.0.0.1", "-p", str(broker.port), "-t", topic, "-t", self.PROBE, "-v"],
                                  stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, start_new_session=True)
        self.t = threading.Thread(target=self._read, daemon=True)
        self.t.start()
        # The subscription is live once a probe published after it comes back.
        wait_for(lambda: broker.publish("x", topic=self.PROBE) or self.probes > 0, what="mosquitto_sub to subscribe")

    def _read(self):
        for line in self.p.stdout:
            topic, _, payload = line.decode().rstrip("\n").partition(" ")
            with self.lock:
                if topic == self.PROBE:
                    self.probes += 1
                else:
                    self.values.append(payload)

    def totals(self):
        with self.lock:
            return [int(v) for v in self.values if v.isdigit()]

    def stop(self):
        self.p.terminate()
        self.p.wait()


class Replica(Proc):
    def __init__(self, workdir, redis, broker, instance, port=None, extra_env=None, args=()):
        self.port = port or free_port()
        self.host = "127.0.0.1"  # where the tests reach it (a namespaced replica elsewhere)
        self.instance = instance
        env = {"SERVICE_HOST": "127.0.0.1", "SERVICE_PORT": str(self.port), "INSTANCE_ID": instance,
               "REDIS_HOST": "127.0.0.1", "REDIS_PORT": str(redis.port if redis else 1),
               "MQTT_URL": broker.url() if broker else "tcp://127.0.0.1:1", "LOG_LEVEL": "info"}
        env.update(extra_env or {})
        super().__init__("replica-%s-%d" % (instance, self.port), [REPLICA] + list(args), workdir, env)

    def start(self, ready=True):
        super().start()
        if ready:
            self.wait_ready()
        return self

    def wait_ready(self, timeout=15):
        wait_for(lambda: self.get("/readyz")[0] == 200, timeout=timeout, what="%s to be ready" % self.name)

    def get(self, path, headers=None, method="GET", timeout=10):
        c = http.client.HTTPConnection(self.host, self.port, timeout=timeout)
        try:
            c.request(method, path, headers=headers or {})
            r = c.getresponse()
            return r.status, r.read().decode(), dict((k.lower(), v) for k, v in r.getheaders())
        finally:
            c.close()

    def count(self, json=False):
        """One GET /: returns (status, n, m) with n, m None unless 200."""
        st, body, _ = self.get("/", {"Accept": "application/json"} if json else {})
        if st != 200:
            return st, None, None
        a = parse_answer(body)
        assert a, "unexpected body %r" % body
        return st, a[1], a[2]

    def total(self):
        return json.loads(self.get("/total")[1])["cluster_total"]

    def metric(self, name):
        body = self.get("/metrics")[1]
        for line in body.splitlines():
            if line.startswith(name + " ") or ("{" in name and line.startswith(name)):
                return float(line.rsplit(" ", 1)[1])
        raise KeyError(name)


