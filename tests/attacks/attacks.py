#!/usr/bin/env python3
"""Attack suite: what an outsider can send, tried against the shipped edge while a
legitimate client counts through it. Real parts: HAProxy from Debian with the shipped
docker/haproxy.cfg (only its Docker resolvers swapped for the loopback replicas and its
binds for loopback ports), two replicas, redis-server, mosquitto with the production
configuration of broker-config/. The legitimate client speaks from 127.0.0.1, the attacker
from 127.0.0.2 (and a bystander, a second legitimate source, from 127.0.0.3).

Each attack prints one line of figures for the legitimate load during it (attempted,
acknowledged, Redis delta, lost, duplicated, 503s, longest time without a 200) and the
attack's own figures; the exit code is 1 if any check failed.

    TALLY_REPLICA=build/replica/tally-replica TALLY_PUBLISHER=build/publisher/tally-publisher \\
        python3 -m tests.attacks.attacks [attack ...]
    python3 -m tests.attacks.attacks --root OLD_CHECKOUT --report   # "before" figures

--root takes the edge configuration and the binaries (OLD/build/...) from another checkout,
--report prints the figures without failing: together they measure what today's code does.
"""
import argparse
import os
import re
import selectors
import signal
import socket
import subprocess
import sys
import tempfile
import threading
import time

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(os.path.dirname(HERE))
from kit import edge, http_reader, procs, resp
from kit import load as tally_load
from kit.signed import signature

LEGIT, BYSTANDER = "127.0.0.1", "127.0.0.3"
ATTACKER = "127.0.0.2"  # each attack speaks from its own address: 127.0.0.2, .4, .5, ...
CLUSTER_SECRET = "attack-suite-cluster-secret-0123"
RSS_BOUND_KIB = 8 * 1024  # a replica's RSS may grow by at most this during an attack


def connect(port, source, timeout=5.0):
    s = socket.socket()
    s.settimeout(timeout)
    s.bind((source, 0))
    s.connect(("127.0.0.1", port))
    return s


def exchange(port, data, source=None, timeout=3.0):
    """Sends `data` from `source` (default: the attacker); returns what came back before a
    close or `timeout` (nothing if the connection was refused)."""
    try:
        return http_reader.raw_exchange(port, data, timeout, source or ATTACKER)[0]
    except OSError:
        return b""


def status_of(raw):
    m = re.match(rb"HTTP/1\.[01] (\d{3})", raw)
    return int(m.group(1)) if m else None


class Load(tally_load.Load):
    """The legitimate client (kit/load.py): one keep-alive connection from `source` through
    the edge, GET / one at a time at `rate` a second, a new connection after an error, for as
    long as the suite runs. reset() opens the books and figures() reads them: exact while the
    load is paused (pause(): its request in flight answered)."""

    def __init__(self, port, rate=100, source=LEGIT):
        super().__init__(["http://127.0.0.1:%d/" % port], duration=24 * 3600.0, concurrency=1, rate=rate,
                         timeout=10, give_up=float("inf"), source=source)
        self.reset()
        self.start()

    def reset(self):
        self.books = self.snapshot()

    def figures(self):
        d = self.since(self.books)
        return dict(attempted=d["attempted"], acked=d["acked"], statuses=d["statuses"], errors=d["errors"],
                    gap_ms=int(d["gap"] * 1000))

    def stop(self):
        super().stop()
        self.join()


class Suite:
    def __init__(self, root, report):
        self.root, self.report = root, report
        self.dir = tempfile.mkdtemp(prefix="tally-attacks-")
        self.procs = []
        self.failures = []
        bindir = os.path.join(root, "build") if root != ROOT else None
        if bindir:
            procs.REPLICA = os.path.join(bindir, "replica", "tally-replica")
            procs.PUBLISHER = os.path.join(bindir, "publisher", "tally-publisher")

    # --- the system -------------------------------------------------------------------
    def start(self):
        self.broker = self.add(procs.SecureBroker(self.dir, root=self.root)).start()
        # Redis as make-secrets.sh renders it: one ACL user per role where the checkout has
        # them, else its single password; the replicas get what the shipped files give them.
        acl = os.path.join(self.broker.conf_dir, "redis-auth.conf")
        pw = procs.SecureBroker.PASSWORDS["REDIS_PASSWORD"]
        self.redis = self.add(procs.Redis(self.dir, password=pw, acl=acl)).start()
        if os.path.exists(os.path.join(self.broker.conf_dir, "secrets", "redis-replica.txt")):
            with open(os.path.join(self.broker.conf_dir, "secrets", "redis-replica.txt")) as f:
                self.redis_user = ("tally-replica", f.read())
        else:
            self.redis_user = (pw,)
        self.replica_env = {"MQTT_USERNAME": "tally-replica", "MQTT_PASSWORD": "replica-pw",
                            "REDIS_PASSWORD": self.redis_user[-1], "CLUSTER_SECRET": CLUSTER_SECRET}
        if len(self.redis_user) == 2:
            self.replica_env["REDIS_USERNAME"] = self.redis_user[0]
        self.replicas = [self.replica("a%d" % i, self.replica_env) for i in (1, 2)]
        self.edge_port, self.stats_port = procs.free_port(), procs.free_port()
        with open(os.path.join(self.root, "docker", "haproxy.cfg")) as f:
            cfg = edge.render_edge(f.read(), self.edge_port, self.stats_port, self.replicas)
        path = os.path.join(self.dir, "haproxy.cfg")
        with open(path, "w") as f:
            f.write(cfg)
        # The request-rate share is lowered so the flood reaches it within seconds.
        env = {"LB_CONFIG": path, "EDGE_SOURCE_RATE": os.environ.get("EDGE_SOURCE_RATE", "3000"),
               "LB_STATS_PASSWORD": None, "LB_STATS_PASSWORD_FILE": os.path.join(self.dir, "lb-stats.txt")}
        with open(env["LB_STATS_PASSWORD_FILE"], "w") as f:
            f.write("stats-pw")
        entry = os.path.join(self.root, "docker", "lb-entrypoint.sh")
        argv = [entry] if os.path.exists(entry) else ["haproxy", "-W", "-db", "-f", path]
        self.edge = self.add(procs.Proc("haproxy", argv, self.dir, env)).start()
        procs.wait_for(lambda: status_of(exchange(self.edge_port, b"GET /readyz HTTP/1.1\r\nHost: e\r\n\r\n",
                                                    source=LEGIT, timeout=1)) == 200,
                         timeout=15, what="the edge to pass a request")
        self.load = Load(self.edge_port)

    def replica(self, name, mqtt):
        return self.add(procs.Replica(self.dir, self.redis, self.broker, name, extra_env=mqtt)).start()

    def add(self, p):
        self.procs.append(p)
        return p

    def stop(self):
        if hasattr(self, "load"):
            self.load.stop()
        for p in reversed(self.procs):
            p.stop()

    def wait_total(self, at_least, timeout=5.0):
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.redis.total() >= at_least:
                return True
            time.sleep(0.01)
        return False

    # --- bookkeeping --------------------------------------------------------------------
    def check(self, ok, what):
        if not ok:
            self.failures.append(what)
            print("  FAILED: %s" % what, flush=True)

    def run(self, index, name, attack):
        """Runs one attack under the legitimate load; prints its figures line."""
        global ATTACKER
        # Its own source, so one attack's per-source shares do not spill into the next.
        ATTACKER = "127.0.0.%d" % (2 if index == 0 else 3 + index)
        # The figures are exact: the load holds back (its one request in flight answered)
        # while the books open and close, so no request straddles them.
        self.load.pause()
        total0 = self.redis.total()
        self.load.reset()
        self.load.resume()
        extra = attack() or {}
        time.sleep(0.3)
        self.load.pause()
        f = self.load.figures()
        delta = self.redis.total() - total0
        self.load.resume()
        counted_by_attack = extra.pop("counting_attempts", 0)
        delta += extra.pop("_restored_away", 0)  # a deliberate restore took that much away
        attempted = f["attempted"] + counted_by_attack
        lost = max(0, f["acked"] - delta)
        dup = max(0, delta - attempted)
        other = {k: v for k, v in f["statuses"].items() if k not in (200, 503)}
        line = ("attack %-10s attempted %d, acknowledged %d, total %d, lost %d, duplicated %d, 503s %d, "
                "other %s, errors %d, longest without a 200 %d ms | %s"
                % (name, attempted, f["acked"], delta, lost, dup, f["statuses"].get(503, 0),
                   other or "none", f["errors"], f["gap_ms"],
                   ", ".join("%s %s" % (k.replace("_", " "), v) for k, v in extra.items() if not k.startswith("_"))))
        print(line, flush=True)
        self.check(lost == 0 and dup == 0, "%s: Redis delta %d for %d acknowledged of %d attempted" % (name, delta, f["acked"], attempted))
        self.check(not other and f["errors"] == 0, "%s: the legitimate load got %r, %d errors" % (name, f["statuses"], f["errors"]))
        self.check(f["gap_ms"] < extra.get("_gap_bound_ms", 2000), "%s: %d ms without a 200" % (name, f["gap_ms"]))
        return extra

    # --- the attacks ---------------------------------------------------------------------
    def attack_bodies(self):
        """Item 1: huge announced bodies, at a replica directly and through the edge."""
        rep = self.replicas[0]
        rss0 = peak = rep.rss_kib()
        answers = {}
        stop = threading.Event()

        def sample():
            nonlocal peak
            while not stop.is_set():
                peak = max(peak, rep.rss_kib())
                time.sleep(0.02)

        sampler = threading.Thread(target=sample)
        sampler.start()
        chunk = b"x" * (1 << 20)
        threads = []

        def send(port):
            head = b"POST / HTTP/1.1\r\nHost: e\r\nContent-Length: 1000000000\r\n\r\n"
            try:
                s = connect(port, ATTACKER, timeout=5)
            except OSError:
                return
            with s:
                got = b""
                try:
                    s.sendall(head)
                    for _ in range(30):
                        s.sendall(chunk)
                except OSError:
                    pass
                try:
                    s.settimeout(2)
                    got = s.recv(4096)
                except OSError:
                    pass
                st = status_of(got)
                answers[st] = answers.get(st, 0) + 1

        for port in [rep.port] * 4 + [self.edge_port] * 4:
            threads.append(threading.Thread(target=send, args=(port,)))
        for t in threads:
            t.start()
        for t in threads:
            t.join(30)
        time.sleep(0.3)
        stop.set()
        sampler.join()
        grew = peak - rss0
        self.check(grew < RSS_BOUND_KIB, "bodies: a replica's RSS grew by %d KiB (bound %d)" % (grew, RSS_BOUND_KIB))
        # The replica answers 413; the edge refuses the method first (405).
        self.check(set(answers) <= {413, 405, None} and answers.get(413, 0) >= 4,
                   "bodies: 8 requests with 30 MB bodies were answered %r" % answers)
        return {"replica RSS": "%d -> peak %d KiB" % (rss0, peak), "answers": answers}

    def attack_slowloris(self):
        """Item 2: 4200 half-sent heads from one source, a byte a second, for 12 s; a
        bystander probes /healthz meanwhile."""
        sel = selectors.DefaultSelector()
        socks, refused = [], 0
        for _ in range(4200):
            s = socket.socket()
            s.setblocking(False)
            s.bind((ATTACKER, 0))
            try:
                s.connect_ex(("127.0.0.1", self.edge_port))
            except OSError:
                refused += 1
                s.close()
                continue
            socks.append(s)
        probes = {"ok": 0, "failed": 0}
        t_end = time.monotonic() + 12
        head = b"GET / HTTP/1.1\r\nHost: e\r\nX-a: "
        i = 0
        while time.monotonic() < t_end:
            for s in socks:
                try:
                    s.send(head[i:i + 1] if i < len(head) else b"a")
                except OSError:
                    pass
            i += 1
            st = status_of(exchange(self.edge_port, b"GET /healthz HTTP/1.1\r\nHost: e\r\n\r\n", source=BYSTANDER,
                                    timeout=1))
            probes["ok" if st == 200 else "failed"] += 1
            time.sleep(0.5)
        alive = 0
        for s in socks:
            try:
                alive += 1 if s.send(b"a") == 1 else 0
            except OSError:
                pass
            s.close()
        sel.close()
        self.check(probes["failed"] == 0, "slowloris: %d of %d bystander probes failed" % (probes["failed"], sum(probes.values())))
        self.check(alive == 0, "slowloris: %d half-sent heads were still open after 12 s" % alive)
        return {"bystander probes ok": "%d/%d" % (probes["ok"], sum(probes.values())),
                "heads still open after 12 s": alive}

    def attack_h2c(self):
        """Item 3: an h2c upgrade through the edge, then HTTP/2 stream 3 asks /metrics."""
        import base64
        settings = base64.urlsafe_b64encode(b"").decode()
        req = ("GET /healthz HTTP/1.1\r\nHost: e\r\nConnection: Upgrade, HTTP2-Settings\r\nUpgrade: h2c\r\n"
               "HTTP2-Settings: %s\r\n\r\n" % settings).encode()
        preface = b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n" + b"\x00\x00\x00\x04\x00\x00\x00\x00\x00"
        # HEADERS on stream 3, END_STREAM|END_HEADERS, HPACK literals: :method GET (index 2),
        # :scheme http (6), :path /metrics (literal, name index 4), :authority e (literal, 1).
        block = b"\x82\x86\x04\x08/metrics\x01\x01e"
        headers = len(block).to_bytes(3, "big") + b"\x01\x05" + (3).to_bytes(4, "big") + block
        out = exchange(self.edge_port, req + preface + headers, timeout=2)
        switched = status_of(out) == 101
        leaked = b"tally_" in out
        self.check(not switched and not leaked, "h2c: the edge answered %r%s" % (out[:40], ", /metrics leaked" if leaked else ""))
        return {"first answer": status_of(out), "metrics reached": leaked}

    def attack_events(self):
        """Item 6: one source opens 600 idle /events streams (more than both replicas' 256
        slots); a dashboard from another source must still get its stream."""
        socks, statuses = [], {}
        for _ in range(600):
            try:
                s = connect(self.edge_port, ATTACKER, timeout=3)
                s.sendall(b"GET /events HTTP/1.1\r\nHost: e\r\n\r\n")
                socks.append(s)
            except OSError:
                statuses["refused"] = statuses.get("refused", 0) + 1
        for s in socks:
            try:
                s.settimeout(2)
                st = status_of(s.recv(256))
            except OSError:
                st = None
            statuses[st] = statuses.get(st, 0) + 1
        got = exchange(self.edge_port, b"GET /events HTTP/1.1\r\nHost: e\r\n\r\n", source=BYSTANDER, timeout=1.5)
        for s in socks:
            s.close()
        ok = status_of(got) == 200 and b"event: total" in got
        self.check(ok, "events: a bystander's /events got %r" % got[:60])
        return {"attacker's streams": statuses, "bystander's stream": status_of(got)}

    def attack_flood(self):
        """Item 2 too: one source floods GET / (pipelined, 4 connections) for 5 s; the edge's
        request-rate share answers it 429 past EDGE_SOURCE_RATE per 10 s."""
        counts = {}
        sent = [0]
        lock = threading.Lock()
        t_end = time.monotonic() + 5

        def worker():
            try:
                s = connect(self.edge_port, ATTACKER, timeout=5)
            except OSError:
                return
            f = s.makefile("rb")
            try:
                while time.monotonic() < t_end:
                    s.sendall(b"GET / HTTP/1.1\r\nHost: e\r\n\r\n" * 16)
                    with lock:
                        sent[0] += 16
                    for _ in range(16):
                        st, _, _ = http_reader.read_response(f)
                        with lock:
                            counts[st] = counts.get(st, 0) + 1
            except (OSError, ConnectionError, ValueError, IndexError):
                pass
            s.close()

        ts = [threading.Thread(target=worker) for _ in range(4)]
        for t in ts:
            t.start()
        for t in ts:
            t.join(30)
        self.check(counts.get(429, 0) > 0, "flood: no 429 for %d requests in 5 s from one source" % sent[0])
        return {"attacker's answers": counts, "counting_attempts": sent[0]}

    def attack_stats(self):
        """Item 7: HAProxy's stats page (internal network) answers only with its password;
        its /healthz (the container's health check) answers without."""
        import base64
        anon = status_of(exchange(self.stats_port, b"GET / HTTP/1.1\r\nHost: e\r\n\r\n", timeout=1))
        guess = status_of(exchange(self.stats_port, b"GET / HTTP/1.1\r\nHost: e\r\nAuthorization: Basic "
                                   + base64.b64encode(b"tally:tally") + b"\r\n\r\n", timeout=1))
        right = status_of(exchange(self.stats_port, b"GET / HTTP/1.1\r\nHost: e\r\nAuthorization: Basic "
                                   + base64.b64encode(b"tally:stats-pw") + b"\r\n\r\n", timeout=1))
        health = status_of(exchange(self.stats_port, b"GET /healthz HTTP/1.1\r\nHost: e\r\n\r\n", timeout=1))
        self.check(anon == 401 and guess == 401 and right == 200 and health == 200,
                   "stats: anonymous %s, wrong password %s, right password %s, /healthz %s" % (anon, guess, right, health))
        return {"stats anonymous": anon, "wrong password": guess, "with the password": right, "healthz": health}

    def attack_retry(self):
        """Item 4: a replica dies (kill -9) between sending a batch and answering: the edge
        must not replay the request on the other replica."""
        victim = self.replicas[1]
        # The legitimate client holds back while the attacker's request finds the victim's
        # batch (so the batch is the attacker's), and goes on as soon as the victim is dead.
        self.load.pause()
        before = victim.metric("tally_redis_batches_total")
        total0 = self.redis.total()
        self.redis.command("CLIENT", "PAUSE", "3000", "WRITE")
        answers, sent = [], 0
        holders = []
        deadline = time.monotonic() + 1.0
        # One request at a time until one is in a batch at the paused Redis on the victim.
        while time.monotonic() < deadline and victim.metric("tally_redis_batches_total") == before:
            s = connect(self.edge_port, ATTACKER, timeout=10)
            s.sendall(b"GET / HTTP/1.1\r\nHost: e\r\n\r\n")
            holders.append(s)
            sent += 1
            time.sleep(0.05)
        in_batch = victim.metric("tally_redis_batches_total") > before
        # Frozen with its batch sent, the victim cannot answer: Redis then applies the batch
        # (its reply waits in the frozen process's socket), and the victim dies unanswered.
        victim.signal(signal.SIGSTOP)
        self.redis.command("CLIENT", "UNPAUSE")
        applied = self.wait_total(total0 + sent)
        victim.kill9()
        self.load.resume()
        for s in holders:
            try:
                answers.append(status_of(s.recv(4096)))
            except OSError:
                answers.append(None)
            s.close()
        self.check(in_batch and applied, "retry: no request of the attacker's reached the victim's batch and Redis")
        # The victim comes back, so later runs find both replicas.
        self.replicas[1] = self.replica(victim.instance, self.replica_env)
        return {"attacker's answers": answers, "counting_attempts": sent, "_gap_bound_ms": 4000}

    def attack_broker(self):
        """Item 5: with the watchers' password (browsers carry it, so it is public), connect
        on a watcher listener with a replica's client id, its public INSTANCE_ID, again and
        again: the replica must stay on the broker and its Last Will must not fire."""
        victim = self.replicas[0]
        b = self.broker
        # What the outside sees of the victim's status, on a watcher port, all the while.
        statuses = subprocess.Popen(["mosquitto_sub", "-h", "127.0.0.1", "-p", str(b.watch_port), "-t",
                                     "replicas/%s/status" % victim.instance, "-u", "watcher", "-P", "watcher-pw"],
                                    stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True)
        down, samples, accepted = 0, 0, 0
        attempts = 12
        try:
            for _ in range(attempts):
                # unbuffered: the process is killed, and its "received CONNACK" line must be out by then
                argv = ["stdbuf", "-o0", "mosquitto_sub", "-h", "127.0.0.1", "-p", str(b.watch_port), "-i", victim.instance, "-t",
                        "total_count", "-u", "watcher", "-P", "watcher-pw", "-d"]
                taker = subprocess.Popen(argv, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
                deadline = time.monotonic() + 0.4
                while time.monotonic() < deadline:
                    samples += 1
                    down += victim.metric("tally_mqtt_connected") != 1
                    time.sleep(0.05)
                taker.kill()
                out = taker.communicate()[0]
                accepted += "CONNACK (0)" in out
        finally:
            time.sleep(0.3)
            statuses.terminate()
            seen = statuses.communicate()[0]
        offline = seen.count('"offline"')
        # Between attempts, the victim reconnects by itself; let it finish before the next attack.
        procs.wait_for(lambda: victim.metric("tally_mqtt_connected") == 1, timeout=15,
                         what="the victim back on the broker")
        self.check(accepted == 0, "broker: %d of %d takeovers accepted" % (accepted, attempts))
        self.check(down == 0, "broker: the replica was off MQTT in %d of %d samples" % (down, samples))
        self.check(offline == 0, "broker: %d offline statuses of the replica appeared" % offline)
        return {"takeovers accepted": "%d/%d" % (accepted, attempts), "replica off MQTT in samples": "%d/%d" % (down, samples),
                "offline statuses": offline}

    def attack_redis(self):
        """Item 7: a replica faces the internet; whoever takes one over holds its Redis
        credentials. With them, try what no replica needs. Each command is queued in a
        MULTI and discarded: Redis checks the ACL when it queues, and nothing runs."""
        user = self.redis_user if len(self.redis_user) == 2 else self.redis_user[0]
        tries = [("FLUSHALL",), ("SET", "total_count", "0"), ("CONFIG", "SET", "appendonly", "no"),
                 ("DEL", "total_count")]
        allowed = []
        for cmd in tries:
            try:
                resp.session("127.0.0.1", self.redis.port, user, ("MULTI",), cmd, ("DISCARD",))
                allowed.append(cmd[0])
            except RuntimeError:
                pass
        counts = resp.session("127.0.0.1", self.redis.port, user, ("INCRBY", "total_count", "0"))[0] is not None
        self.check(not allowed and counts, "redis: the replica's user may run %s (INCRBY: %s)" % (allowed, counts))
        return {"commands allowed": "/".join(allowed) or "none", "of": len(tries), "INCRBY allowed": counts}

    def attack_epoch(self):
        """Item 7: the operator restores an older Redis (5 increments fewer) and raises the
        epoch as docs/operations.md says; then a signed total recorded before the restore is
        replayed, retained. Neither the replicas' caches nor the replay may lift Redis back:
        the legitimate load's requests after the restore are counted once, from the restored
        total."""
        procs.wait_for(lambda: self.redis.total() >= 20, what="a total worth restoring")
        self.load.pause()
        before = self.redis.total()
        restored = before - 5
        self.redis.command("SET", "total_count", str(restored))
        self.redis.command("SET", "tally:epoch", str(int(time.time())))
        self.load.resume()
        recorded = str(before + 1000)  # a total signed in the old epoch (any signed one is)
        sig = signature("total_count", recorded, secret=CLUSTER_SECRET)
        subprocess.run(["mosquitto_pub", "-V", "mqttv5", "-h", "127.0.0.1", "-p", str(self.broker.port), "-t",
                        "total_count", "-m", recorded, "-r", "-q", "1", "-u", "tally-replica", "-P", "replica-pw",
                        "-D", "publish", "user-property", "tally-sig", sig], check=True, timeout=10,
                       capture_output=True)
        time.sleep(1.0)
        highest_after = self.redis.total()
        return {"restored to": restored, "from": before, "replayed signed total": recorded,
                "Redis a second later": highest_after, "_restored_away": 5}


ATTACKS = ["bodies", "slowloris", "h2c", "events", "flood", "stats", "retry", "broker", "redis", "epoch"]


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("attacks", nargs="*", default=ATTACKS)
    ap.add_argument("--root", default=ROOT, help="checkout whose edge config and build/ binaries to attack")
    ap.add_argument("--report", action="store_true", help="print the figures, never fail")
    args = ap.parse_args()
    if not procs.REPLICA and args.root == ROOT:
        sys.exit("attacks.py: set TALLY_REPLICA (and TALLY_PUBLISHER)")
    suite = Suite(os.path.abspath(args.root), args.report)
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(1))
    try:
        suite.start()
        for name in args.attacks:
            suite.run(ATTACKS.index(name), name, getattr(suite, "attack_" + name))
    finally:
        suite.stop()
    if suite.failures and not args.report:
        print("%d check(s) failed" % len(suite.failures))
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
