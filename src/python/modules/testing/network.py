"""Network stand-ins for failure tests: a port nobody listens on, a peer that never answers."""

import socket
from collections.abc import Iterator
from contextlib import contextmanager

from modules.testing.processes import reserve_free_port


def closed_port() -> int:
    """A port with no listener (connections are refused), at least for the next moments."""
    return reserve_free_port()


@contextmanager
def silent_listener() -> Iterator[int]:
    """A port that accepts TCP connections (the kernel completes the handshake) but never
    reads or answers: what a hung server looks like to a client."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        sock.listen(64)
        port: int = sock.getsockname()[1]
        yield port
