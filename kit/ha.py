"""A Redis set as the containers run it: a master, its Redis replicas and the sentinels."""
from kit import procs


class RedisSet:
    """A master, `replicas` Redis replicas and `sentinels` sentinels (quorum 2), configured as
    shipped: every node with broker-config/redis-ha.conf (a master that no replica confirms
    within 5 s refuses writes), every sentinel's file made by broker-config/sentinel-conf.sh.

    `start(p)` starts each process and keeps it (a test's add, a cluster's bookkeeping) and
    returns it. `master` may be a node made elsewhere (one in a network namespace); `binds`
    are the addresses the replicas and sentinels listen on, `node_args` more arguments for
    the Redis replicas. Returns once every replica confirms writes and every sentinel knows
    the others. `guard=False` leaves redis-ha.conf out: only for tests that cut replication
    by hand to make a master acknowledge what no replica holds, which the shipped file
    refuses."""

    def __init__(self, workdir, start, fsync="everysec", replicas=2, sentinels=3, quorum=2, master=None,
                 binds=("127.0.0.1",), node_args=(), guard=True):
        self.master = start(master or procs.Redis(workdir, fsync=fsync, ha=guard))
        self.replicas = []
        for _ in range(replicas):
            node = procs.Redis(workdir, fsync=fsync, replica_of=self.master, binds=binds, ha=guard)
            node.argv += list(node_args)
            self.replicas.append(start(node))
        m = self.master
        procs.wait_for(lambda: m.replicas_online() == replicas and m.replicas_acking(replicas), timeout=20,
                       what="the Redis replicas to confirm writes")
        self.nodes = [m] + self.replicas
        self.sentinels = [start(procs.Sentinel(workdir, m, quorum=quorum, binds=binds)) for _ in range(sentinels)]
        for s in self.sentinels:
            procs.wait_for(lambda: s.command("SENTINEL", "get-master-addr-by-name", "tally"), what="the sentinels")
            procs.wait_for(lambda: int(dict(zip(*[iter(s.command("SENTINEL", "master", "tally"))] * 2))[
                "num-other-sentinels"]) == sentinels - 1, timeout=20, what="the sentinels to know each other")

    def sentinel_addrs(self, host="127.0.0.1"):
        """REDIS_SENTINELS for a program that reaches the sentinels at `host`."""
        return ",".join("%s:%d" % (host, s.port) for s in self.sentinels)
