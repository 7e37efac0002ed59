"""The one RESP client of the kit: commands on a fresh connection to Redis or a sentinel.

Replies come back as str, int, None or lists of them; an error reply raises RuntimeError."""
import socket


def session(host, port, password, *commands, timeout=5):
    """Commands in turn on one fresh connection, after AUTH if `password`; their replies.
    `password` may be a (user, password) pair: AUTH as that ACL user."""
    with socket.create_connection((host, port), timeout=timeout) as s:
        f = s.makefile("rb")
        if password:
            s.sendall(encode(["AUTH"] + (list(password) if isinstance(password, tuple) else [password])))
            read_reply(f)
        out = []
        for cmd in commands:
            s.sendall(encode([str(a) for a in cmd]))
            out.append(read_reply(f))
        return out


def command(addr, *args, password=None, timeout=5):
    """One command at "host:port" (or a (host, port) pair); its reply."""
    host, port = split_addr(addr)
    return session(host, port, password, args, timeout=timeout)[0]


def split_addr(addr):
    """(host, port) of "host:port" ("[::1]:6379" too), or of a (host, port) pair."""
    if isinstance(addr, tuple):
        return addr
    host, _, port = addr.rpartition(":")
    return (host.strip("[]") or "127.0.0.1"), int(port)


def total(addr, password=None, timeout=5):
    """GET total_count (0 while it does not exist)."""
    v = command(addr, "GET", "total_count", password=password, timeout=timeout)
    return int(v) if v is not None else 0


def encode(args):
    out = b"*%d\r\n" % len(args)
    for a in args:
        a = a.encode()
        out += b"$%d\r\n%s\r\n" % (len(a), a)
    return out


def read_reply(f):
    line = f.readline()
    if not line:
        raise ConnectionError("redis closed the connection")
    kind, rest = line[:1], line[1:-2].decode()
    if kind == b"+":
        return rest
    if kind == b"-":
        raise RuntimeError(rest)
    if kind == b":":
        return int(rest)
    if kind == b"$":
        n = int(rest)
        if n < 0:
            return None
        data = f.read(n + 2)
        return data[:-2].decode()
    if kind == b"*":
        return [read_reply(f) for _ in range(int(rest))]
    raise RuntimeError("bad RESP: %r" % line)
