"""Container health probe: `python -m modules.observability.probe api|worker|reconciler [--ready]` exits 0
when the process's own /healthz (alive; with --ready, /readyz: can work now) on localhost
answers 200, else 1 with the reason on stderr.

The images' HEALTHCHECK asks /healthz; the Compose file asks /readyz. Reads the same settings as
the process, so ports agree.
"""

import argparse
import sys
import urllib.error
import urllib.request

from modules.settings import settings_or_exit

TIMEOUT_S = 2


def main(argv: list[str]) -> int:
    parser = argparse.ArgumentParser(prog="probe")
    parser.add_argument("process", choices=["api", "worker", "reconciler"])
    parser.add_argument("--ready", action="store_true", help="ask /readyz instead of /healthz")
    try:
        args = parser.parse_args(argv)
    except SystemExit as exit:  # argparse printed the usage
        return int(exit.code or 0)
    settings = settings_or_exit("probe")
    port = {
        "api": settings.api_port,
        "worker": settings.worker_metrics_port,
        "reconciler": settings.reconciler_metrics_port,
    }[args.process]
    url = f"http://127.0.0.1:{port}/{'readyz' if args.ready else 'healthz'}"
    try:
        with urllib.request.urlopen(url, timeout=TIMEOUT_S) as response:
            status = response.status
    except urllib.error.HTTPError as error:  # a 503: not ready
        sys.stderr.write(f"probe: {url}: {error.code} {error.reason}\n")
        return 1
    except (urllib.error.URLError, OSError) as error:
        sys.stderr.write(f"probe: {url}: {error}\n")
        return 1
    return 0 if status == 200 else 1


if __name__ == "__main__":
    raise SystemExit(main(sys.argv[1:]))
