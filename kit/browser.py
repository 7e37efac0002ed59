"""Headless Chromium (Debian's package) driven over the DevTools protocol through a pipe
(--remote-debugging-pipe: JSON messages separated by NUL bytes on fds 3 and 4), so no
driver, no download and no WebSocket library are needed. One page per Browser."""
import base64
import fcntl
import json
import os
import shutil
import subprocess
import tempfile
import threading
import time

CHROMIUM = shutil.which("chromium") or shutil.which("chromium-browser")


def need(program):
    """Fails (never skips) when a program the suite needs is missing: scripts/install-deps.sh test."""
    if not shutil.which(program):
        raise AssertionError("%s is not installed (scripts/install-deps.sh test installs it)" % program)


class Browser:
    def __init__(self):
        need("chromium")
        self.profile = tempfile.mkdtemp(prefix="tally-chromium-")
        to_chrome_r, self._to_chrome = os.pipe()
        self._from_chrome, from_chrome_w = os.pipe()
        def fds():  # in the child: Chromium reads commands on fd 3 and writes answers on fd 4
            r, w = fcntl.fcntl(to_chrome_r, fcntl.F_DUPFD, 10), fcntl.fcntl(from_chrome_w, fcntl.F_DUPFD, 10)
            os.dup2(r, 3)
            os.dup2(w, 4)

        self.p = subprocess.Popen(
            [CHROMIUM, "--headless=new", "--no-sandbox", "--disable-gpu", "--no-first-run",
             "--no-default-browser-check", "--disable-extensions", "--disable-background-networking",
             "--disable-component-update", "--disable-sync", "--metrics-recording-only", "--mute-audio",
             "--window-size=1280,900", "--user-data-dir=" + self.profile, "--remote-debugging-pipe",
             "about:blank"],
            stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
            pass_fds=(3, 4), preexec_fn=fds)
        os.close(to_chrome_r)
        os.close(from_chrome_w)
        self.next_id = 0
        self.lock = threading.Lock()
        self.replies = {}
        self.events = []  # (method, params) of every event, in order
        self.cond = threading.Condition(self.lock)
        self.reader = threading.Thread(target=self._read, daemon=True)
        self.reader.start()
        self.session = None

    def _read(self):
        buf = b""
        while True:
            try:
                data = os.read(self._from_chrome, 65536)
            except OSError:
                data = b""
            if not data:
                with self.cond:
                    self.cond.notify_all()
                return
            buf += data
            while b"\0" in buf:
                raw, buf = buf.split(b"\0", 1)
                msg = json.loads(raw)
                with self.cond:
                    if "id" in msg:
                        self.replies[msg["id"]] = msg
                    else:
                        self.events.append((msg.get("method"), msg.get("params", {})))
                    self.cond.notify_all()

    def send(self, method, params=None, session=True, timeout=30):
        with self.lock:
            self.next_id += 1
            mid = self.next_id
        msg = {"id": mid, "method": method, "params": params or {}}
        if session and self.session:
            msg["sessionId"] = self.session
        os.write(self._to_chrome, json.dumps(msg).encode() + b"\0")
        deadline = time.monotonic() + timeout
        with self.cond:
            while mid not in self.replies:
                left = deadline - time.monotonic()
                if left <= 0 or self.p.poll() is not None:
                    raise TimeoutError("chromium did not answer %s" % method)
                self.cond.wait(left)
            reply = self.replies.pop(mid)
        if "error" in reply:
            raise RuntimeError("%s: %s" % (method, reply["error"]))
        return reply.get("result", {})

    def open(self, url):
        """A new page, with network, console and log events on, navigated to `url`."""
        target = self.send("Target.createTarget", {"url": "about:blank"}, session=False)["targetId"]
        self.session = self.send("Target.attachToTarget", {"targetId": target, "flatten": True},
                                 session=False)["sessionId"]
        for domain in ("Page", "Runtime", "Network", "Log"):
            self.send(domain + ".enable")
        self.send("Page.navigate", {"url": url})

    def eval(self, expression):
        r = self.send("Runtime.evaluate", {"expression": expression, "returnByValue": True})
        if "exceptionDetails" in r:
            raise RuntimeError("page script failed: %s" % r["exceptionDetails"])
        return r["result"].get("value")

    def screenshot(self, path):
        data = self.send("Page.captureScreenshot", {"format": "png"})["data"]
        with open(path, "wb") as f:
            f.write(base64.b64decode(data))

    def requested_urls(self):
        with self.lock:
            return [p["request"]["url"] for m, p in self.events if m == "Network.requestWillBeSent"]

    def errors(self, since=0, skip_network=False):
        """Console errors, uncaught exceptions and error log entries (after event `since`)."""
        out = []
        with self.lock:
            for m, p in self.events[since:]:
                if m == "Runtime.exceptionThrown":
                    out.append("exception: %s" % p["exceptionDetails"].get("text"))
                elif m == "Runtime.consoleAPICalled" and p.get("type") == "error":
                    out.append("console.error: %s" % [a.get("value") for a in p.get("args", [])])
                elif m == "Log.entryAdded" and p["entry"]["level"] == "error":
                    if not (skip_network and p["entry"].get("source") == "network"):
                        out.append("log: %s" % p["entry"].get("text"))
        return out

    def mark(self):
        with self.lock:
            return len(self.events)

    def close(self):
        try:
            self.send("Browser.close", session=False, timeout=5)
        except (OSError, TimeoutError, RuntimeError):
            pass
        try:
            self.p.wait(10)
        except subprocess.TimeoutExpired:
            self.p.kill()
            self.p.wait()
        for fd in (self._to_chrome, self._from_chrome):
            try:
                os.close(fd)
            except OSError:
                pass
        shutil.rmtree(self.profile, ignore_errors=True)
