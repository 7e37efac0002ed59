"""The Redis image's entrypoint (broker-config/redis-entrypoint.sh) as local processes: the
shapes it gives one image (single node, HA node, sentinel), how a starting HA node learns its
role from the sentinels, and its bad settings. Real redis-server processes, no Docker: the
entrypoint's REDIS_LISTEN_PORT, REDIS_BIND, REDIS_DATA_DIR and TALLY_CONF_DIR put each one on
a free loopback port with its own data directory."""
import os
import shutil
import subprocess

from kit import resp
from kit.procs import BROKER_PLUGIN, free_port, wait_for, Proc
from kit.testcase import ClusterTest

ROOT = os.path.abspath(os.path.join(os.path.dirname(__file__), "..", ".."))
ENTRYPOINT = os.path.join(ROOT, "broker-config", "redis-entrypoint.sh")
PASSWORD = "image-test-secret"


class ImageProc(Proc):
    """One container's worth: the entrypoint with the image's environment."""

    def __init__(self, test, name, port, env):
        self.port = port
        self.data = os.path.join(test.dir, name + "-data")
        os.makedirs(self.data, exist_ok=True)
        base = {"REDIS_PASSWORD_FILE": test.pw_file, "REDIS_ACL_FILE": test.secret("redis-acl.conf"),
                "SENTINEL_ACL_FILE": test.secret("sentinel-acl.conf"), "REDIS_LISTEN_PORT": str(port), "REDIS_BIND": "127.0.0.1",
                "REDIS_DATA_DIR": self.data, "TALLY_CONF_DIR": os.path.join(ROOT, "broker-config"),
                "TMPDIR": test.dir, "REDIS_ANNOUNCE": "127.0.0.1"}
        base.update(env)
        super().__init__(name, ["bash", ENTRYPOINT], test.dir, env=base)

    def command(self, *args, password=PASSWORD, timeout=5):
        return resp.session("127.0.0.1", self.port, password, args, timeout=timeout)[0]

    def answers(self):
        try:
            return self.command("PING") == "PONG"
        except OSError:
            return False

    def role(self):
        return self.command("ROLE")[0]


class RedisImageTest(ClusterTest):
    def setUp(self):
        super().setUp()
        os.chmod(self.dir, 0o755)  # run as root, the entrypoint hands the data directories to user redis
        self.pw_file = os.path.join(self.dir, "redis_password")
        with open(self.pw_file, "w") as f:
            f.write(PASSWORD)
        # The ACL users of every role, as make-secrets.sh makes them for the containers.
        self.secrets = os.path.join(self.dir, "made")
        subprocess.run([os.path.join(ROOT, "broker-config", "make-secrets.sh"), self.secrets, "--plugin", BROKER_PLUGIN],
                       check=True, capture_output=True, env=dict(os.environ, REDIS_PASSWORD=PASSWORD))

    def secret(self, name):
        return os.path.join(self.secrets, "secrets", name)

    def user(self, name, file):
        with open(self.secret(file)) as f:
            return (name, f.read())

    def image(self, name, port=None, **env):
        return self.add(ImageProc(self, name, port or free_port(), env))

    def sentinels(self, primary_port, n=3):
        ss = [self.image("sentinel-%d" % i, REDIS_MODE="sentinel", REDIS_HA_PRIMARY="127.0.0.1:%d" % primary_port)
              for i in range(1, n + 1)]
        for s in ss:
            s.start()
        for s in ss:
            wait_for(s.answers, what="%s to answer PING" % s.name)
        return ss, ",".join("127.0.0.1:%d" % s.port for s in ss)

    def node(self, name, port, primary_port, sentinels):
        return self.image(name, port, REDIS_HA_PRIMARY="127.0.0.1:%d" % primary_port, REDIS_SENTINELS=sentinels)

    def ha_set(self):
        """Sentinels first (as a swarm may start them), then the first master, then a replica."""
        p1, p2 = free_port(), free_port()
        ss, addrs = self.sentinels(p1)
        first = self.node("redis", p1, p1, addrs).start()
        wait_for(first.answers, timeout=20, what="the first master to start (its log: %s)" % first.log_path)
        self.assertEqual(first.role(), "master")
        second = self.node("redis-2", p2, p1, addrs).start()
        wait_for(second.answers, timeout=20, what="the second node to start")
        wait_for(lambda: second.role() == "slave" and "master_link_status:up" in second.command("INFO", "replication"),
                 what="the second node to sync from the first")
        return ss, first, second

    def test_a_new_set_whose_sentinels_started_first_gets_its_first_master(self):
        ss, first, second = self.ha_set()
        self.assertIn("master of a new set", first.output())
        self.assertIn("the sentinels name 127.0.0.1:%d master" % first.port, second.output())
        # min-replicas-to-write 1 (redis-ha.conf): the master writes once its replica acked
        wait_for(lambda: first.command("SET", "total_count", "41") == "OK", what="the master to take a write")
        wait_for(lambda: second.command("GET", "total_count") == "41", what="the write to reach the replica")

    def test_a_master_that_lost_its_volume_does_not_wipe_its_replicas(self):
        ss, first, second = self.ha_set()
        wait_for(lambda: first.command("SET", "total_count", "1234") == "OK", what="the master to take a write")
        wait_for(lambda: second.command("GET", "total_count") == "1234", what="the write to reach the replica")
        # a sentinel learns the replicas from the master's INFO, which it asks every 10 s
        wait_for(lambda: all(s.command("SENTINEL", "replicas", "tally") for s in ss), timeout=30,
                 what="the sentinels to know the replica")
        first.stop()
        shutil.rmtree(first.data)  # the volume is gone; the node comes back empty at once
        os.makedirs(first.data)
        again = self.add(ImageProc(self, "redis-again", first.port, dict(first.env)))
        again.data = first.data
        again.start()
        # Either it sees itself still named master (before the failover) and refuses, or the
        # failover already happened and it starts as the new master's replica: never an
        # empty master whose replicas resync from nothing.
        wait_for(lambda: not again.alive() or again.answers(), timeout=20, what="the emptied node to decide")
        if not again.alive():
            self.assertEqual(again.p.returncode, 1)
            self.assertIn("its data is gone and they know replicas", again.output())
        else:
            self.assertEqual(again.role(), "slave")
        wait_for(lambda: second.role() == "master", timeout=30, what="the sentinels to promote the replica")
        wait_for(lambda: ss[0].command("SENTINEL", "get-master-addr-by-name", "tally")[1] == str(second.port),
                 what="the sentinels to name the promoted node")
        self.assertEqual(second.command("GET", "total_count"), "1234", "the replica kept its data")

    def test_a_single_node_keeps_an_aof_and_wants_the_password(self):
        n = self.image("single").start()
        wait_for(n.answers, what="the single node to start")
        self.assertEqual(n.role(), "master")
        self.assertEqual(n.command("CONFIG", "GET", "appendonly")[1], "yes")
        # Idempotency-Key answers grow with traffic: a cap below the container's 256 MB, and
        # the oldest answers (keys with a TTL) evicted first, never a refused write.
        self.assertEqual(n.command("CONFIG", "GET", "maxmemory")[1], str(192 * 1024 * 1024))
        self.assertEqual(n.command("CONFIG", "GET", "maxmemory-policy")[1], "volatile-lru")
        with self.assertRaises(Exception) as e:
            n.command("GET", "total_count", password=None)
        self.assertIn("NOAUTH", str(e.exception))
        self.assertTrue(os.path.isdir(os.path.join(n.data, "appendonlydir")))

    def test_each_role_has_its_own_user_with_only_what_it_needs(self):
        ss, first, second = self.ha_set()  # replication (tally-replication) and sentinels (tally-sentinel) work
        replica = self.user("tally-replica", "redis-replica.txt")
        publisher = self.user("tally-publisher", "redis-publisher.txt")
        client = self.user("tally-client", "redis-sentinel-client.txt")
        wait_for(lambda: first.command("INCRBY", "total_count", "5", password=replica) == 5, what="the replica's INCRBY")
        for cmd in (("SET", "total_count", "9"), ("DEL", "total_count"), ("FLUSHALL",), ("CONFIG", "SET", "appendonly", "no"),
                    ("GET", "other"), ("EVAL", "return redis.call('SET', KEYS[1], '9')", "1", "total_count"),
                    ("SENTINEL", "set", "tally", "quorum", "3"), ("ACL", "LIST"), ("SHUTDOWN",)):
            with self.subTest(cmd=cmd), self.assertRaises(RuntimeError) as e:
                first.command(*cmd, password=replica)
            self.assertTrue(str(e.exception).startswith(("NOPERM", "ERR")), e.exception)
        self.assertEqual(first.command("EVAL", "return redis.call('SET', KEYS[1], 'x', 'PX', 1000)", "1", "tally:lifted",
                                       password=replica), "OK", "the lift mark is the replica's")
        self.assertEqual(first.command("GET", "total_count", password=publisher), "5")
        self.assertEqual(first.command("SET", "tally:publisher:leader", "t", "NX", "PX", "1000", password=publisher), "OK")
        with self.assertRaises(RuntimeError):
            first.command("SET", "total_count", "1", password=publisher)
        self.assertEqual(first.command("GET", "total_count"), "5", "nothing but the INCRBY moved it")
        # The programs' user on the sentinels asks for the master and hears failovers, no more.
        self.assertEqual(ss[0].command("SENTINEL", "get-master-addr-by-name", "tally", password=client)[1],
                         str(first.port))
        # every channel the links subscribe to, in one SUBSCRIBE (NOPERM for any one refuses all)
        self.assertEqual(ss[0].command("SUBSCRIBE", "+switch-master", "+promoted-slave", "+selected-slave",
                                       password=client)[0], "subscribe")
        for cmd in (("SENTINEL", "set", "tally", "quorum", "3"), ("SENTINEL", "failover", "tally"),
                    ("SENTINEL", "remove", "tally"), ("CONFIG", "GET", "*")):
            with self.subTest(cmd=cmd), self.assertRaises(RuntimeError):
                ss[0].command(*cmd, password=client)
        # Health checks: PING without any secret, nothing else.
        for n in (first, ss[0]):
            self.assertEqual(n.command("PING", password=("tally-health", "-")), "PONG")
            with self.assertRaises(RuntimeError):
                n.command("GET", "total_count", password=("tally-health", "-"))

    def test_without_the_acl_files_one_password_still_works(self):
        """A deployment of an earlier release has only redis_password: deprecated, still working."""
        absent = os.path.join(self.dir, "absent")
        n = self.image("old", REDIS_ACL_FILE=absent).start()
        wait_for(n.answers, what="the node to start on its single password")
        self.assertEqual(n.command("SET", "total_count", "3"), "OK")
        self.assertIn("one password for everything (deprecated", n.output())

    def test_bad_settings_exit_2_with_one_line(self):
        cases = [
            ({"REDIS_MODE": "primary"}, "REDIS_MODE must be node or sentinel"),
            ({"REDIS_MODE": "sentinel"}, "REDIS_MODE=sentinel needs REDIS_HA_PRIMARY"),
            ({"REDIS_HA_PRIMARY": "redis:port"}, "REDIS_HA_PRIMARY must be host or host:port"),
            ({"REDIS_LISTEN_PORT": "70000"}, "REDIS_LISTEN_PORT must be a port"),
            ({"REDIS_PASSWORD_FILE": os.path.join(self.dir, "absent")}, "missing secret"),
        ]
        for env, words in cases:
            with self.subTest(env=env):
                p = ImageProc(self, "bad", free_port(), env)
                r = subprocess.run(p.argv, env=p.env, cwd=self.dir, capture_output=True, text=True, timeout=20)
                self.assertEqual(r.returncode, 2, r.stderr)
                self.assertEqual(len(r.stderr.strip().splitlines()), 1, r.stderr)
                self.assertIn(words, r.stderr)
