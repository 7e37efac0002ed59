"""What an operator scrapes: both programs' /metrics pass `promtool check metrics` (a gauge
never ends in _total, counters always do), carry the latency histograms, tally_build_info and
the standard process_* metrics, and every family is in docs/api.md."""
import re
import subprocess

from kit.load import counted
from kit.testcase import undocumented_metrics, ClusterTest


def promtool_problems(body):
    p = subprocess.run(["promtool", "check", "metrics"], input=body, capture_output=True, text=True, timeout=30)
    return (p.stdout + p.stderr).strip() if p.returncode != 0 or p.stdout.strip() else ""


def samples(body, name):
    """{labels text: value} of the samples of `name`."""
    out = {}
    for line in body.splitlines():
        m = re.match(r"^%s(\{[^}]*\})? (\S+)$" % re.escape(name), line)
        if m:
            out[m.group(1) or ""] = float(m.group(2))
    return out


class MetricsTest(ClusterTest):
    servers = True

    def test_the_replica_passes_promtool_and_has_what_alerts_need(self):
        rep = self.replica(self.r, self.b, instance="m-1")
        res = counted(rep.port, 500)
        self.assertEqual(res["statuses"], {200: 500})
        body = rep.get("/metrics")[1]
        self.assertEqual(promtool_problems(body), "", "promtool check metrics on the replica")
        self.assertEqual(undocumented_metrics(body), [])
        self.assertEqual(samples(body, "tally_cluster_requests"), {"": 500}, "the renamed gauge")
        self.assertEqual(samples(body, "tally_cluster_total"), {}, "the old name is gone")
        http = samples(body, "tally_http_request_duration_seconds_bucket")
        self.assertEqual(set(http), {'{le="%s"}' % b for b in ("0.0001", "0.00025", "0.0005", "0.001", "0.0025",
                                                                 "0.005", "0.01", "0.025", "0.05", "0.1", "0.25",
                                                                 "0.5", "1", "+Inf")})
        count = samples(body, "tally_http_request_duration_seconds_count")[""]
        self.assertGreaterEqual(count, 500, "every answered request observed")
        self.assertEqual(http['{le="+Inf"}'], count)
        redis = samples(body, "tally_redis_batch_duration_seconds_count")[""]
        self.assertGreater(redis, 0)
        self.assertLessEqual(redis, 500 + 5, "one observation per batch, not per request")
        build = samples(body, "tally_build_info")
        self.assertEqual(len(build), 1)
        self.assertRegex(next(iter(build)), r'^\{version="\d+\.\d+\.\d+",commit="[0-9a-f]{7,}|unknown"\}$')
        for name in ("process_resident_memory_bytes", "process_open_fds", "process_start_time_seconds",
                     "process_cpu_seconds_total", "process_max_fds", "process_virtual_memory_bytes"):
            self.assertGreater(samples(body, name)[""], 0, name)

    def test_the_publisher_passes_promtool(self):
        pub = self.publisher(self.r, self.b, "pm-1")
        st, body = pub.get("/metrics")
        self.assertEqual(st, 200)
        self.assertEqual(promtool_problems(body), "", "promtool check metrics on the publisher")
        self.assertEqual(undocumented_metrics(body), [])
        self.assertEqual(len(samples(body, "tally_publisher_retained_requests")), 1, "the renamed gauge")
        self.assertEqual(samples(body, "tally_publisher_retained_total"), {}, "the old name is gone")
        self.assertEqual(len(samples(body, "tally_build_info")), 1)
        self.assertGreater(samples(body, "process_resident_memory_bytes")[""], 0)
