"""The programs' configuration behaviour: --help, bad values exit 2 with one line,
--check-config, LOG_FORMAT=json."""
import json
import os
import re
import subprocess
import tempfile
import unittest

from kit.procs import PUBLISHER, REPLICA, free_port


def run(args=(), env=None, cwd=None):
    e = {k: v for k, v in os.environ.items() if not k.startswith(("SERVICE_", "REDIS_", "MQTT_", "INSTANCE_"))}
    e.update(env or {})
    p = subprocess.run([REPLICA] + list(args), env=e, cwd=cwd or tempfile.gettempdir(), capture_output=True,
                       text=True, timeout=20)
    return p.returncode, p.stdout, p.stderr


class ConfigTest(unittest.TestCase):
    def test_help_lists_every_variable_with_defaults(self):
        rc, out, err = run(["--help"])
        self.assertEqual(rc, 0)
        for name in ("SERVICE_HOST", "SERVICE_PORT", "INSTANCE_ID", "REDIS_HOST", "REDIS_PORT", "REDIS_PASSWORD",
                     "REDIS_PASSWORD_FILE", "MQTT_URL", "MQTT_USERNAME", "MQTT_PASSWORD", "MQTT_PASSWORD_FILE",
                     "LOG_LEVEL", "THREADS", "PUBLISH_EAGER_RPS", "--service-port", "[default: 8080]"):
            self.assertIn(name, out)

    def test_version(self):
        rc, out, _ = run(["--version"])
        self.assertEqual(rc, 0)
        self.assertRegex(out, r"^tally-replica \d+\.\d+\.\d+\n$")

    def test_bad_values_exit_2_naming_the_variable(self):
        # One variable each, NAME=value: the error must name NAME (the IDEMPOTENCY_TTL_S one is a
        # check across settings: it must outlive REDIS_TIMEOUT_MS).
        one = """SERVICE_PORT=0 REDIS_PORT=65536 MQTT_URL=ws://broker LOG_LEVEL=chatty THREADS=0
            PUBLISH_EAGER_RPS=-1 PUBLISH_EAGER_RPS=fast INSTANCE_ID=a/b REDIS_PASSWORD_FILE=/nonexistent
            LOG_FILE=/nonexistent-dir/tally.log CLUSTER_SECRET_FILE=/nonexistent SHUTDOWN_DELAY_MS=-5
            INSTANCE_ID_WAIT_MS=soon PRESENCE_EXPIRE_S=0 REDIS_WAIT_REPLICAS=17 REDIS_WAIT_TIMEOUT_MS=0
            EVENTS_MAX_CLIENTS=-1 EVENTS_MAX_CLIENTS=lots IDEMPOTENCY_TTL_S=1""".split()
        cases = [([], dict([kv.split("=", 1)]), kv.split("=", 1)[0]) for kv in one]
        cases += [(["--service-port", "http"], {}, "SERVICE_PORT"),
                  ([], {"MQTT_PASSWORD": "a", "MQTT_PASSWORD_FILE": "/etc/hostname"}, "MQTT_PASSWORD"),
                  (["--bogus", "1"], {}, "--bogus"), (["positional"], {}, "positional")]
        for args, env, name in cases:
            rc, out, err = run(args, env)
            self.assertEqual(rc, 2, (args, env, err))
            lines = err.strip().splitlines()
            self.assertEqual(len(lines), 1, err)
            self.assertIn(name, lines[0])
            self.assertTrue(lines[0].startswith("tally-replica: "), lines[0])

    def test_bad_dotenv_exits_2(self):
        with tempfile.TemporaryDirectory() as d:
            with open(os.path.join(d, ".env"), "w") as f:
                f.write("SERVICE_PORT=8080\nREDIS_PORT=lots\n")
            rc, _, err = run([], {}, cwd=d)
            self.assertEqual(rc, 2)
            self.assertIn("REDIS_PORT", err)
            self.assertIn(".env", err)

    def test_port_in_use_is_a_runtime_error_not_a_config_error(self):
        import socket
        with socket.socket() as s:
            s.bind(("127.0.0.1", 0))
            s.listen()
            port = s.getsockname()[1]
            rc, _, err = run(["--service-host", "127.0.0.1", "--service-port", str(port), "--mqtt-url",
                              "tcp://127.0.0.1:1"])
        self.assertEqual(rc, 1)
        self.assertIn("cannot listen", err)


class SiteTest(unittest.TestCase):
    """SITE, in both programs: 1-32 of [a-z0-9-], or unset (one site)."""

    def check(self, prog, site):
        env = {k: v for k, v in os.environ.items() if k != "SITE"}
        if site is not None:
            env["SITE"] = site
        return subprocess.run([prog, "--check-config"], env=env, capture_output=True, text=True, timeout=10)

    def test_a_good_name_is_taken_and_shown(self):
        for prog in (REPLICA, PUBLISHER):
            for site in ("eu-west-1", "0", "a" * 32, None):
                p = self.check(prog, site)
                self.assertEqual(p.returncode, 0, (prog, site, p.stderr))
                self.assertIn("SITE=%s\n" % (site or ""), p.stdout)

    def test_a_bad_name_exits_2_naming_it(self):
        for prog in (REPLICA, PUBLISHER):
            for site in ("EU", "eu_west", "eu west", "a" * 33, "s/x", "caf\u00e9", "#"):
                p = self.check(prog, site)
                self.assertEqual(p.returncode, 2, (prog, site, p.stdout))
                lines = p.stderr.strip().splitlines()
                self.assertEqual(len(lines), 1, p.stderr)
                self.assertIn("SITE", lines[0])
                self.assertRegex(lines[0], r"a-z, 0-9 and '-'|longer than 32 characters")
                self.assertEqual(p.stdout, "")


class CheckConfigTest(unittest.TestCase):
    """--check-config: every setting loaded and checked, printed with secrets masked, and
    nothing connected to."""

    def test_prints_the_effective_configuration_and_connects_to_nothing(self):
        import socket
        with socket.socket() as trap, tempfile.NamedTemporaryFile("w", suffix=".secret") as secret:
            trap.bind(("127.0.0.1", 0))
            trap.listen()
            trap.settimeout(0.3)
            port = trap.getsockname()[1]
            secret.write("s3cret-from-a-file\n")
            secret.flush()
            for prog, extra in ((REPLICA, ["--service-port", "8111"]), (PUBLISHER, [])):
                env = {"REDIS_PORT": str(port), "REDIS_PASSWORD": "hunter2", "MQTT_URL": "tcp://127.0.0.1:%d" % port,
                       "MQTT_PASSWORD_FILE": secret.name, "INSTANCE_ID": "c1"}
                p = subprocess.run([prog, "--check-config"] + extra, env=dict(os.environ, **env), capture_output=True,
                                   text=True, timeout=10)
                self.assertEqual(p.returncode, 0, p.stderr)
                self.assertIn("configuration OK", p.stderr)
                settings = dict(line.split("=", 1) for line in p.stdout.splitlines())
                self.assertEqual(settings["REDIS_PORT"], str(port))
                self.assertEqual(settings["INSTANCE_ID"], "c1")
                self.assertEqual(settings["REDIS_PASSWORD"], "(set, not shown)")
                self.assertEqual(settings["MQTT_PASSWORD"], "(set, not shown)", "read from its _FILE")
                self.assertEqual(settings["LOG_FORMAT"], "text")
                self.assertNotIn("hunter2", p.stdout + p.stderr)
                self.assertNotIn("s3cret", p.stdout + p.stderr)
                self.assertTrue(settings["MQTT_CLIENT_ID"], "the default filled in")
                if prog == REPLICA:
                    self.assertEqual(settings["SERVICE_PORT"], "8111")
                with self.assertRaises(socket.timeout, msg="%s connected to Redis or the broker" % prog):
                    trap.accept()[0].close()

    def test_a_bad_setting_or_an_unwritable_log_file_exits_2(self):
        for env, name in (({"REDIS_PORT": "0"}, "REDIS_PORT"), ({"LOG_FILE": "/nonexistent-dir/t.log"}, "LOG_FILE"),
                          ({"IDEMPOTENCY_TTL_S": "1"}, "IDEMPOTENCY_TTL_S"), ({"LOG_FORMAT": "xml"}, "LOG_FORMAT")):
            rc, out, err = run(["--check-config"], env)
            self.assertEqual(rc, 2, (env, err))
            self.assertEqual(len(err.strip().splitlines()), 1, err)
            self.assertIn(name, err)
            self.assertEqual(out, "", "nothing printed as if it were valid")

    def test_a_log_file_is_checked_but_not_written(self):
        with tempfile.TemporaryDirectory() as d:
            path = os.path.join(d, "tally.log")
            rc, _, err = run(["--check-config"], {"LOG_FILE": path})
            self.assertEqual(rc, 0, err)
            self.assertFalse(os.path.exists(path), "--check-config creates nothing")


class LogFormatTest(unittest.TestCase):
    def test_json_lines_for_log_shippers(self):
        port = free_port()
        e = dict(os.environ, LOG_FORMAT="json", INSTANCE_ID="j1", REDIS_PORT=str(port),
                 MQTT_URL="tcp://127.0.0.1:%d" % port, SERVICE_HOST="127.0.0.1", SERVICE_PORT=str(free_port()))
        p = subprocess.Popen([REPLICA], env=e, stderr=subprocess.PIPE, text=True)
        try:
            lines = []
            while len(lines) < 3:  # the start line and Redis's refusals
                line = p.stderr.readline()
                self.assertTrue(line, "the replica went quiet")
                lines.append(line)
        finally:
            p.terminate()
            rest = p.communicate(timeout=15)[1]
        lines += rest.splitlines(keepends=True)
        for line in lines:
            self.assertTrue(line.endswith("\n"))
            event = json.loads(line)
            self.assertEqual(sorted(event), ["fields", "instance", "level", "message", "pid", "program", "time"], line)
            self.assertEqual(event["program"], "tally-replica")
            self.assertEqual(event["instance"], "j1")
            self.assertEqual(event["pid"], p.pid)
            self.assertIn(event["level"], ("debug", "info", "warn", "error"))
            self.assertRegex(event["time"], r"^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z$")
        messages = [json.loads(line)["message"] for line in lines]
        self.assertTrue(any("cannot connect" in m for m in messages), messages)
        refusals = [json.loads(line)["fields"] for line in lines if "cannot connect" in line]
        self.assertIn({"subsystem": "redis", "subject": "127.0.0.1:%d" % port}, refusals)
        self.assertTrue(any(m.startswith("stopped after") for m in messages), "the last line too: %s" % messages[-3:])


class DocumentedOptionsTest(unittest.TestCase):
    """docs/configuration.md names every setting --help lists, for both programs."""

    def test_every_option_is_documented(self):
        root = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
        with open(os.path.join(root, "docs", "configuration.md")) as f:
            doc = f.read()
        for prog in (os.environ["TALLY_REPLICA"], os.environ["TALLY_PUBLISHER"]):
            out = subprocess.run([prog, "--help"], capture_output=True, text=True, timeout=10).stdout
            names = re.findall(r"^  --\S+\s+([A-Z][A-Z0-9_]+)\s", out, re.M)
            self.assertGreater(len(names), 10)
            # NAME_FILE is documented with NAME ("`NAME` / `_FILE`").
            names = [n[:-5] if n.endswith("_FILE") and n[:-5] in names else n for n in names]
            missing = [n for n in names if "`%s`" % n not in doc and "`%s` /" % n not in doc
                       and "`%s[_FILE]`" % n not in doc and "/ `%s" % n not in doc]
            self.assertEqual(missing, [], "%s: settings missing from docs/configuration.md" % prog)
