"""Test harness: real redis-server, mosquitto and tally replicas on free loopback ports.

Every process is started in a private temporary directory and stopped at the end of the
test (even on failure). Readiness is always polled with a deadline, never slept for.
"""
import http.client
import os
import random
import re
import shutil
import signal
import socket
import subprocess
import tempfile
import threading
import time
import unittest

REPLICA = os.environ.get("TALLY_REPLICA", "")
PUBLISHER = os.environ.get("TALLY_PUBLISHER", "")
ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
# The broker's plugin (broker-config/plugin), built beside the replica unless named.
BROKER_PLUGIN = os.environ.get("TALLY_BROKER_PLUGIN") or (
    os.path.join(os.path.dirname(os.path.dirname(REPLICA)), "broker-config", "tally-client-ids.so") if REPLICA else "")
SANITIZED = bool(os.environ.get("TALLY_SANITIZE"))
# Sanitizer builds run several times slower: scale loads, not deadlines' meaning.
LOAD_SCALE = 0.25 if SANITIZED else 1.0

TEXT_RE = re.compile(
    r"\AYou are talking to instance (?P<instance>[^\n]+)\.\n"
    r"This is request (?P<n>[0-9]+) to this instance and request (?P<m>[0-9]+) to the cluster\.\n\Z")


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


def raw_exchange(port, data, timeout=3.0, source="127.0.0.1"):
    """Sends `data` on a fresh connection from `source`; returns (what came back, whether
    the server closed) within `timeout` seconds."""
    with socket.socket() as s:
        s.settimeout(timeout)
        s.bind((source, 0))
        s.connect(("127.0.0.1", port))
        try:
            s.sendall(data)
        except OSError:  # the server may close while a large body is still being sent
            pass
        out, deadline = b"", time.monotonic() + timeout
        while time.monotonic() < deadline:
            s.settimeout(max(0.01, deadline - time.monotonic()))
            try:
                d = s.recv(65536)
            except socket.timeout:
                break
            except OSError:  # reset
                return out, True
            if not d:
                return out, True
            out += d
        return out, False


def render_edge(cfg_text, edge_port, stats_port, replicas):
    """The shipped haproxy.cfg with Docker's resolvers replaced by static loopback servers
    and the binds moved to loopback ports; every other line as shipped."""
    out = re.sub(r"\nresolvers docker\n(?:    .*\n)+", "\n", cfg_text)
    out = out.replace(" resolvers docker init-addr none", "")
    servers = "".join("    server replica%d 127.0.0.1:%d\n" % (i + 1, r.port) for i, r in enumerate(replicas))
    out = re.sub(r"    server-template .*\n", servers, out)
    out = out.replace("bind :8080", "bind 127.0.0.1:%d" % edge_port).replace("bind :8404", "bind 127.0.0.1:%d" % stats_port)
    assert "resolvers" not in out and "server-template" not in out, "the edge configuration changed shape"
    return out


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
                 binds=("127.0.0.1",), acl=None):
        """`host`: where tests reach it; `binds`: the addresses it listens on; `acl`: a file of
        ACL users to include (make-secrets.sh's redis-auth.conf), with `password` the default
        user's."""
        self.port = port or free_port()
        self.host = host
        self.dir = os.path.join(workdir, "redis-%d" % self.port)
        os.makedirs(self.dir, exist_ok=True)
        argv = ["redis-server", "--port", str(self.port), "--bind", *binds, "--dir", self.dir,
                "--appendonly", "yes", "--appendfsync", fsync, "--save", "", "--daemonize", "no",
                "--repl-diskless-sync-delay", "0"]  # a replica in a test syncs at once, not after 5 s
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
        return resp_session(self.host, self.port, self.password, args, timeout=timeout)[0]

    def replicas_online(self):
        """How many replicas the master lists as online (synced)."""
        return self.command("INFO", "replication").count(",state=online,")

    def replicas_acking(self, n):
        """Whether `n` replicas confirm a write (WAIT on the connection that made it), as
        synchronous mode needs. Online is not enough: measured here, a replica fresh from a full
        sync sometimes confirms nothing for about 0.9 s, until its first periodic ACK."""
        return resp_session(self.host, self.port, self.password, ("SET", "harness:probe", 1), ("WAIT", n, 100))[1] >= n

    def total(self):
        v = self.command("GET", "total_count")
        return int(v) if v is not None else 0


class Sentinel(Proc):
    """redis-server --sentinel monitoring `master` (a Redis) as name `name`, quorum `quorum`,
    down-after 1 s: its own writable configuration file, as Sentinel rewrites it."""

    def __init__(self, workdir, master, name="tally", quorum=1, port=None, binds=("127.0.0.1",)):
        self.port = port or free_port()
        self.dir = os.path.join(workdir, "sentinel-%d" % self.port)
        os.makedirs(self.dir, exist_ok=True)
        self.conf = os.path.join(self.dir, "sentinel.conf")
        with open(self.conf, "w") as f:
            f.write("port %d\nbind %s\ndaemonize no\ndir %s\n"
                    "sentinel monitor %s %s %d %d\n"
                    "sentinel down-after-milliseconds %s 1000\n"
                    "sentinel failover-timeout %s 5000\n" % (self.port, " ".join(binds), self.dir, name, master.host,
                                                             master.port, quorum, name, name))
            if master.password:
                f.write("sentinel auth-pass %s %s\n" % (name, master.password))
        self.master_name = name
        super().__init__("sentinel-%d" % self.port, ["redis-server", self.conf, "--sentinel"], workdir)

    def start(self):
        super().start()
        wait_for(lambda: self.command("PING") == "PONG", what="sentinel to answer PING")
        return self

    def command(self, *args, timeout=5):
        return resp_session("127.0.0.1", self.port, None, args, timeout=timeout)[0]

    def master(self):
        host, port = self.command("SENTINEL", "get-master-addr-by-name", self.master_name)
        return host, int(port)

    def addr(self):
        return "127.0.0.1:%d" % self.port


def resp_session(host, port, password, *commands, timeout=5):
    """Commands in turn on one fresh connection, after AUTH if `password`; their replies
    (str/int/None/list; an error reply raises RuntimeError). `password` may be a (user,
    password) pair: AUTH as that ACL user."""
    with socket.create_connection((host, port), timeout=timeout) as s:
        f = s.makefile("rb")
        if password:
            s.sendall(_resp(["AUTH"] + (list(password) if isinstance(password, tuple) else [password])))
            _read_resp(f)
        out = []
        for cmd in commands:
            s.sendall(_resp([str(a) for a in cmd]))
            out.append(_read_resp(f))
        return out


def _resp(args):
    out = b"*%d\r\n" % len(args)
    for a in args:
        a = a.encode()
        out += b"$%d\r\n%s\r\n" % (len(a), a)
    return out


def _read_resp(f):
    line = f.readline()
    if not line:
        raise ConnectionError("redis closed the connection")
    kind, rest = line[:1], line[1:-2].decode()
    if kind == b"+":
        return rest
    if kind == b"-":
        raise RuntimeError(rest)
    if kind == b":":
        return int(rest)
    if kind == b"$":
        n = int(rest)
        if n < 0:
            return None
        data = f.read(n + 2)
        return data[:-2].decode()
    if kind == b"*":
        return [_read_resp(f) for _ in range(int(rest))]
    raise RuntimeError("bad RESP: %r" % line)


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
                 "MQTT_WATCHER_PASSWORD": "watcher-pw", "REDIS_PASSWORD": "redis-pw"}

    def __init__(self, workdir, port=None, root=ROOT):
        self.port, self.watch_port, self.ws_port = port or free_port(), free_port(), free_port()
        self.watch_tls_port, self.wss_port = free_port(), free_port()
        self.conf_dir = os.path.join(workdir, "broker-%d" % self.port)
        if not os.path.exists(os.path.join(self.conf_dir, "mosquitto.conf")):
            script = os.path.join(root, "broker-config", "make-secrets.sh")
            with open(script) as f:  # an older checkout (attacks.py --root) has no plugin
                plugin = ["--plugin", BROKER_PLUGIN] if "--plugin" in f.read() else []
            subprocess.run([script, self.conf_dir, "--port",
                            str(self.port), "--watch-port", str(self.watch_port), "--ws-port", str(self.ws_port),
                            "--watch-tls-port", str(self.watch_tls_port), "--wss-port", str(self.wss_port)] + plugin,
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
        mt = TEXT_RE.match(body)
        assert mt, "unexpected body %r" % body
        return st, int(mt["n"]), int(mt["m"])

    def total(self):
        import json
        return json.loads(self.get("/total")[1])["cluster_total"]

    def metric(self, name):
        body = self.get("/metrics")[1]
        for line in body.splitlines():
            if line.startswith(name + " ") or ("{" in name and line.startswith(name)):
                return float(line.rsplit(" ", 1)[1])
        raise KeyError(name)


def load(port, requests, connections=8, depth=16, timeout=30.0, accept_json=False):
    """Sends `requests` counted GET / over `connections` keep-alive connections, pipelining
    `depth` at a time. Returns dict: ok=[(n, m, instance)], statuses={code: count}, attempted."""
    lock = threading.Lock()
    result = {"ok": [], "statuses": {}, "attempted": 0, "errors": 0}
    per_conn = [requests // connections + (1 if i < requests % connections else 0) for i in range(connections)]
    req = b"GET / HTTP/1.1\r\nHost: t\r\n" + (b"Accept: application/json\r\n" if accept_json else b"") + b"\r\n"

    def worker(count):
        ok, statuses, attempted, errors = [], {}, 0, 0
        s = None
        try:
            s = socket.create_connection(("127.0.0.1", port), timeout=timeout)
            f = s.makefile("rb")
            left = count
            while left > 0:
                k = min(depth, left)
                s.sendall(req * k)
                attempted += k
                for _ in range(k):
                    status, body = _read_response(f)
                    statuses[status] = statuses.get(status, 0) + 1
                    if status == 200:
                        mt = TEXT_RE.match(body)
                        ok.append((int(mt["n"]), int(mt["m"]), mt["instance"]))
                left -= k
        except (OSError, ConnectionError):
            errors += 1
        finally:
            if s:
                s.close()
            with lock:
                result["ok"] += ok
                result["attempted"] += attempted
                result["errors"] += errors
                for k2, v in statuses.items():
                    result["statuses"][k2] = result["statuses"].get(k2, 0) + v

    threads = [threading.Thread(target=worker, args=(c,)) for c in per_conn if c > 0]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    return result


def _read_response(f):
    line = f.readline()
    if not line:
        raise ConnectionError("server closed the connection")
    status = int(line.split()[1])
    length = None
    while True:
        h = f.readline()
        if h in (b"\r\n", b"\n", b""):
            break
        name, _, value = h.partition(b":")
        if name.strip().lower() == b"content-length":
            length = int(value.strip())
    body = f.read(length) if length else b""
    return status, body.decode()


def read_response(f, head=False):
    """One HTTP/1.1 response from a socket file: (status, headers dict, body); an answer to
    HEAD (@head) has no body whatever its Content-Length says."""
    line = f.readline()
    if not line:
        raise ConnectionError("closed before the answer")
    status = int(line.split()[1])
    headers = {}
    while True:
        h = f.readline()
        if h in (b"\r\n", b"\n"):
            break
        if not h:
            raise ConnectionError("closed inside the headers")
        name, _, value = h.decode().partition(":")
        headers[name.strip().lower()] = value.strip()
    body = b"" if head else f.read(int(headers.get("content-length", "0")))
    return status, headers, body


class ClusterTest(unittest.TestCase):
    """Base class: a temp dir, and every process started through it stopped at the end."""

    def setUp(self):
        if not REPLICA or not os.access(REPLICA, os.X_OK):
            self.fail("TALLY_REPLICA must point at the tally-replica binary (run through ctest)")
        self.dir = tempfile.mkdtemp(prefix="tally-it-")
        self.procs = []
        self.watchers = []

    def tearDown(self):
        for w in self.watchers:
            w.stop()
        failed = False
        for p in reversed(self.procs):
            rc = p.stop()
            if isinstance(p, (Replica, Publisher)) and rc not in (0, None, -9) and p.p.returncode != -signal.SIGKILL:
                failed = True
                print("\n--- %s exited %s; its log:\n%s" % (p.name, rc, p.output()))
            if isinstance(p, (Replica, Publisher)) and SANITIZED and ("ERROR: AddressSanitizer" in p.output()
                                                         or "WARNING: ThreadSanitizer" in p.output()
                                                         or "runtime error:" in p.output()):
                failed = True
                print("\n--- sanitizer report in %s:\n%s" % (p.name, p.output()))
        if failed:
            self.fail("a replica exited badly (see its log above)")
        shutil.rmtree(self.dir, ignore_errors=True)

    def add(self, proc):
        self.procs.append(proc)
        return proc

    def redis(self, **kw):
        return self.add(Redis(self.dir, **kw)).start()

    def broker(self, **kw):
        return self.add(Broker(self.dir, **kw)).start()

    def publisher(self, redis, broker, instance, **kw):
        return self.add(Publisher(self.dir, redis, broker, instance, **kw)).start()

    def replica(self, redis, broker, instance="r1", ready=True, **kw):
        return self.add(Replica(self.dir, redis, broker, instance, **kw)).start(ready=ready)

    def replica_via_proxy(self, redis, broker, **kw):
        """A replica that reaches `redis` through a FlakyProxy (closed at the end of the
        test), to lose its commands or their replies at a chosen moment: (replica, proxy)."""
        proxy = FlakyProxy(redis.port)
        self.addCleanup(proxy.close)

        class Via:
            port = proxy.port

        return self.replica(Via, broker, **kw), proxy

    def watcher(self, broker):
        w = Watcher(broker)
        self.watchers.append(w)
        return w


def undocumented_metrics(body):
    """Metric families in a /metrics body that docs/api.md does not name."""
    root = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
    with open(os.path.join(root, "docs", "api.md")) as f:
        doc = f.read()
    names = [line.split()[2] for line in body.splitlines() if line.startswith("# TYPE ")]
    return [n for n in names if "`%s`" % n not in doc and "`%s{" % n not in doc]


class FlakyProxy:
    """A TCP proxy on 127.0.0.1 to another local port that can swallow the bytes of one
    direction (drop_requests / drop_replies) and cut every connection it carries, to make
    a connection fail at a chosen moment: e.g. after Redis applied a command but before
    its reply arrived."""

    def __init__(self, target_port):
        self.target = target_port
        self.drop_requests = threading.Event()
        self.drop_replies = threading.Event()
        self.lock = threading.Lock()
        self.pairs = []
        self.lsock = socket.socket()
        self.lsock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        self.lsock.bind(("127.0.0.1", 0))
        self.lsock.listen(16)
        self.port = self.lsock.getsockname()[1]
        threading.Thread(target=self._accept, daemon=True).start()

    def _accept(self):
        while True:
            try:
                c, _ = self.lsock.accept()
            except OSError:
                return
            try:
                s = socket.create_connection(("127.0.0.1", self.target), timeout=5)
            except OSError:
                c.close()
                continue
            with self.lock:
                self.pairs.append((c, s))
            threading.Thread(target=self._pipe, args=(c, s, self.drop_requests), daemon=True).start()
            threading.Thread(target=self._pipe, args=(s, c, self.drop_replies), daemon=True).start()

    @staticmethod
    def _pipe(src, dst, drop):
        # Once a connection has lost bytes it forwards nothing more in that direction, as a
        # real connection that loses data is dead: passing later bytes on would hand Redis the
        # tail of a half-swallowed command, or the client a reply that belongs to an earlier
        # one (between clear() and cut() in a test, that once gave two requests one total).
        swallowed = False
        try:
            while True:
                data = src.recv(65536)
                if not data:
                    break
                swallowed = swallowed or drop.is_set()
                if not swallowed:
                    dst.sendall(data)
        except OSError:
            pass
        for sock in (src, dst):
            try:
                sock.shutdown(socket.SHUT_RDWR)
            except OSError:
                pass

    def cut(self):
        """Closes every connection carried so far; new ones are accepted as usual."""
        with self.lock:
            pairs, self.pairs = self.pairs, []
        for pair in pairs:
            for sock in pair:
                try:
                    sock.shutdown(socket.SHUT_RDWR)
                except OSError:
                    pass
                sock.close()

    def close(self):
        self.cut()
        self.lsock.close()
