"""GET /dashboard in a real browser (headless Chromium over the DevTools protocol) on a real
cluster: the shown total reaches Redis's total, every replica appears with its served count,
a killed replica is shown offline, the page recovers after the replica serving it restarts,
and it made no request outside its own origin and logged no error. A screenshot of the
loaded dashboard is saved as a test artefact (TALLY_ARTIFACTS, default the build's folder)."""
import os
import re
import time

from kit.browser import Browser
from kit.load import counted
from kit.procs import wait_for, Replica
from kit.testcase import ClusterTest

ARTIFACTS = os.environ.get("TALLY_ARTIFACTS") or os.path.join(os.getcwd(), "artifacts")


class DashboardTest(ClusterTest):
    def setUp(self):
        super().setUp()
        self.browser = Browser()

    def tearDown(self):
        self.browser.close()
        super().tearDown()

    def shown(self):
        """What the page shows: the total, the badges, and the replica rows."""
        return self.browser.eval("""(() => ({
            total: document.getElementById('total').textContent,
            stream: document.getElementById('stream').dataset.state,
            redis: document.getElementById('redis').dataset.state,
            mqtt: document.getElementById('mqtt').dataset.state,
            instance: document.getElementById('instance').textContent,
            rows: [...document.querySelectorAll('#replicas tr')].map(tr => ({
                id: tr.dataset.id, state: tr.children[1].textContent,
                served: tr.querySelector('.served').textContent, bar: tr.querySelector('i').style.width}))
        }))()""")

    @staticmethod
    def number(text):
        return int(re.sub(r"[^0-9]", "", text) or -1)

    def test_the_dashboard_follows_the_cluster(self):
        r, b = self.redis(), self.broker()
        env = {"PRESENCE_INTERVAL_MS": "500"}
        self.publisher(r, b, "dp-1")
        reps = [self.replica(r, b, instance="dash-%d" % i, extra_env=env) for i in (1, 2, 3)]
        origin = "http://127.0.0.1:%d" % reps[0].port
        self.browser.open(origin + "/dashboard")
        wait_for(lambda: self.shown()["stream"] == "up", timeout=20, what="the page's stream to open")

        for _ in range(6):  # uneven load, so the bars differ, over a few seconds, so the chart has a line
            for i, rep in enumerate(reps):
                self.assertEqual(counted(rep.port, 50 * (i + 1))["statuses"], {200: 50 * (i + 1)})
            time.sleep(0.7)  # pacing the load (not a readiness wait)
        total = r.total()
        self.assertEqual(total, 1800)
        wait_for(lambda: self.number(self.shown()["total"]) == total, timeout=10,
                 what="the shown total to reach Redis's %d" % total)
        served = {"dash-1": 300, "dash-2": 600, "dash-3": 900}

        def rows_match():
            rows = {x["id"]: x for x in self.shown()["rows"]}
            return all(k in rows and self.number(rows[k]["served"]) == v and rows[k]["state"] == "online"
                       for k, v in served.items())

        wait_for(rows_match, timeout=15, what="every replica with its served count")
        page = self.shown()
        self.assertEqual((page["redis"], page["mqtt"]), ("up", "up"))
        self.assertEqual(page["instance"], "dash-1:%d" % reps[0].port)
        bars = {x["id"]: float(x["bar"].rstrip("%")) for x in page["rows"]}
        self.assertLess(bars["dash-1"], bars["dash-2"])
        self.assertLess(bars["dash-2"], bars["dash-3"], "the spread of load is visible in the bars")
        wait_for(lambda: self.browser.eval("document.getElementById('rate-now').textContent") != "–", timeout=10,
                 what="the rate chart to have points")
        os.makedirs(ARTIFACTS, exist_ok=True)
        shot = os.path.join(ARTIFACTS, "dashboard.png")
        self.browser.screenshot(shot)
        self.assertGreater(os.path.getsize(shot), 10000)
        self.assertEqual(self.browser.errors(), [], "no console error while loaded")

        reps[2].kill9()  # its Last Will says offline
        wait_for(lambda: {x["id"]: x["state"] for x in self.shown()["rows"]}.get("dash-3") == "offline", timeout=20,
                 what="the killed replica shown offline")

        # The replica serving the page restarts: the page notices and reconnects by itself.
        mark = self.browser.mark()
        port = reps[0].port
        reps[0].stop()
        wait_for(lambda: self.shown()["stream"] == "down", timeout=10, what="the page to see its stream gone")
        fresh = self.add(Replica(self.dir, r, b, "dash-1", port=port, extra_env=env)).start()
        wait_for(lambda: self.shown()["stream"] == "up", timeout=30, what="the page to reconnect")
        self.assertEqual(counted(fresh.port, 100)["statuses"], {200: 100})
        wait_for(lambda: self.number(self.shown()["total"]) == r.total(), timeout=10,
                 what="the shown total after the restart")
        self.assertEqual(self.browser.errors(since=mark, skip_network=True), [],
                         "no script error across the restart (the refused reconnects are network entries)")

        outside = [u for u in self.browser.requested_urls() if not u.startswith(origin + "/")]
        self.assertEqual(outside, [], "every request went to the page's own origin")
        self.assertEqual(sorted(set(u[len(origin):] for u in self.browser.requested_urls())),
                         ["/dashboard", "/dashboard.css", "/dashboard.js", "/events"])
