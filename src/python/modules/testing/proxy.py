"""A TCP proxy for failure tests over real sockets. `sever()` cuts every open connection (both
ends see it closed) while new ones go through, as a broken network path or a restarted load
balancer does: how a client's resume is tested. `stall(s)` lets no byte through either way for a
while and keeps connections open: its clients see what they would of a server stopped with
SIGSTOP (or `docker pause`), without having to own the server process."""

import socket
import threading
from collections.abc import Iterator
from contextlib import contextmanager, suppress


class FaultyProxy:
    def __init__(self, host: str, port: int) -> None:
        self._target = (host, port)
        self._lock = threading.Lock()
        self._open: set[tuple[socket.socket, socket.socket]] = set()  # (client, server)
        self._flowing = threading.Event()
        self._flowing.set()
        self._closed = threading.Event()
        self._listener = socket.create_server(("127.0.0.1", 0))
        self.port = int(self._listener.getsockname()[1])
        self.url = f"http://127.0.0.1:{self.port}"
        threading.Thread(target=self._accept, daemon=True).start()

    def sever(self) -> int:
        """Cuts every open connection; returns how many were open."""
        with self._lock:
            cut, self._open = self._open, set()
        for pair in cut:
            _shut(pair)
        return len(cut)

    def stall(self, seconds: float) -> None:
        """Blocks for `seconds`, during which nothing is forwarded."""
        self._flowing.clear()
        try:
            self._closed.wait(seconds)
        finally:
            self._flowing.set()

    def close(self) -> None:
        self._closed.set()
        self._listener.close()
        self.sever()

    def _accept(self) -> None:
        while True:
            try:
                client, _ = self._listener.accept()
            except OSError:
                return  # closed
            try:
                server = socket.create_connection(self._target)
            except OSError:
                client.close()
                continue
            pair = (client, server)
            with self._lock:
                self._open.add(pair)
            for source, sink in (pair, (server, client)):
                threading.Thread(target=self._pump, args=(pair, source, sink), daemon=True).start()

    def _pump(
        self,
        pair: tuple[socket.socket, socket.socket],
        source: socket.socket,
        sink: socket.socket,
    ) -> None:
        try:
            while data := source.recv(65536):
                self._flowing.wait()
                sink.sendall(data)
        except OSError:
            pass
        finally:
            # One direction ended: so does the other (its pump then closes its own source).
            _shut(pair)
            source.close()
            with self._lock:
                self._open.discard(pair)


def _shut(pair: tuple[socket.socket, socket.socket]) -> None:
    for end in pair:
        with suppress(OSError):
            end.shutdown(socket.SHUT_RDWR)


@contextmanager
def faulty_proxy(host: str, port: int) -> Iterator[FaultyProxy]:
    proxy = FaultyProxy(host, port)
    try:
        yield proxy
    finally:
        proxy.close()
