"""What an outsider can send to a replica's or a publisher's HTTP port: a request that
announces a body is refused before the body is read, the HTTP/1 upgrade to h2c is not
offered, HTTP/2 streams per connection are few, open connections are capped without
stopping the ones the process has, and an event stream ends after its lifetime."""
import os
import signal
import socket
import subprocess
import time

from kit.edge import render_edge
from kit.http_reader import parse_answer, raw_exchange, read_response
from kit.procs import ROOT, free_port, wait_for, Proc
from kit.testcase import ClusterTest


def raw(port, data, timeout=3.0):
    return raw_exchange(port, data, timeout)


class BodyTest(ClusterTest):
    one_replica = "s1"

    def test_a_request_announcing_a_body_is_refused_unread(self):
        rss = self.rep.rss_kib()
        t0 = time.monotonic()
        # 1 GB announced, 4 MB sent: the answer comes at once, with the body unread.
        out, closed = raw(self.rep.port, b"POST / HTTP/1.1\r\nHost: t\r\nContent-Length: 1000000000\r\n\r\n"
                          + b"x" * (4 << 20))
        self.assertTrue(out.startswith(b"HTTP/1.1 413"), out[:200])
        self.assertLess(time.monotonic() - t0, 2.5)
        self.assertIn(b"connection: close", out.lower())
        self.assertTrue(closed, "the connection is closed after the 413")
        # A chunked body is refused at its first chunk (a head alone is closed at the 10 s head
        # timeout, holding no buffer meanwhile).
        for head in (b"GET / HTTP/1.1\r\nHost: t\r\nContent-Length: 5\r\n\r\nhello",
                     b"GET / HTTP/1.1\r\nHost: t\r\nTransfer-Encoding: chunked\r\n\r\n5\r\nhello\r\n0\r\n\r\n",
                     b"POST /total HTTP/1.1\r\nHost: t\r\nTransfer-Encoding: chunked\r\n\r\n1\r\n"):
            out, closed = raw(self.rep.port, head)
            self.assertTrue(out.startswith(b"HTTP/1.1 413") and closed, (head, out[:200]))
        self.assertLess(self.rep.rss_kib() - rss, 2048, "no body was kept")
        self.assertEqual(self.r.total(), 0, "nothing was counted")
        # An empty body is no body: a plain GET / with Content-Length: 0 counts.
        out, _ = raw(self.rep.port, b"GET / HTTP/1.1\r\nHost: t\r\nContent-Length: 0\r\n\r\n", timeout=1)
        self.assertTrue(parse_answer(out.split(b"\r\n\r\n", 1)[1]), out)
        self.assertEqual(self.r.total(), 1)

    def test_h2c_upgrade_is_not_offered(self):
        out, _ = raw(self.rep.port, b"GET /healthz HTTP/1.1\r\nHost: t\r\nConnection: Upgrade, HTTP2-Settings\r\n"
                     b"Upgrade: h2c\r\nHTTP2-Settings: AAMAAABkAARAAAAAAAIAAAAA\r\n\r\n", timeout=1)
        self.assertTrue(out.startswith(b"HTTP/1.1 200"), out[:200])
        self.assertNotIn(b"101", out.split(b"\r\n")[0])

    def test_http2_prior_knowledge_is_refused_too(self):
        # h2o 2.2.5 speaks HTTP/2 on a cleartext port only through the upgrade, so with the
        # upgrade off the preface is a bad HTTP/1 request: no HTTP/2 reaches a route here.
        out, closed = raw(self.rep.port, b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n" + b"\x00\x00\x00\x04\x00\x00\x00\x00\x00")
        self.assertTrue(out.startswith(b"HTTP/1.1 400") and closed, out[:200])


class CapTest(ClusterTest):
    def test_the_cap_pauses_accepting_and_keeps_serving(self):
        r = self.redis()
        b = self.broker()
        rep = self.replica(r, b, instance="cap", extra_env={"MAX_CONNECTIONS": "4", "THREADS": "1"})
        # The scrape is itself one connection: 1 means no other is open.
        wait_for(lambda: rep.metric("tally_http_connections") == 1, what="the readiness probes to close")
        req = b"GET / HTTP/1.1\r\nHost: t\r\n\r\n"
        conns = []
        for _ in range(4):
            s = socket.create_connection(("127.0.0.1", rep.port), timeout=3)
            s.sendall(req)
            self.assertTrue(s.recv(4096).startswith(b"HTTP/1.1 200"))
            conns.append(s)
        late = socket.create_connection(("127.0.0.1", rep.port), timeout=3)  # the kernel's backlog takes it
        late.sendall(req)
        late.settimeout(0.5)
        with self.assertRaises(socket.timeout, msg="a fifth connection waits while four are open"):
            late.recv(4096)
        for s in conns:  # the open ones go on counting
            s.sendall(req)
            self.assertTrue(s.recv(4096).startswith(b"HTTP/1.1 200"))
        conns[0].sendall(b"GET /metrics HTTP/1.1\r\nHost: t\r\n\r\n")
        metrics = b""
        while b"tally_http_connection_cap_reached_total " not in metrics or not metrics.endswith(b"\n"):
            metrics += conns[0].recv(65536)
        self.assertIn(b"\ntally_http_connections 4\n", metrics)
        self.assertNotIn(b"\ntally_http_connection_cap_reached_total 0\n", metrics)
        conns.pop().close()
        late.settimeout(3)
        self.assertTrue(late.recv(4096).startswith(b"HTTP/1.1 200"), "a free slot takes the waiting one")
        for s in conns + [late]:
            s.close()
        self.assertEqual(r.total(), 9, "every 200 was counted once")


class EventLifetimeTest(ClusterTest):
    def test_a_stream_ends_after_its_lifetime(self):
        r = self.redis()
        b = self.broker()
        rep = self.replica(r, b, instance="ev", extra_env={"EVENTS_MAX_LIFETIME_S": "1"})
        t0 = time.monotonic()
        with socket.create_connection(("127.0.0.1", rep.port), timeout=5) as s:
            s.sendall(b"GET /events HTTP/1.1\r\nHost: t\r\n\r\n")
            got = b""
            while not got.endswith(b"\r\n0\r\n\r\n"):  # the chunked stream's last chunk
                data = s.recv(65536)
                self.assertTrue(data, "the stream ends with its last chunk, not a cut")
                got += data
        took = time.monotonic() - t0
        self.assertTrue(got.startswith(b"HTTP/1.1 200") and b"event: total" in got, got[:300])
        self.assertTrue(0.85 <= took < 2.5, "ended after %.2f s, for a 1 s lifetime less up to a tenth" % took)
        self.assertEqual(rep.metric("tally_events_expired_total"), 1)
        self.assertEqual(rep.metric("tally_events_clients"), 0)


class PublisherSurfaceTest(ClusterTest):
    def test_the_publisher_refuses_bodies_and_upgrades_too(self):
        r = self.redis()
        b = self.broker()
        pub = self.publisher(r, b, "p1")
        out, closed = raw(pub.http_port, b"POST /metrics HTTP/1.1\r\nHost: t\r\nContent-Length: 1000000000\r\n\r\n")
        self.assertTrue(out.startswith(b"HTTP/1.1 413") and closed, out[:200])
        out, _ = raw(pub.http_port, b"GET /healthz HTTP/1.1\r\nHost: t\r\nConnection: Upgrade, HTTP2-Settings\r\n"
                     b"Upgrade: h2c\r\nHTTP2-Settings: AAMAAABkAARAAAAAAAIAAAAA\r\n\r\n", timeout=1)
        self.assertTrue(out.startswith(b"HTTP/1.1 200"), out[:200])
        self.assertEqual(pub.metric("tally_http_connection_cap_reached_total"), 0)


class EdgeSettingsTest(ClusterTest):
    def test_a_bad_share_is_one_line_and_exit_2(self):
        entry = os.path.join(ROOT, "docker", "lb-entrypoint.sh")
        for var, value in (("EDGE_SOURCE_RATE", "lots"), ("EDGE_SOURCE_CONNS", "0"), ("EDGE_SOURCE_EVENTS", "-3"),
                           ("EDGE_SOURCE_RATE", "08")):
            with self.subTest(var=var, value=value):
                p = subprocess.run(["sh", entry], env=dict(os.environ, **{var: value, "LB_CONFIG": "/nonexistent"}),
                                   capture_output=True, text=True, timeout=10)
                self.assertEqual(p.returncode, 2, p.stderr)
                self.assertEqual(p.stderr.strip().splitlines(), ["lb: %s must be a whole number above 0, not '%s'" % (var, value)])


class EdgeKeysTest(ClusterTest):
    """EDGE_IDEMPOTENCY_KEYS=on: the shipped haproxy.cfg (rendered for loopback) gives every
    GET / a key of its own and may then replay a request that reached a replica. The case
    issue 13 reproduced: a replica killed with a batch in flight at a paused Redis. Without
    keys the client gets 502 and Redis counted the request; with them, one 200 and Redis +1."""

    servers = True

    def setUp(self):
        super().setUp()
        self.reps = [self.replica(self.r, self.b, instance=n) for n in ("ea", "ec")]

    def edge(self, keys):
        port = free_port()
        path = os.path.join(self.dir, "haproxy-%s.cfg" % keys)
        with open(os.path.join(ROOT, "docker", "haproxy.cfg")) as f:
            cfg = render_edge(f.read(), port, free_port(), self.reps)
        with open(path, "w") as f:
            f.write(cfg)
        env = {"LB_CONFIG": path, "LB_STATS_PASSWORD": "stats-pw", "EDGE_IDEMPOTENCY_KEYS": keys}
        self.add(Proc("edge-" + keys, ["sh", os.path.join(ROOT, "docker", "lb-entrypoint.sh")], self.dir, env)).start()
        wait_for(lambda: raw(port, b"GET /readyz HTTP/1.1\r\nHost: e\r\nConnection: close\r\n\r\n", 1)[0]
                 .startswith(b"HTTP/1.1 200"),
                 timeout=15, what="the edge to pass a request")
        return port

    def test_a_bad_setting_is_one_line_and_exit_2(self):
        p = subprocess.run(["sh", os.path.join(ROOT, "docker", "lb-entrypoint.sh")],
                           env=dict(os.environ, EDGE_IDEMPOTENCY_KEYS="yes", LB_CONFIG="/nonexistent"),
                           capture_output=True, text=True, timeout=10)
        self.assertEqual(p.returncode, 2)
        self.assertEqual(p.stderr.strip().splitlines(), ["lb: EDGE_IDEMPOTENCY_KEYS must be on or off, not 'yes'"])

    def test_keys_on_gives_each_request_a_key_and_tells_it(self):
        port = self.edge("on")
        s = socket.create_connection(("127.0.0.1", port), timeout=10)
        s.sendall(b"GET / HTTP/1.1\r\nHost: e\r\n\r\n" * 2 + b"GET / HTTP/1.1\r\nHost: e\r\nIdempotency-Key: mine\r\n\r\n")
        f = s.makefile("rb")
        answers = [read_response(f) for _ in range(3)]
        s.close()
        self.assertEqual([a[0] for a in answers], [200, 200, 200])
        edge_keys = [a[1].get("idempotency-key") for a in answers]
        self.assertEqual(len(set(edge_keys[:2])), 2, "one key per request: %r" % edge_keys)
        self.assertIsNone(edge_keys[2], "a client's own key goes through; the edge adds none")
        self.assertEqual(self.r.command("EXISTS", "tally:idem:" + edge_keys[0], "tally:idem:mine"), 2)
        # The key the edge told lets the client retry that request itself.
        st, h, body = _ask(port, edge_keys[0])
        self.assertEqual((st, h.get("idempotent-replayed")), (200, "true"))
        self.assertEqual(body, answers[0][2])
        self.assertEqual(self.r.total(), 3)
        # Other paths get no key.
        self.assertNotIn(b"idempotency-key", raw(port, b"GET /total HTTP/1.1\r\nHost: e\r\nConnection: close\r\n\r\n")[0]
                         .lower())

    def kill_mid_batch(self, port):
        """Requests one at a time through the edge until one sits in the victim's batch at a
        paused Redis; then Redis applies it while the victim is frozen, and the victim dies
        unanswered. Returns (the answers, how many requests were sent, the victim)."""
        victim = self.reps[1]
        before = victim.metric("tally_redis_batches_total")
        total0 = self.r.total()

        def batches():
            return sum(rep.metric("tally_redis_batches_total") for rep in self.reps)

        self.r.command("CLIENT", "PAUSE", "4000", "WRITE")
        socks, b0 = [], batches()
        deadline = time.monotonic() + 2.0
        while time.monotonic() < deadline and victim.metric("tally_redis_batches_total") == before:
            s = socket.create_connection(("127.0.0.1", port), timeout=15)
            s.sendall(b"GET / HTTP/1.1\r\nHost: e\r\n\r\n")
            socks.append(s)
            # Redis is paused: each request sits in a batch of its own, at one replica.
            wait_for(lambda: batches() >= b0 + len(socks), timeout=2, what="the request to reach a batch")
        self.assertGreater(victim.metric("tally_redis_batches_total"), before, "a request reached the victim's batch")
        victim.signal(signal.SIGSTOP)
        self.r.command("CLIENT", "UNPAUSE")
        wait_for(lambda: self.r.total() == total0 + len(socks), what="Redis to apply every batch")
        victim.kill9()
        answers = []
        for s in socks:
            try:
                answers.append(read_response(s.makefile("rb")))
            except OSError:
                answers.append((None, {}, b""))
            s.close()
        return answers, len(socks), total0

    def test_keys_on_a_request_counted_by_a_replica_that_died_is_answered_once(self):
        port = self.edge("on")
        answers, sent, total0 = self.kill_mid_batch(port)
        self.assertEqual([a[0] for a in answers], [200] * sent, "every client got its answer")
        replayed = [a for a in answers if a[1].get("idempotent-replayed") == "true"]
        self.assertGreaterEqual(len(replayed), 1, "the victim's request was replayed at the other replica")
        self.assertTrue(all(b"instance ec:" in a[2] for a in replayed), "with the victim's stored answer")
        ms = sorted(parse_answer(a[2])[2] for a in answers)
        self.assertEqual(ms, list(range(total0 + 1, total0 + sent + 1)), "one M each")
        self.assertEqual(self.r.total(), total0 + sent, "Redis +1 per request")

    def test_keys_off_the_edge_does_not_replay_a_request_that_reached_a_replica(self):
        port = self.edge("off")
        answers, sent, total0 = self.kill_mid_batch(port)
        self.assertIn(502, [a[0] for a in answers], "the victim's request: 502, never replayed")
        self.assertEqual(self.r.total(), total0 + sent, "counted once, by the victim")


def _ask(port, key):
    with socket.create_connection(("127.0.0.1", port), timeout=10) as s:
        s.sendall(b"GET / HTTP/1.1\r\nHost: e\r\nIdempotency-Key: %s\r\n\r\n" % key.encode())
        return read_response(s.makefile("rb"))
