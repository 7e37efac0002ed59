"""The base of the integration tests: a work directory per test, and every process started
through it stopped at the end (a replica or publisher that exited badly, or whose log has a
sanitizer report, fails the test)."""
import os
import shutil
import signal
import tempfile
import unittest

from kit.procs import REPLICA, ROOT, SANITIZED, Broker, Publisher, Redis, Replica, Watcher
from kit.proxy import FlakyProxy


class ClusterTest(unittest.TestCase):
    """Base class: a temp dir, and every process started through it stopped at the end."""

    servers = False  # a class that says True gets self.r, a Redis (everysec), and self.b, a broker
    one_replica = None  # a class that names an instance also gets self.rep, that replica on them

    def setUp(self):
        if not REPLICA or not os.access(REPLICA, os.X_OK):
            self.fail("TALLY_REPLICA must point at the tally-replica binary (run through ctest)")
        self.dir = tempfile.mkdtemp(prefix="tally-it-")
        self.procs = []
        self.watchers = []
        if self.servers or self.one_replica:
            self.r = self.redis(fsync="everysec")
            self.b = self.broker()
        if self.one_replica:
            self.rep = self.replica(self.r, self.b, instance=self.one_replica)

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
    with open(os.path.join(ROOT, "docs", "api.md")) as f:
        doc = f.read()
    names = [line.split()[2] for line in body.splitlines() if line.startswith("# TYPE ")]
    return [n for n in names if "`%s`" % n not in doc and "`%s{" % n not in doc]
