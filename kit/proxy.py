"""Proxies the tests put between a program and its server, to fail a connection at a chosen
moment."""
import socket
import threading


class FlakyProxy:
    """A TCP proxy on 127.0.0.1 to another local port that can swallow the bytes of one
    direction (drop_requests / drop_replies) and cut every connection it carries, to make
    a connection fail at a chosen moment: e.g. after Redis applied a command but before
    its reply arrived."""

    def __init__(self, target_port):
        self.target = target_port
        self.drop_requests = threading.Event()
        self.drop_replies = threading.Event()
        self.lock = threading.Lock()
        self.pairs = []
        self.lsock = socket.socket()
        self.lsock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        self.lsock.bind(("127.0.0.1", 0))
        self.lsock.listen(16)
        self.port = self.lsock.getsockname()[1]
        threading.Thread(target=self._accept, daemon=True).start()

    def _accept(self):
        while True:
            try:
                c, _ = self.lsock.accept()
            except OSError:
                return
            try:
                s = socket.create_connection(("127.0.0.1", self.target), timeout=5)
            except OSError:
                c.close()
                continue
            with self.lock:
                self.pairs.append((c, s))
            threading.Thread(target=self._pipe, args=(c, s, self.drop_requests), daemon=True).start()
            threading.Thread(target=self._pipe, args=(s, c, self.drop_replies), daemon=True).start()

    @staticmethod
    def _pipe(src, dst, drop):
        # Once a connection has lost bytes it forwards nothing more in that direction, as a
        # real connection that loses data is dead: passing later bytes on would hand Redis the
        # tail of a half-swallowed command, or the client a reply that belongs to an earlier
        # one (between clear() and cut() in a test, that once gave two requests one total).
        swallowed = False
        try:
            while True:
                data = src.recv(65536)
                if not data:
                    break
                swallowed = swallowed or drop.is_set()
                if not swallowed:
                    dst.sendall(data)
        except OSError:
            pass
        for sock in (src, dst):
            try:
                sock.shutdown(socket.SHUT_RDWR)
            except OSError:
                pass

    def cut(self):
        """Closes every connection carried so far; new ones are accepted as usual."""
        with self.lock:
            pairs, self.pairs = self.pairs, []
        for pair in pairs:
            for sock in pair:
                try:
                    sock.shutdown(socket.SHUT_RDWR)
                except OSError:
                    pass
                sock.close()

    def close(self):
        self.cut()
        self.lsock.close()
