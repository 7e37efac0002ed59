"""The shipped edge (docker/haproxy.cfg) rendered for servers on loopback."""
import re


def render_edge(cfg_text, edge_port, stats_port, replicas):
    """The shipped haproxy.cfg with Docker's resolvers replaced by static loopback servers
    and the binds moved to loopback ports; every other line as shipped."""
    out = re.sub(r"\nresolvers docker\n(?:    .*\n)+", "\n", cfg_text)
    out = out.replace(" resolvers docker init-addr none", "")
    servers = "".join("    server replica%d 127.0.0.1:%d\n" % (i + 1, r.port) for i, r in enumerate(replicas))
    out = re.sub(r"    server-template .*\n", servers, out)
    out = out.replace("bind :8080", "bind 127.0.0.1:%d" % edge_port).replace("bind :8404", "bind 127.0.0.1:%d" % stats_port)
    assert "resolvers" not in out and "server-template" not in out, "the edge configuration changed shape"
    return out
