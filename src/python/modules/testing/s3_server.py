"""An S3 server for tests, benchmarks and `make dev`: moto's, on 127.0.0.1.

`python -m modules.testing.s3_server [PORT]` prints `S3 server on http://127.0.0.1:<port>` once
it listens, then serves until SIGTERM or SIGINT. Without PORT (or with 0) the kernel picks one. It runs in its own process, so the requests it
serves do not compete with the test process for the GIL.
"""

import signal
import sys
import threading

READY_PATTERN = r"S3 server on http://127\.0\.0\.1:(\d+)"


def main(argv: list[str] | None = None) -> int:
    from moto.server import ThreadedMotoServer  # here: the fixtures import this module's names

    args = sys.argv[1:] if argv is None else argv
    port = int(args[0]) if args else 0
    stop = threading.Event()
    for signum in (signal.SIGTERM, signal.SIGINT):
        signal.signal(signum, lambda *_: stop.set())
    server = ThreadedMotoServer(ip_address="127.0.0.1", port=port, verbose=False)
    server.start()
    host, port = server.get_host_and_port()
    sys.stdout.write(f"S3 server on http://{host}:{port}\n")
    sys.stdout.flush()
    stop.wait()
    server.stop()
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
