"""A real Prometheus (Debian's package) scraping a local cluster under a fixed-rate load, with
the shipped monitoring/alerts.yml: the request rate it computes matches the load, and
TallyReplicaDown fires once a replica is killed (and only for that one)."""
import json
import os
import shutil
import time
import urllib.parse
import urllib.request

from kit.procs import free_port, wait_for, Proc
from kit.testcase import ClusterTest

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
from kit import load as tally_load


class Prometheus(Proc):
    def __init__(self, workdir, replicas, publishers):
        self.port = free_port()
        d = os.path.join(workdir, "prometheus")
        os.makedirs(d, exist_ok=True)
        shutil.copy(os.path.join(ROOT, "monitoring", "alerts.yml"), os.path.join(d, "alerts.yml"))
        conf = os.path.join(d, "prometheus.yml")
        with open(conf, "w") as f:  # the shipped local file, with this test's ports and 1 s intervals
            f.write("global: {scrape_interval: 1s, evaluation_interval: 1s}\nrule_files: [alerts.yml]\n"
                    "scrape_configs:\n"
                    "  - job_name: tally-replica\n    static_configs: [{targets: [%s]}]\n"
                    "  - job_name: tally-publisher\n    static_configs: [{targets: [%s]}]\n" % (
                        ", ".join('"127.0.0.1:%d"' % r.port for r in replicas),
                        ", ".join('"127.0.0.1:%d"' % p.http_port for p in publishers)))
        super().__init__("prometheus", ["prometheus", "--config.file=" + conf, "--storage.tsdb.path=" +
                                        os.path.join(d, "data"), "--web.listen-address=127.0.0.1:%d" % self.port],
                         workdir)

    def start(self):
        super().start()
        wait_for(lambda: self.api("/-/ready", raw=True) is not None, timeout=30, what="prometheus to be ready")
        return self

    def api(self, path, raw=False, **params):
        url = "http://127.0.0.1:%d%s" % (self.port, path)
        if params:
            url += "?" + urllib.parse.urlencode(params)
        try:
            with urllib.request.urlopen(url, timeout=5) as r:
                body = r.read().decode()
        except OSError:
            return None
        return body if raw else json.loads(body)["data"]

    def query(self, expr):
        data = self.api("/api/v1/query", query=expr)
        return [(s["metric"], float(s["value"][1])) for s in data["result"]] if data else []


class PrometheusTest(ClusterTest):
    def test_rate_matches_the_load_and_a_killed_replica_fires_the_alert(self):
        r, b = self.redis(), self.broker()
        pubs = [self.publisher(r, b, "pp-%d" % i) for i in (1, 2)]
        reps = [self.replica(r, b, instance="pr-%d" % i) for i in (1, 2, 3)]
        prom = self.add(Prometheus(self.dir, reps, pubs)).start()
        wait_for(lambda: len([v for _, v in prom.query('up{job="tally-replica"}') if v == 1]) == 3, timeout=30,
                 what="prometheus to scrape the three replicas")
        rate = 300.0
        load = tally_load.Load(["http://127.0.0.1:%d/" % x.port for x in reps], duration=14, concurrency=6,
                               rate=rate)
        load.start()
        time.sleep(12)  # ten seconds of steady load inside the rate window (not a readiness wait)
        seen = prom.query('sum(rate(tally_http_requests_total{route="count"}[8s]))')
        res = load.join()
        self.assertEqual(res.statuses, {200: res.attempted})
        self.assertTrue(seen, "prometheus computed a rate")
        self.assertLess(abs(seen[0][1] - rate) / rate, 0.25, "prometheus says %.0f req/s for a load of %.0f"
                        % (seen[0][1], rate))
        self.assertEqual(prom.query('ALERTS{alertname="TallyReplicaDown"}'), [], "no alert while all are up")

        victim = reps[1]
        victim.kill9()
        t0 = time.monotonic()
        firing = wait_for(lambda: prom.query('ALERTS{alertname="TallyReplicaDown",alertstate="firing"}'),
                          timeout=90, interval=1, what="TallyReplicaDown to fire")
        self.assertGreaterEqual(time.monotonic() - t0, 30, "not before its 30 s")
        self.assertEqual([m["instance"] for m, _ in firing], ["127.0.0.1:%d" % victim.port])
        self.assertEqual(prom.query('ALERTS{alertname="TallyNoPublisherLeading"}'), [], "a publisher leads")
