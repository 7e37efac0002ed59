"""GET /events (Server-Sent Events) and GET /dashboard on real replicas, Redis and mosquitto:
what the stream says and when, that it never counts, that clients which never read cost the
counting path nothing, the cap, and the methods."""
import json
import socket
import time

from kit.load import counted
from kit.procs import wait_for
from kit.testcase import ClusterTest


class EventStream:
    """A raw HTTP/1.1 client of /events: reads the chunked stream, parses SSE events."""

    def __init__(self, port, host="127.0.0.1"):
        self.s = socket.create_connection((host, port), timeout=5)
        self.s.sendall(b"GET /events HTTP/1.1\r\nHost: t\r\nAccept: text/event-stream\r\n\r\n")
        self.buf = b""
        head = self._until(b"\r\n\r\n")
        lines = head.decode().split("\r\n")
        self.status = int(lines[0].split()[1])
        self.headers = {k.lower(): v.strip() for k, v in (ln.split(":", 1) for ln in lines[1:] if ":" in ln)}
        self.text = ""  # the event-stream text received so far (chunking removed)
        self.chunked = self.headers.get("transfer-encoding") == "chunked"

    def _until(self, mark):
        while mark not in self.buf:
            data = self.s.recv(65536)
            if not data:
                raise ConnectionError("closed")
            self.buf += data
        i = self.buf.index(mark) + len(mark)
        out, self.buf = self.buf[:i], self.buf[i:]
        return out

    def _more(self):
        if not self.chunked:
            data = self.s.recv(65536)
            if not data:
                raise ConnectionError("closed")
            self.text += data.decode()
            return
        size = int(self._until(b"\r\n").strip(), 16)
        if size == 0:
            raise ConnectionError("the stream ended")
        while len(self.buf) < size + 2:
            data = self.s.recv(65536)
            if not data:
                raise ConnectionError("closed")
            self.buf += data
        self.text += self.buf[:size].decode()
        self.buf = self.buf[size + 2:]

    def next_event(self, timeout=5):
        """(event name, data string) of the next complete event; comments come as ("", text)."""
        deadline = time.monotonic() + timeout
        while "\n\n" not in self.text:
            self.s.settimeout(max(0.01, deadline - time.monotonic()))
            self._more()
        block, self.text = self.text.split("\n\n", 1)
        name, data = "", []
        for line in block.split("\n"):
            if line.startswith("event: "):
                name = line[7:]
            elif line.startswith("data: "):
                data.append(line[6:])
            elif line.startswith(":"):
                return "", line
            elif line.startswith("retry: "):
                return "retry", line[7:]
        return name, "\n".join(data)

    def wait_for(self, pred, timeout=5):
        deadline = time.monotonic() + timeout
        while True:
            name, data = self.next_event(timeout=max(0.01, deadline - time.monotonic()))
            if pred(name, data):
                return name, data

    def close(self):
        self.s.close()


def streams_left(rep, n):
    """Waits until `rep` holds `n` open streams. HTTP/1 reads nothing while it streams an
    answer, so a closed stream is noticed when a write to it fails (the next events, or the
    15 s heartbeat): counted requests make events."""
    def check():
        rep.count()
        return rep.metric("tally_events_clients") == n

    wait_for(check, interval=0.2, what="%d open streams" % n)


class EventsTest(ClusterTest):
    servers = True

    def test_a_total_event_follows_a_counted_request_within_a_second(self):
        rep = self.replica(self.r, self.b, instance="ev-1")
        ev = EventStream(rep.port)
        self.assertEqual(ev.status, 200)
        self.assertTrue(ev.headers["content-type"].startswith("text/event-stream"))
        self.assertEqual(ev.headers.get("cache-control"), "no-store")
        self.assertEqual(ev.next_event(), ("retry", "2000"), "retry: comes first")
        name, data = ev.wait_for(lambda n, d: n == "total")
        first = json.loads(data)
        self.assertEqual(first["cluster_total"], 0)
        self.assertEqual((first["redis"], first["mqtt"], first["instance"]), (True, True, "ev-1:%d" % rep.port))
        t0 = time.monotonic()
        self.assertEqual(rep.count()[0], 200)
        name, data = ev.wait_for(lambda n, d: n == "total" and json.loads(d)["cluster_total"] == 1, timeout=1)
        self.assertLess(time.monotonic() - t0, 1.0)
        self.assertEqual(json.loads(data)["served"], 1)
        self.assertEqual(self.r.total(), 1, "the stream itself never counts")
        ev.close()

    def test_coalesced_at_most_ten_a_second_and_the_latest_wins(self):
        rep = self.replica(self.r, self.b, instance="ev-2")
        ev = EventStream(rep.port)
        ev.wait_for(lambda n, d: n == "total")
        t0 = time.monotonic()
        res = counted(rep.port, 3000, connections=8, depth=16)
        self.assertEqual(res["statuses"], {200: 3000})
        totals = []
        ev.wait_for(lambda n, d: n == "total" and totals.append(json.loads(d)["cluster_total"]) is None
                    and totals[-1] == 3000, timeout=5)
        elapsed = time.monotonic() - t0
        self.assertLessEqual(len(totals), 10 * elapsed + 2, "%d events in %.1f s" % (len(totals), elapsed))
        self.assertEqual(totals, sorted(totals), "never back")
        ev.close()

    def test_a_replicas_event_when_a_replica_stops(self):
        a = self.replica(self.r, self.b, instance="ev-a")
        b = self.replica(self.r, self.b, instance="ev-b")
        ev = EventStream(a.port)

        def states(d):
            return {x["id"]: x["state"] for x in json.loads(d)["replicas"]}

        ev.wait_for(lambda n, d: n == "replicas" and states(d).get("ev-b") == "online", timeout=10)
        b.stop()
        name, data = ev.wait_for(lambda n, d: n == "replicas" and states(d).get("ev-b") == "offline", timeout=10)
        self.assertEqual(states(data)["ev-a"], "online")
        ev.close()

    def test_clients_that_never_read_do_not_slow_counting(self):
        rep = self.replica(self.r, self.b, instance="ev-s", extra_env={"EVENTS_MAX_CLIENTS": "200"})
        t0 = time.monotonic()
        base = counted(rep.port, 4000, connections=8, depth=16)
        t_base = time.monotonic() - t0
        stalled = []
        for _ in range(100):  # they ask for the stream and never read a byte of it
            s = socket.create_connection(("127.0.0.1", rep.port))
            s.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
            s.sendall(b"GET /events HTTP/1.1\r\nHost: t\r\n\r\n")
            stalled.append(s)
        wait_for(lambda: rep.metric("tally_events_clients") == 100, what="100 open streams")
        t0 = time.monotonic()
        res = counted(rep.port, 4000, connections=8, depth=16)
        t_stalled = time.monotonic() - t0
        self.assertEqual(res["statuses"], {200: 4000}, "no error beside 100 stalled event clients")
        self.assertEqual(res["errors"], 0)
        # No stall: not a speed test (benchmarks measure the cost), only "it was not held up".
        self.assertLess(t_stalled, max(5.0, 10 * t_base), "%.2f s with stalled clients, %.2f s without"
                        % (t_stalled, t_base))
        self.assertEqual(self.r.total(), 8000)
        self.assertEqual(base["statuses"], {200: 4000})
        for s in stalled:
            s.close()
        streams_left(rep, 0)

    def test_the_cap_answers_503(self):
        rep = self.replica(self.r, self.b, instance="ev-c", extra_env={"EVENTS_MAX_CLIENTS": "2"})
        open_ = [EventStream(rep.port) for _ in range(2)]
        third = EventStream(rep.port)
        self.assertEqual(third.status, 503)
        self.assertEqual(third.headers.get("retry-after"), "5")
        self.assertEqual(rep.metric("tally_events_refused_total"), 1)
        open_[0].close()
        third.close()
        streams_left(rep, 1)
        again = EventStream(rep.port)
        self.assertEqual(again.status, 200, "a place is free again")
        for ev in (open_[1], again):  # open streams at the stop: the drain ends them
            ev.close()

    def test_methods_like_every_route(self):
        rep = self.replica(self.r, self.b, instance="ev-m")
        for path in ("/events", "/dashboard", "/dashboard.js", "/dashboard.css"):
            st, body, headers = rep.get(path, method="POST")
            self.assertEqual(st, 405, path)
            self.assertEqual(headers.get("allow"), "GET, HEAD")
            st, body, headers = rep.get(path, method="HEAD")
            self.assertEqual((st, body), (200, ""), path)
        st, _, headers = rep.get("/events", method="HEAD")
        self.assertTrue(headers["content-type"].startswith("text/event-stream"))
        self.assertEqual(rep.metric("tally_events_clients"), 0, "HEAD opens no stream")
        self.assertEqual(self.r.total(), 0, "none of them counts")

    def test_the_dashboard_is_self_contained(self):
        rep = self.replica(self.r, self.b, instance="ev-d")
        st, body, headers = rep.get("/dashboard")
        self.assertEqual(st, 200)
        self.assertTrue(headers["content-type"].startswith("text/html"))
        csp = headers["content-security-policy"]
        self.assertIn("default-src 'none'", csp)
        self.assertIn("script-src 'self'", csp)
        self.assertIn("connect-src 'self'", csp)
        self.assertEqual(headers["x-content-type-options"], "nosniff")
        self.assertIn('src="/dashboard.js"', body)
        self.assertNotIn("http://", body.replace("http://www.w3.org", ""))
        self.assertNotIn("https://", body)
        st, js, headers = rep.get("/dashboard.js")
        self.assertEqual(st, 200)
        self.assertTrue(headers["content-type"].startswith("text/javascript"))
        self.assertIn('new EventSource("/events")', js)
        self.assertNotIn("http", js.split("\n", 3)[-1].replace("the replica", ""), "no other origin in the script")
        st, css, headers = rep.get("/dashboard.css")
        self.assertEqual(st, 200)
        self.assertTrue(headers["content-type"].startswith("text/css"))
        self.assertEqual(self.r.total(), 0)
