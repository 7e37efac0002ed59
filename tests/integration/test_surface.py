"""What an outsider can send to a replica's or a publisher's HTTP port: a request that
announces a body is refused before the body is read, the HTTP/1 upgrade to h2c is not
offered, HTTP/2 streams per connection are few, open connections are capped without
stopping the ones the process has, and an event stream ends after its lifetime."""
import os
import socket
import subprocess
import time

from harness import ROOT, TEXT_RE, ClusterTest, raw_exchange, wait_for


def raw(port, data, timeout=3.0):
    return raw_exchange(port, data, timeout)


class BodyTest(ClusterTest):
    def setUp(self):
        super().setUp()
        self.r = self.redis()
        self.b = self.broker()
        self.rep = self.replica(self.r, self.b, instance="s1")

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
        self.assertTrue(TEXT_RE.match(out.split(b"\r\n\r\n", 1)[1].decode()), out)
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
