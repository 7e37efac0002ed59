"""The one HTTP/1.1 reader of the kit, tally's answer format, and a raw exchange for the
tests that send what no client library would."""
import re
import socket
import time

# A counted answer (text): docs/api.md.
TEXT_RE = re.compile(
    rb"\AYou are talking to instance (?P<instance>[^\n]+)\.\n"
    rb"This is request (?P<n>[0-9]+) to this instance and request (?P<m>[0-9]+) to the cluster\.\n\Z")


def read_response(f, head=False):
    """One HTTP/1.1 response from a buffered socket file: (status, headers, body), headers a
    dict of lower-case names (the last of a repeated name), body bytes. An answer to HEAD
    (@head) has no body whatever its Content-Length says. A connection that ends early, or
    bytes that are not HTTP, raise ConnectionError."""
    line = f.readline(8192)
    if not line:
        raise ConnectionError("the server closed the connection")
    parts = line.split(None, 2)
    if len(parts) < 2 or not parts[0].startswith(b"HTTP/1.") or not parts[1].isdigit():
        raise ConnectionError("not an HTTP status line: %r" % line[:80])
    status = int(parts[1])
    headers = {}
    while True:
        h = f.readline(8192)
        if h in (b"\r\n", b"\n"):
            break
        if not h:
            raise ConnectionError("the server closed the connection in the headers")
        name, _, value = h.decode("latin-1").partition(":")
        headers[name.strip().lower()] = value.strip()
    length = 0 if head else int(headers.get("content-length", "0"))
    body = f.read(length) if length else b""
    if len(body) != length:
        raise ConnectionError("the server closed the connection in the body")
    return status, headers, body


def parse_answer(body):
    """(instance, n, m) of a counted text answer (bytes or str), or None if it is not one."""
    mt = TEXT_RE.match(body.encode() if isinstance(body, str) else body)
    if not mt:
        return None
    return mt["instance"].decode(), int(mt["n"]), int(mt["m"])


def raw_exchange(port, data, timeout=3.0, source="127.0.0.1"):
    """Sends `data` on a fresh connection from `source`; returns (what came back, whether
    the server closed) within `timeout` seconds."""
    with socket.socket() as s:
        s.settimeout(timeout)
        s.bind((source, 0))
        s.connect(("127.0.0.1", port))
        try:
            s.sendall(data)
        except OSError:  # the server may close while a large body is still being sent
            pass
        out, deadline = b"", time.monotonic() + timeout
        while time.monotonic() < deadline:
            s.settimeout(max(0.01, deadline - time.monotonic()))
            try:
                d = s.recv(65536)
            except socket.timeout:
                break
            except OSError:  # reset
                return out, True
            if not d:
                return out, True
            out += d
        return out, False

