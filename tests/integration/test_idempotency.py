"""Idempotency-Key (docs/api.md): a retried GET / with the same key counts once, at any
replica of the same Redis, and gets the first answer's bytes; bad keys are refused; the
answer is stored in the same script call as the increment, so a replica killed between
its batch and its answer leaves a key whose retry carries the first try's M."""
import json
import signal
import socket
import subprocess
import threading

from kit.http_reader import read_response
from kit.procs import REPLICA, wait_for
from kit.testcase import ClusterTest


def keyed(port, key, count=1, accept_json=False, header="Idempotency-Key"):
    """`count` GET / with one key, pipelined on one connection: [(status, headers, body)]."""
    req = "GET / HTTP/1.1\r\nHost: t\r\n%s: %s\r\n%s\r\n" % (
        header, key, "Accept: application/json\r\n" if accept_json else "")
    with socket.create_connection(("127.0.0.1", port), timeout=10) as s:
        s.sendall(req.encode() * count)
        f = s.makefile("rb")
        return [read_response(f) for _ in range(count)]


def raw(port, head):
    with socket.create_connection(("127.0.0.1", port), timeout=10) as s:
        s.sendall(head)
        return read_response(s.makefile("rb"), head=head.startswith(b"HEAD"))


class IdempotencyTest(ClusterTest):
    servers = True

    def setUp(self):
        super().setUp()
        self.a = self.replica(self.r, self.b, instance="a")
        self.c = self.replica(self.r, self.b, instance="c")

    def test_a_replay_at_another_replica_gets_the_same_bytes_and_does_not_count(self):
        self.assertEqual(self.a.count()[0], 200)
        (st, h, first), = keyed(self.a.port, "order-17")
        self.assertEqual(st, 200)
        self.assertNotIn("idempotent-replayed", h)
        self.assertEqual(self.r.total(), 2)
        (st, h, again), = keyed(self.c.port, "order-17")
        self.assertEqual((st, h.get("idempotent-replayed")), (200, "true"))
        self.assertEqual(again, first, "byte for byte the first answer (instance a, its N and M)")
        self.assertIn(b"instance a:", again)
        self.assertEqual(self.r.total(), 2, "not counted again")
        # The quoted form names the same key; JSON renders the same stored answer.
        (st, h, js), = keyed(self.c.port, '"order-17"', accept_json=True)
        self.assertEqual((st, h.get("idempotent-replayed")), (200, "true"))
        self.assertEqual(json.loads(js)["cluster_total"], 2)
        self.assertEqual(json.loads(js)["instance_count"], 2)
        self.assertEqual(self.r.total(), 2)
        self.assertEqual(self.c.metric("tally_idempotency_replays_total"), 2)
        self.assertEqual(self.a.metric("tally_idempotency_keys_stored_total"), 1)
        # Other keys and requests without one count as usual.
        self.assertEqual(self.c.count()[2], 3)
        (st, _, other), = keyed(self.c.port, "order-18")
        self.assertIn(b"request 4 to the cluster", other)

    def test_sixteen_pipelined_requests_with_one_key_count_once(self):
        answers = keyed(self.a.port, "k16", count=16)
        self.assertEqual([a[0] for a in answers], [200] * 16)
        self.assertEqual(len({a[2] for a in answers}), 1, "one answer, sixteen times")
        self.assertEqual(sum(a[1].get("idempotent-replayed") == "true" for a in answers), 15)
        self.assertEqual(self.r.total(), 1)
        self.assertEqual(self.a.metric("tally_idempotency_replays_total"), 15)

    def test_the_same_keys_at_two_replicas_at_once_count_once(self):
        keys = ["both-%d" % i for i in range(200)]
        got = {}

        def client(rep, name):
            head = b"".join(b"GET / HTTP/1.1\r\nHost: t\r\nIdempotency-Key: %s\r\n\r\n" % k.encode() for k in keys)
            with socket.create_connection(("127.0.0.1", rep.port), timeout=10) as s:
                s.sendall(head)
                f = s.makefile("rb")
                got[name] = [read_response(f) for _ in keys]

        threads = [threading.Thread(target=client, args=(rep, rep.name)) for rep in (self.a, self.c) for _ in (0,)]
        for t in threads:
            t.start()
        for t in threads:
            t.join()
        self.assertEqual(self.r.total(), len(keys), "each key counted once")
        for i in range(len(keys)):
            x, y = got[self.a.name][i], got[self.c.name][i]
            self.assertEqual((x[0], y[0]), (200, 200))
            self.assertEqual(x[2], y[2], "both replicas give key %s one answer" % keys[i])
        ms = [int(got[self.a.name][i][2].split(b"request ")[2].split(b" ")[0]) for i in range(len(keys))]
        self.assertEqual(sorted(ms), list(range(1, len(keys) + 1)), "one M per key, none shared")

    def test_bad_keys_get_400_and_count_nothing(self):
        bad = [b"Idempotency-Key: \r\n", b"Idempotency-Key: " + b"x" * 256 + b"\r\n",
               b"Idempotency-Key: a b\r\n", b"Idempotency-Key: caf\xc3\xa9\r\n", b"Idempotency-Key: \"open\r\n",
               b"Idempotency-Key: \"a\";p=1\r\n", b"Idempotency-Key: \"a b\"\r\n", b"Idempotency-Key: \"\"\r\n",
               b"Idempotency-Key: one\r\nIdempotency-Key: two\r\n", b"Idempotency-Key: tab\there\r\n"]
        for h in bad:
            for method in (b"GET", b"HEAD"):
                st, headers, body = raw(self.a.port, method + b" / HTTP/1.1\r\nHost: t\r\n" + h + b"\r\n")
                self.assertEqual(st, 400, h)
                if method == b"GET":
                    self.assertEqual(json.loads(body)["error"], "bad_idempotency_key")
                    self.assertIn("Idempotency-Key", json.loads(body)["message"])
        self.assertEqual(self.r.total(), 0)
        self.assertEqual(self.a.metric("tally_idempotency_bad_keys_total"), 2 * len(bad))
        self.assertEqual(self.a.metric('tally_http_responses_total{code="400"}'), 2 * len(bad))
        # The longest key and every visible character are keys; HEAD with one counts nothing.
        for key in ["x" * 255, "".join(chr(c) for c in range(0x21, 0x7f))]:
            (st, _, _), = keyed(self.a.port, key)
            self.assertEqual(st, 200)
        self.assertEqual(raw(self.a.port, b"HEAD / HTTP/1.1\r\nHost: t\r\nIdempotency-Key: h\r\n\r\n")[0], 200)
        self.assertEqual(self.r.total(), 2)

    def test_a_replica_killed_between_its_batch_and_its_answer(self):
        """The case the edge could not retry (issue 13): the batch is applied, the replica dies
        before answering. The retry with the same key at another replica counts nothing and
        carries the first try's M."""
        self.assertEqual(self.a.count()[2], 1)
        before = self.a.metric("tally_redis_batches_total")
        self.r.command("CLIENT", "PAUSE", "5000", "WRITE")
        s = socket.create_connection(("127.0.0.1", self.a.port), timeout=10)
        s.sendall(b"GET / HTTP/1.1\r\nHost: t\r\nIdempotency-Key: lost-answer\r\n\r\n")
        wait_for(lambda: self.a.metric("tally_redis_batches_total") > before, what="the keyed batch sent")
        self.a.signal(signal.SIGSTOP)
        self.r.command("CLIENT", "UNPAUSE")
        wait_for(lambda: self.r.total() == 2, what="Redis to apply the batch")
        self.a.kill9()
        s.close()
        self.assertTrue(self.r.command("GET", "tally:idem:lost-answer").startswith("2 2 a:"),
                        "the answer was stored with the increment: N 2, M 2, instance a")
        (st, h, body), = keyed(self.c.port, "lost-answer")
        self.assertEqual((st, h.get("idempotent-replayed")), (200, "true"))
        self.assertIn(b"instance a:", body)
        self.assertIn(b"request 2 to the cluster", body, "the M of the first try")
        self.assertEqual(self.r.total(), 2, "Redis +1 for the key, whatever the tries")

    def test_the_key_expires_after_idempotency_ttl_s(self):
        rep = self.replica(self.r, self.b, instance="ttl",
                           extra_env={"IDEMPOTENCY_TTL_S": "3", "REDIS_TIMEOUT_MS": "1000"})
        (st, _, first), = keyed(rep.port, "short")
        ttl = int(self.r.command("PTTL", "tally:idem:short"))
        self.assertTrue(2000 < ttl <= 3000, ttl)
        self.assertEqual(keyed(rep.port, "short")[0][2], first)
        wait_for(lambda: self.r.command("EXISTS", "tally:idem:short") == 0, timeout=6, what="the key to expire")
        (st, h, later), = keyed(rep.port, "short")
        self.assertEqual(st, 200)
        self.assertNotIn("idempotent-replayed", h)
        self.assertIn(b"request 2 to the cluster", later, "counted again once the key is gone")

    def test_ttl_zero_ignores_the_header(self):
        rep = self.replica(self.r, self.b, instance="off", extra_env={"IDEMPOTENCY_TTL_S": "0"})
        answers = keyed(rep.port, "same", count=3) + keyed(rep.port, "not a key", count=1)
        self.assertEqual([a[0] for a in answers], [200] * 4)
        self.assertEqual(self.r.total(), 4, "every request counts")
        self.assertEqual(self.r.command("KEYS", "tally:idem:*"), [])

    def test_a_ttl_not_longer_than_the_redis_timeout_is_a_config_error(self):
        p = subprocess.run([REPLICA, "--idempotency-ttl-s", "2", "--redis-timeout-ms", "2000"],
                           capture_output=True, text=True, timeout=10)
        self.assertEqual(p.returncode, 2)
        self.assertEqual(len(p.stderr.strip().splitlines()), 1, p.stderr)
        self.assertIn("IDEMPOTENCY_TTL_S", p.stderr)


class KeyedResendTest(ClusterTest):
    """A keyed batch whose reply was lost with the connection is resent with its id: the
    ring answers its total, the keys' answers are read back as its own (no replay), and the
    requests without a key in the same batch keep the top of its range."""

    servers = True

    def setUp(self):
        super().setUp()
        self.rep, self.proxy = self.replica_via_proxy(self.r, self.b, extra_env={"REDIS_TIMEOUT_MS": "5000"})
        self.assertEqual(self.rep.count(), (200, 1, 1))

    def test_applied_but_reply_lost(self):
        self.proxy.drop_replies.set()
        self.rep.signal(signal.SIGSTOP)  # the requests meet in one loop pass
        results = []

        def one(key):
            results.append(keyed(self.rep.port, key)[0] if key else
                           raw(self.rep.port, b"GET / HTTP/1.1\r\nHost: t\r\n\r\n"))

        threads = [threading.Thread(target=one, args=(k,)) for k in ("k1", None, "k2", None, "k3")]
        for t in threads:
            t.start()
        wait_for(lambda: len(socket_peers(self.rep.port)) >= 5, what="five connections waiting")
        self.rep.signal(signal.SIGCONT)
        wait_for(lambda: self.r.total() == 6, what="Redis to apply the batch whose reply is lost")
        self.proxy.drop_replies.clear()
        self.proxy.cut()
        for t in threads:
            t.join()
        self.assertEqual([x[0] for x in results], [200] * 5)
        self.assertFalse(any(x[1].get("idempotent-replayed") for x in results), "the resend's own answers")
        ms = sorted(int(x[2].split(b"request ")[2].split(b" ")[0]) for x in results)
        self.assertEqual(ms, [2, 3, 4, 5, 6])
        self.assertEqual(self.r.total(), 6, "applied once")
        self.assertGreaterEqual(self.rep.metric("tally_redis_retried_batches_total"), 1)
        self.assertEqual(self.rep.metric("tally_idempotency_keys_stored_total"), 3)


def socket_peers(port):
    """Established connections to 127.0.0.1:port (from ss)."""
    out = subprocess.run(["ss", "-Htn", "state", "established", "( sport = :%d )" % port],
                         capture_output=True, text=True, check=True).stdout
    return [line for line in out.splitlines() if line.strip()]
