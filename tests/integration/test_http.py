"""The HTTP contract of one replica: exact answers, routes, methods, HEAD, what counts."""
import json
import socket

from kit.http_reader import parse_answer, read_response
from kit.procs import wait_for
from kit.testcase import undocumented_metrics, ClusterTest


class HttpTest(ClusterTest):
    one_replica = "web-1"

    def test_text_answer_is_exact(self):
        st, body, headers = self.rep.get("/")
        self.assertEqual(st, 200)
        self.assertEqual(body, "You are talking to instance web-1:%d.\n"
                               "This is request 1 to this instance and request 1 to the cluster.\n" % self.rep.port)
        self.assertTrue(headers["content-type"].startswith("text/plain"))
        self.assertEqual(int(headers["content-length"]), len(body))
        st, body, _ = self.rep.get("/")
        self.assertIn("This is request 2 to this instance and request 2 to the cluster.", body)
        self.assertEqual(self.r.total(), 2)

    def test_json_answer(self):
        self.r.command("SET", "total_count", "41")
        st, body, headers = self.rep.get("/", {"Accept": "application/json"})
        self.assertEqual(st, 200)
        self.assertEqual(headers["content-type"], "application/json")
        self.assertEqual(json.loads(body), {"instance": "web-1:%d" % self.rep.port, "instance_count": 1,
                                            "cluster_total": 42})
        self.assertEqual(body, '{"instance":"web-1:%d","instance_count":1,"cluster_total":42}' % self.rep.port)
        st, body, _ = self.rep.get("/", {"Accept": "text/html, application/json;q=0.9"})
        self.assertEqual(json.loads(body)["cluster_total"], 43)
        st, body, _ = self.rep.get("/", {"Accept": "application/json;q=0.1, text/plain"})
        self.assertTrue(parse_answer(body), body)

    def test_json_answer_names_the_site_once_there_is_one(self):
        eu = self.replica(self.r, self.b, instance="web-2", extra_env={"SITE": "eu-west"})
        st, body, _ = eu.get("/", {"Accept": "application/json"})
        self.assertEqual(st, 200)
        self.assertEqual(body, '{"instance":"web-2:%d","site":"eu-west","instance_count":1,"cluster_total":1}' %
                         eu.port)
        st, body, _ = eu.get("/")
        self.assertEqual(body, "You are talking to instance web-2:%d.\n"
                               "This is request 2 to this instance and request 2 to the cluster.\n" % eu.port,
                         "the text answer stays the seed's")
        self.assertIn("instance web-2:%d of site eu-west listening on" % eu.port, eu.output())

    def test_query_string_still_counts(self):
        st, body, _ = self.rep.get("/?cache-buster=1")
        self.assertEqual(st, 200)
        self.assertEqual(self.r.total(), 1)

    def test_non_counting_routes(self):
        for path in ("/healthz", "/readyz", "/total", "/metrics", "/favicon.ico", "/nope", "/total/x"):
            self.rep.get(path)
        self.assertEqual(self.r.total(), 0, "only GET / may count")
        self.assertEqual(self.rep.count()[1:], (1, 1), "nor move N")

    def test_total_before_any_total_is_known_is_503_not_zero(self):
        # A replica that never reached Redis (nor heard a total) must not claim 0: a watcher
        # polling across a restart would see the cluster total go back.
        lone = self.replica(None, None, "lone", ready=False)
        wait_for(lambda: lone.get("/healthz")[0] == 200, what="the lone replica to listen")
        st, body, headers = lone.get("/total")
        self.assertEqual(st, 503)
        self.assertEqual(json.loads(body)["error"], "not_seeded")
        self.assertEqual(headers.get("retry-after"), "1")

    def test_total_serves_the_cache(self):
        self.rep.count()
        st, body, headers = self.rep.get("/total")
        self.assertEqual(st, 200)
        doc = json.loads(body)
        self.assertEqual(doc["cluster_total"], 1)
        self.assertGreaterEqual(doc["age_ms"], 0)
        # Redis changes behind the replica's back are not seen: /total never touches Redis.
        self.r.command("SET", "total_count", "1000")
        self.assertEqual(self.rep.total(), 1)

    def test_unknown_path_is_404_json(self):
        for path in ("/nope", "/favicon.ico", "/TOTAL"):
            st, body, headers = self.rep.get(path)
            self.assertEqual(st, 404, path)
            self.assertEqual(headers["content-type"], "application/json")
            self.assertEqual(json.loads(body)["error"], "not_found")

    def test_wrong_method_is_405_with_allow(self):
        for method, path in (("POST", "/"), ("DELETE", "/total"), ("PUT", "/metrics"), ("OPTIONS", "/")):
            st, body, headers = self.rep.get(path, method=method)
            self.assertEqual(st, 405, (method, path))
            self.assertEqual(headers.get("allow"), "GET, HEAD")
        self.assertEqual(self.r.total(), 0)

    def test_health_and_readiness(self):
        st, body, _ = self.rep.get("/healthz")
        self.assertEqual((st, json.loads(body)["status"]), (200, "ok"))
        st, body, _ = self.rep.get("/readyz")
        self.assertEqual(st, 200)
        self.assertEqual(json.loads(body), {"ready": True, "redis": True, "mqtt": True, "stopping": False})

    def test_metrics_are_prometheus_text(self):
        for _ in range(3):
            self.rep.count()
        self.rep.get("/nope")
        st, body, headers = self.rep.get("/metrics")
        self.assertEqual(st, 200)
        self.assertTrue(headers["content-type"].startswith("text/plain; version=0.0.4"))
        self.assertEqual(self.rep.metric("tally_counted_requests_total"), 3)
        self.assertEqual(self.rep.metric("tally_cluster_requests"), 3)
        self.assertIn('tally_http_responses_total{code="404"} 1', body)
        self.assertIn('tally_http_requests_total{route="count"} 3', body)
        for line in body.splitlines():
            if line.startswith("# TYPE") and line.endswith(" counter"):
                self.assertTrue(line.split()[2].endswith("_total"), line)
            if not line.startswith("#"):  # tally's own, or the standard process_* ones
                self.assertTrue(line.startswith(("tally_", "process_")), line)
        self.assertEqual(undocumented_metrics(body), [], "every metric has a line in docs/api.md")

    def test_malformed_http_gets_400_and_counts_nothing(self):
        for raw in (b"GARBAGE\r\n\r\n", b"GET / HTTP/9.9\r\n\r\n", b"\x00\x01\x02\r\n\r\n",
                    b"GET / HTTP/1.1\r\nHost: x\r\nContent-Length: nope\r\n\r\n"):
            with socket.create_connection(("127.0.0.1", self.rep.port), timeout=5) as s:
                s.sendall(raw)
                data = b""
                try:
                    while True:
                        chunk = s.recv(4096)
                        if not chunk:
                            break
                        data += chunk
                except socket.timeout:
                    pass
            self.assertTrue(data == b"" or data.startswith(b"HTTP/1.1 4") or data.startswith(b"HTTP/1.0 4"),
                            (raw, data[:80]))
        self.assertEqual(self.r.total(), 0)
        self.assertEqual(self.rep.count()[0], 200, "still serving")

    def test_oversized_request_line(self):
        with socket.create_connection(("127.0.0.1", self.rep.port), timeout=5) as s:
            s.sendall(b"GET /" + b"a" * 200000 + b" HTTP/1.1\r\nHost: x\r\n\r\n")
            data = s.recv(100)
        self.assertTrue(data == b"" or data.startswith(b"HTTP/1.1 4"), data)
        self.assertEqual(self.r.total(), 0)
        self.assertEqual(self.rep.count()[0], 200)

    def test_pipelined_requests_get_consecutive_totals_in_order(self):
        with socket.create_connection(("127.0.0.1", self.rep.port), timeout=10) as s:
            s.sendall(b"GET / HTTP/1.1\r\nHost: x\r\n\r\n" * 50)
            f = s.makefile("rb")
            ms = [parse_answer(read_response(f)[2])[2] for _ in range(50)]
        self.assertEqual(ms, list(range(1, 51)))


class HeadTest(ClusterTest):
    one_replica = "h"

    def raw(self, data):
        with socket.create_connection(("127.0.0.1", self.rep.port), timeout=5) as s:
            s.sendall(data)
            s.shutdown(socket.SHUT_WR)
            out = b""
            while True:
                chunk = s.recv(65536)
                if not chunk:
                    return out
                out += chunk

    def test_head_on_every_get_route_has_the_get_headers_and_no_body(self):
        self.assertEqual(self.rep.count()[0], 200)
        for path in ("/total", "/healthz", "/readyz", "/replicas", "/metrics", "/nope"):
            gst, gbody, gh = self.rep.get(path)
            hst, hbody, hh = self.rep.get(path, method="HEAD")
            self.assertEqual((hst, hbody), (gst, ""), path)
            self.assertEqual(hh["content-type"], gh["content-type"], path)
            if path not in ("/metrics", "/replicas"):  # their bodies change between two requests
                self.assertEqual(hh["content-length"], gh["content-length"], path)
        hst, hbody, hh = self.rep.get("/", method="HEAD", headers={"Accept": "application/json"})
        self.assertEqual((hst, hbody, hh["content-type"], hh["vary"]), (200, "", "application/json", "Accept"))

    def test_head_never_counts_and_keeps_the_connection_usable(self):
        out = self.raw(b"HEAD / HTTP/1.1\r\nHost: t\r\n\r\n" * 3 + b"GET / HTTP/1.1\r\nHost: t\r\nConnection: close\r\n\r\n")
        self.assertEqual(out.count(b"HTTP/1.1 200 OK"), 4)
        self.assertIn(b"This is request 1 to this instance and request 1 to the cluster.", out)
        self.assertEqual(self.r.total(), 1)

    def test_get_root_varies_on_accept(self):
        self.assertEqual(self.rep.get("/")[2]["vary"], "Accept")
