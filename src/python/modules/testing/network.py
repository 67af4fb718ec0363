"""Network stand-ins for failure tests: a port nobody listens on, a peer that never answers."""

import socket
from collections.abc import Iterator
from contextlib import contextmanager


def closed_port() -> int:
    """A port with no listener (connections are refused): one the kernel just handed out and
    that was closed again, so nothing listens on it for the next moments. Also what a test hands
    a server to listen on."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


@contextmanager
def silent_listener() -> Iterator[int]:
    """A port that accepts TCP connections (the kernel completes the handshake) but never
    reads or answers: what a hung server looks like to a client."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        sock.listen(64)
        port: int = sock.getsockname()[1]
        yield port
