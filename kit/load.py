"""tally-load: bounded HTTP load against tally replicas, and a checker of what came back.

    tally-load [options] URL [URL ...]

Sends counted `GET /` requests over keep-alive HTTP/1.1 connections (pipelined `--depth`
deep) spread over the URLs, for `--requests` requests or `--duration` seconds, optionally
at a fixed `--rate`. A progress bar is drawn on a terminal. At the end it prints how the
answers spread over instances (a table and a bar chart) and checks:

  jepsen     acknowledged <= Redis total after - Redis total before <= attempted
             (needs --redis; the counter rule of docs/architecture.md)
  unique-M   every counted answer carries a different cluster total M
  monotonic  no replica's cached total (GET /total, sampled every --sample-ms) went back

With --retry every logical request carries an Idempotency-Key of its own and is sent again
with the same key after a connection error, a timeout or a 5xx, until it gets a 200 or
--retry-deadline seconds have passed since its first try. The checks then demand more:

  exact      Redis total after - before == the number of keys answered 200, and every key
             was answered (docs/api.md: a retried request counts once)
  replay     a sample of keys asked again gets the same M back, marked Idempotent-Replayed

(--rate does not apply with --retry: each connection sends --depth keys at a time.)

Exit code: 0 every check passed, 1 a check failed, 2 bad usage or nothing reachable.
Only the standard library is used, so it runs wherever python3 does.
"""
import argparse
import http.client
import json
import os
import shutil
import socket
import sys
import threading
import time
import urllib.parse

from kit import resp
from kit.http_reader import parse_answer, read_response


class Target:
    """One replica URL: host, port and the path of the counted route."""

    def __init__(self, url):
        u = urllib.parse.urlsplit(url if "://" in url else "http://" + url)
        if u.scheme != "http" or not u.hostname:
            raise ValueError("tally-load: only http:// URLs are supported: %r" % url)
        self.url = url
        self.host = u.hostname
        self.port = u.port or 80
        self.path = u.path or "/"
        self.request = ("GET %s HTTP/1.1\r\nHost: %s:%d\r\nUser-Agent: tally-load\r\n\r\n" %
                        (self.path, self.host, self.port)).encode()

    def keyed(self, key):
        """The request with an Idempotency-Key."""
        return self.request[:-2] + b"Idempotency-Key: " + key + b"\r\n\r\n"


class Result:
    """Everything one load run saw. Counts are only changed under `lock`."""

    def __init__(self):
        self.lock = threading.Lock()
        self.attempted = 0  # counted requests written to a socket
        self.answers = []  # (instance, n, m) of every 200
        self.statuses = {}  # status code -> count
        self.conn_errors = 0  # connections that failed or were closed under outstanding requests
        self.unanswered = 0  # requests written whose connection died before the answer
        self.gave_up = 0  # connections that stopped after --give-up seconds of failures
        self.samples = {}  # url -> [cluster_total, ...] from GET /total, in time order
        self.ok_times = []  # time.monotonic() of each read that brought 200s (any order)
        self.duration = 0.0  # seconds the load was to last (0: a run by request count)
        self.started = self.ended = 0.0
        # --retry: key -> (instance, n, m, tries) of its 200; tries of every key that gave up
        self.keyed = {}
        self.abandoned = []

    @property
    def acknowledged(self):
        return len(self.answers)


class Load:
    """A bounded load run. start(), then join() (or stop()); `result` holds what came back."""

    def __init__(self, urls, requests=0, duration=0.0, concurrency=8, depth=8, rate=0.0, sample_ms=0,
                 timeout=10.0, give_up=10.0, retry=False, retry_deadline=30.0, source=None):
        if not urls:
            raise ValueError("tally-load: no URL")
        if requests <= 0 and duration <= 0:
            raise ValueError("tally-load: give --requests or --duration")
        self.targets = [Target(u) for u in urls]
        self.requests, self.duration = requests, duration
        self.concurrency, self.depth, self.rate = max(1, concurrency), max(1, depth), rate
        self.sample_ms, self.timeout, self.give_up = sample_ms, timeout, give_up
        self.result = Result()
        self.stopping = threading.Event()
        self.threads = []
        self._budget = requests  # requests not yet claimed by a connection
        self.retry, self.retry_deadline = retry, retry_deadline
        self._run_id = os.urandom(8).hex()  # keys of different runs never meet
        self._next_key = 0
        self.source = source  # the address connections are made from (None: the kernel's choice)
        self._gate = threading.Condition()  # pause(): no request leaves, none is in flight
        self._held, self._in_flight = False, 0

    def _connect(self, tg):
        sock = socket.create_connection((tg.host, tg.port), timeout=self.timeout,
                                        source_address=(self.source, 0) if self.source else None)
        sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        return sock

    def _take_off(self):
        """Before a connection writes requests: waits while the load is paused."""
        with self._gate:
            self._gate.wait_for(lambda: not self._held or self.stopping.is_set())
            self._in_flight += 1

    def _land(self):
        """Once their answers (or the connection's failure) are counted."""
        with self._gate:
            self._in_flight -= 1
            self._gate.notify_all()

    def _close(self, sock, flying):
        """The end of one connection: landed if it was in flight, its socket closed."""
        if flying:
            self._land()
        if sock is not None:
            sock.close()

    def pause(self, timeout=30.0):
        """Stops sending and returns once every request sent has its answer (or its error), so
        figures read now are exact. resume() sends again."""
        with self._gate:
            self._held = True
            if not self._gate.wait_for(lambda: self._in_flight == 0, timeout):
                raise TimeoutError("tally-load: requests still in flight after %.0f s" % timeout)

    def resume(self):
        with self._gate:
            self._held = False
            self._gate.notify_all()

    def snapshot(self):
        """The figures so far, for since()."""
        r = self.result
        with r.lock:
            return {"t": time.monotonic(), "attempted": r.attempted, "acked": len(r.answers),
                    "statuses": dict(r.statuses), "errors": r.conn_errors, "oks": len(r.ok_times)}

    def since(self, a):
        """What came back after snapshot @a: attempted, acked, statuses (those that moved),
        errors (failed connections), and the longest time without a 200 (gap, in seconds, and
        gap_at, when it began, in seconds after @a), up to now."""
        b = self.snapshot()
        with self.result.lock:  # ok_times are appended under the lock, so in order
            times = [a["t"]] + self.result.ok_times[a["oks"]:b["oks"]] + [b["t"]]
        gap, gap_at = max((y - x, x - a["t"]) for x, y in zip(times, times[1:]))
        moved = {k: v - a["statuses"].get(k, 0) for k, v in b["statuses"].items()}
        return {"attempted": b["attempted"] - a["attempted"], "acked": b["acked"] - a["acked"],
                "statuses": {k: v for k, v in moved.items() if v}, "errors": b["errors"] - a["errors"],
                "gap": gap, "gap_at": gap_at}

    def _claim(self, k):
        """Takes up to k requests from the budget (duration runs: until the clock says stop)."""
        if self.stopping.is_set():
            return 0
        if self.duration > 0 and time.monotonic() >= self.deadline:
            return 0
        if self.requests <= 0:
            return k
        with self.result.lock:
            k = min(k, self._budget)
            self._budget -= k
            return k

    def start(self):
        self.result.started = time.monotonic()
        self.result.duration = self.duration if self.duration > 0 else 0.0
        self.deadline = self.result.started + self.duration if self.duration > 0 else float("inf")
        for i in range(self.concurrency):
            t = threading.Thread(target=self._retrying if self.retry else self._connection,
                                 args=(self.targets[i % len(self.targets)], i), daemon=True)
            self.threads.append(t)
        if self.sample_ms > 0:
            for tg in self.targets:
                self.result.samples[tg.url] = []
                self.threads.append(threading.Thread(target=self._sampler, args=(tg,), daemon=True))
        for t in self.threads:
            t.start()
        return self

    def stop(self):
        self.stopping.set()
        with self._gate:  # a paused connection wakes up to see it
            self._gate.notify_all()

    def running(self):
        return any(t.is_alive() for t in self.threads[:self.concurrency])

    def join(self):
        for t in self.threads[:self.concurrency]:
            t.join()
        self.stopping.set()
        for t in self.threads[self.concurrency:]:
            t.join()
        self.result.ended = time.monotonic()
        return self.result

    def _connection(self, tg, index):
        res = self.result
        backoff = 0.01
        failing_since = None  # a connection gives up after give_up seconds of failures in a row
        # Each connection's share of the rate, as a schedule of send times.
        per_conn_rate = self.rate / self.concurrency if self.rate > 0 else 0.0
        next_send = time.monotonic() + (index / self.rate if self.rate > 0 else 0.0)
        while True:
            k = self._claim(1 if per_conn_rate else self.depth)
            if k == 0:
                return
            sock, flying = None, False
            sent = 0  # written and not yet answered
            try:
                sock = self._connect(tg)
                f = sock.makefile("rb", buffering=65536)
                backoff, failing_since = 0.01, None
                while k > 0:
                    if per_conn_rate:
                        delay = next_send - time.monotonic()
                        if delay > 0:
                            time.sleep(delay)
                        elif delay < -1.0 / per_conn_rate:  # behind (an outage, a reconnect): no burst
                            next_send = time.monotonic()
                        next_send += 1.0 / per_conn_rate
                    self._take_off()
                    flying = True
                    # Attempted from the moment bytes may leave: the server can count them.
                    sent, k = k, 0
                    with res.lock:
                        res.attempted += sent
                    sock.sendall(tg.request * sent)
                    try:
                        answers, statuses = [], {}
                        while sent > 0:
                            status, _, body = read_response(f)
                            sent -= 1
                            statuses[status] = statuses.get(status, 0) + 1
                            if status == 200:
                                a = parse_answer(body)
                                if a is None:
                                    raise ConnectionError("a 200 answer that is not a tally answer: %r"
                                                          % body[:80])
                                answers.append(a)
                    finally:  # answers read before a failure are acknowledged all the same
                        with res.lock:
                            if answers:
                                res.ok_times.append(time.monotonic())
                            res.answers += answers
                            for s, c in statuses.items():
                                res.statuses[s] = res.statuses.get(s, 0) + c
                    self._land()
                    flying = False
                    k = self._claim(1 if per_conn_rate else self.depth)
                return
            except (OSError, ConnectionError, ValueError):
                with res.lock:
                    res.conn_errors += 1
                    res.unanswered += sent
                    if self.requests > 0:
                        self._budget += k  # claimed but never written: someone sends them later
                now = time.monotonic()
                failing_since = failing_since or now
                if now - failing_since >= self.give_up:
                    with res.lock:
                        res.gave_up += 1
                    return
                if self.stopping.wait(backoff):
                    return
                backoff = min(backoff * 2, 0.2)
            finally:  # after the error's backoff: a pause() waits for it
                self._close(sock, flying)

    def _new_keys(self, k):
        """k fresh logical requests: [key, first try time, tries]."""
        k = self._claim(k)
        with self.result.lock:
            first, self._next_key = self._next_key, self._next_key + k
        now = time.monotonic()
        return [[("%s-%d" % (self._run_id, first + i)).encode(), now, 0] for i in range(k)]

    def _retrying(self, tg, index):
        """--retry: like _connection, but every request has a key and is sent again, with it,
        until a 200 or its deadline. New keys stop with the run; retries go on after it."""
        res = self.result
        backoff = 0.01
        again = []  # [key, first try, tries] to send again on the next connection or pass
        while True:
            now = time.monotonic()
            for item in [x for x in again if now - x[1] >= self.retry_deadline]:
                again.remove(item)
                with res.lock:
                    res.abandoned.append(item[2])
            batch = again[:self.depth]
            del again[:len(batch)]
            if len(batch) < self.depth:
                batch += self._new_keys(self.depth - len(batch))
            if not batch:
                if again:
                    continue
                return
            sock, answered, flying = None, 0, False
            try:
                sock = self._connect(tg)
                f = sock.makefile("rb", buffering=65536)
                self._take_off()
                flying = True
                for item in batch:
                    item[2] += 1
                with res.lock:
                    res.attempted += len(batch)
                sock.sendall(b"".join(tg.keyed(item[0]) for item in batch))
                failed = False
                for item in batch:
                    status, _, body = read_response(f)
                    answered += 1
                    with res.lock:
                        res.statuses[status] = res.statuses.get(status, 0) + 1
                    if status == 200:
                        a = parse_answer(body)
                        if a is None:
                            raise ConnectionError("a 200 answer that is not a tally answer: %r" % body[:80])
                        with res.lock:
                            res.answers.append(a)
                            res.ok_times.append(time.monotonic())
                            res.keyed[item[0]] = a + (item[2],)
                    elif status >= 500:
                        again.append(item)
                        failed = True
                    # a 4xx is final: the request was refused, not counted
                self._land()
                flying = False
                if failed and self.stopping.wait(backoff):
                    return
                backoff = 0.01 if not failed else min(backoff * 2, 0.2)
            except (OSError, ConnectionError, ValueError):
                with res.lock:
                    res.conn_errors += 1
                    res.unanswered += len(batch) - answered
                again += batch[answered:]
                if self.stopping.wait(backoff):
                    return
                backoff = min(backoff * 2, 0.2)
            finally:  # after the error's backoff: a pause() waits for it
                self._close(sock, flying)

    def replay_check(self, sample=200):
        """Asks a sample of answered keys again: each must get its M back, marked replayed.
        Returns (asked, wrong)."""
        keys = list(self.result.keyed.items())[:sample]
        wrong = 0
        for i, (key, (_, _, m, _)) in enumerate(keys):
            tg = self.targets[i % len(self.targets)]
            try:
                with self._connect(tg) as sock:
                    sock.sendall(tg.keyed(key))
                    status, headers, body = read_response(sock.makefile("rb"))
                a = parse_answer(body) if status == 200 else None
                if a is None or a[2] != m or headers.get("idempotent-replayed") != "true":
                    wrong += 1
            except (OSError, ConnectionError, ValueError):
                wrong += 1
        return len(keys), wrong

    def _sampler(self, tg):
        """Reads GET /total of one replica every sample_ms until the run ends."""
        out = self.result.samples[tg.url]
        conn = None
        while not self.stopping.is_set():
            try:
                if conn is None:
                    conn = http.client.HTTPConnection(tg.host, tg.port, timeout=2)
                conn.request("GET", "/total")
                r = conn.getresponse()
                body = r.read()
                if r.status == 200:
                    out.append(int(json.loads(body)["cluster_total"]))
            except (OSError, http.client.HTTPException, ValueError, KeyError):
                if conn is not None:
                    conn.close()
                conn = None
            self.stopping.wait(self.sample_ms / 1000.0)
        if conn is not None:
            conn.close()


def counted(port, requests, connections=8, depth=16, timeout=30.0, host="127.0.0.1"):
    """The tests' load: `requests` counted GET / to one replica over `connections` keep-alive
    connections, `depth` in flight on each; a connection that fails is not opened again (its
    requests go to the others, or are not sent). Returns a dict: ok=[(n, m, instance)] of the
    200s, statuses={code: count}, attempted, errors (failed connections)."""
    run = Load(["http://%s:%d/" % (host, port)], requests=requests, concurrency=connections, depth=depth,
               timeout=timeout, give_up=0.0).start()
    res = run.join()
    return {"ok": [(n, m, inst) for inst, n, m in res.answers], "statuses": dict(res.statuses),
            "attempted": res.attempted, "errors": res.conn_errors}


def check(result, redis_before=None, redis_after=None):
    """The checks of a finished run: a list of (name, passed, detail) and the loss figures."""
    checks = []
    acked, attempted = result.acknowledged, result.attempted
    figures = {"requests": attempted, "acknowledged": acked, "lost": 0, "duplicated": 0,
               "gap": longest_gap(result)[0] if result.started else 0.0}
    if redis_before is not None and redis_after is not None:
        delta = redis_after - redis_before
        figures["redis_delta"] = delta
        figures["lost"] = max(0, acked - delta)
        figures["duplicated"] = max(0, delta - attempted)
        ok = acked <= delta <= attempted
        checks.append(("jepsen", ok, "acknowledged %d <= Redis +%d <= attempted %d" % (acked, delta, attempted)))
    seen, dups = set(), 0
    for _, _, m in result.answers:
        if m in seen:
            dups += 1
        seen.add(m)
    if redis_before is not None:
        stale = sum(1 for _, _, m in result.answers if m <= redis_before)
        if stale:
            dups += stale
    figures["duplicated"] += dups
    if result.keyed or result.abandoned:
        tries = [t for _, _, _, t in result.keyed.values()] + result.abandoned
        figures["keys"] = len(result.keyed)
        figures["abandoned"] = len(result.abandoned)
        figures["tries_max"] = max(tries) if tries else 0
        figures["tries_mean"] = sum(tries) / len(tries) if tries else 0.0
        if redis_before is not None and redis_after is not None:
            delta = redis_after - redis_before
            figures["exact"] = delta == len(result.keyed) and not result.abandoned
            checks.append(("exact", figures["exact"],
                           "Redis +%d, keys answered 200 %d, keys given up %d; tries per key: max %d, mean %.2f" % (
                               delta, len(result.keyed), len(result.abandoned), figures["tries_max"],
                               figures["tries_mean"])))
    checks.append(("unique-M", dups == 0, "%d answers, %d repeated or not above the starting total" %
                   (acked, dups)))
    backwards = []
    for url, values in result.samples.items():
        for a, b in zip(values, values[1:]):
            if b < a:
                backwards.append("%s: %d after %d" % (url, b, a))
                break
    if result.samples:
        checks.append(("monotonic", not backwards, "; ".join(backwards) if backwards else "%d samples, none went back"
                       % sum(len(v) for v in result.samples.values())))
    return checks, figures


def longest_gap(result):
    """(seconds, start offset): the longest time without a 200 during the run (from its start
    to the end of its duration, or of its last answer for a run by request count), and when
    it began (seconds after the start)."""
    end = result.started + result.duration if result.duration > 0 else (result.ended or time.monotonic())
    times = [result.started] + sorted(t for t in result.ok_times if t <= end) + [end]
    gap, at = max((b - a, a - result.started) for a, b in zip(times, times[1:]))
    return gap, at


def distribution(result):
    """[(instance, answers)] sorted by instance name."""
    per = {}
    for inst, _, _ in result.answers:
        per[inst] = per.get(inst, 0) + 1
    return sorted(per.items())


def report(result, checks, out=sys.stdout):
    elapsed = max(result.ended - result.started, 1e-9)
    dist = distribution(result)
    width = max([len("instance")] + [len(i) for i, _ in dist])
    total = max(result.acknowledged, 1)
    bar_room = max(10, min(50, shutil.get_terminal_size((100, 24)).columns - width - 30))
    peak = max([c for _, c in dist] + [1])
    print("%-*s  %9s  %6s  %s" % (width, "instance", "answers", "share", "distribution"), file=out)
    for inst, c in dist:
        bar = "#" * max(1, round(bar_room * c / peak))
        print("%-*s  %9d  %5.1f%%  %s" % (width, inst, c, 100.0 * c / total, bar), file=out)
    statuses = ", ".join("%d: %d" % kv for kv in sorted(result.statuses.items())) or "none"
    gap, at = longest_gap(result)
    print("attempted %d, acknowledged %d, unanswered %d, connection errors %d, gave up %d, statuses {%s}, "
          "%.0f req/s, longest time without a 200 %.2f s (from %.1f s)" % (
              result.attempted, result.acknowledged, result.unanswered, result.conn_errors, result.gave_up,
              statuses, result.attempted / elapsed, gap, at), file=out)
    for name, ok, detail in checks:
        print("%-9s %s  %s" % (name, "PASS" if ok else "FAIL", detail), file=out)


def progress(load, out):
    """Redraws one status line on a terminal until the load ends."""
    res = load.result
    while load.running():
        now = time.monotonic()
        elapsed = now - res.started
        if load.requests > 0:
            frac = min(1.0, res.attempted / load.requests)
        else:
            frac = min(1.0, elapsed / load.duration)
        bar = "#" * int(30 * frac) + "." * (30 - int(30 * frac))
        errs = sum(c for s, c in res.statuses.items() if s != 200) + res.conn_errors
        out.write("\r[%s] %3d%%  %d sent  %d ok  %d errors  %.0f req/s " %
                  (bar, 100 * frac, res.attempted, res.acknowledged, errs, res.attempted / max(elapsed, 1e-9)))
        out.flush()
        time.sleep(0.1)
    out.write("\r" + " " * 90 + "\r")
    out.flush()


def settle_total(addr, password, quiet_ms=300, limit_s=15.0):
    """The Redis total once it stopped moving for quiet_ms (late resends land first)."""
    deadline = time.monotonic() + limit_s
    last, since = resp.total(addr, password), time.monotonic()
    while time.monotonic() < deadline:
        time.sleep(0.05)
        v = resp.total(addr, password)
        if v != last:
            last, since = v, time.monotonic()
        elif time.monotonic() - since >= quiet_ms / 1000.0:
            break
    return last


def main(argv=None):
    ap = argparse.ArgumentParser(prog="tally-load", description=__doc__,
                                 formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("urls", nargs="+", metavar="URL", help="replica URLs, e.g. http://127.0.0.1:8080/")
    ap.add_argument("-n", "--requests", type=int, default=0, help="requests in all (default 10000 unless -d)")
    ap.add_argument("-d", "--duration", type=float, default=0.0, help="seconds to run instead of -n")
    ap.add_argument("-c", "--concurrency", type=int, default=8, help="connections (default 8)")
    ap.add_argument("--depth", type=int, default=8, help="requests in flight per connection (default 8)")
    ap.add_argument("--rate", type=float, default=0.0, help="requests per second in all (default: as fast as possible)")
    ap.add_argument("--retry", action="store_true",
                    help="every request carries its own Idempotency-Key and is retried with it until a 200")
    ap.add_argument("--retry-deadline", type=float, default=30.0,
                    help="with --retry, a key is given up this many seconds after its first try (default 30)")
    ap.add_argument("--give-up", type=float, default=10.0,
                    help="a connection stops after this many seconds of failing to reconnect (default 10)")
    ap.add_argument("--redis", metavar="HOST:PORT", help="read total_count before and after (jepsen check)")
    ap.add_argument("--redis-password-file", metavar="FILE", help="password for --redis (or REDIS_PASSWORD)")
    ap.add_argument("--sample-ms", type=int, default=20, help="GET /total period per URL, 0 = off (default 20)")
    ap.add_argument("--json", metavar="FILE", help="also write the figures and checks as JSON")
    ap.add_argument("--no-progress", action="store_true", help="no progress bar even on a terminal")
    args = ap.parse_args(argv)
    if args.requests <= 0 and args.duration <= 0:
        args.requests = 10000
    password = os.environ.get("REDIS_PASSWORD")
    if args.redis_password_file:
        try:
            with open(args.redis_password_file) as f:
                password = f.read().strip()
        except OSError as e:
            print("tally-load: --redis-password-file: %s" % e, file=sys.stderr)
            return 2
    try:
        load = Load(args.urls, requests=args.requests, duration=args.duration, concurrency=args.concurrency,
                    depth=args.depth, rate=args.rate, sample_ms=args.sample_ms,
                    give_up=args.give_up, retry=args.retry, retry_deadline=args.retry_deadline)
    except ValueError as e:
        print(e, file=sys.stderr)
        return 2
    before = None
    if args.redis:
        try:
            before = resp.total(args.redis, password)
        except (OSError, RuntimeError, ValueError) as e:
            print("tally-load: cannot read total_count from Redis at %s: %s" % (args.redis, e), file=sys.stderr)
            return 2
    load.start()
    if sys.stderr.isatty() and not args.no_progress:
        progress(load, sys.stderr)
    res = load.join()
    try:
        after = settle_total(args.redis, password) if args.redis else None
    except (OSError, RuntimeError, ValueError) as e:  # Redis went away during the run
        print("tally-load: cannot read total_count from Redis at %s after the run: %s" % (args.redis, e),
              file=sys.stderr)
        report(res, [])
        return 1
    if res.attempted == 0:
        print("tally-load: no request could be sent to %s" % ", ".join(args.urls), file=sys.stderr)
        return 2
    checks, figures = check(res, before, after)
    if args.retry:
        asked, wrong = load.replay_check()
        checks.append(("replay", wrong == 0, "%d keys asked again, %d without their M marked replayed" %
                       (asked, wrong)))
    report(res, checks)
    if args.json:
        with open(args.json, "w") as f:
            json.dump({"figures": figures, "statuses": res.statuses, "distribution": dict(distribution(res)),
                       "checks": [{"name": n, "passed": ok, "detail": d} for n, ok, d in checks]}, f, indent=2)
    return 0 if all(ok for _, ok, _ in checks) else 1


if __name__ == "__main__":
    sys.exit(main())
