"""Container health probe: `python -m modules.observability.probe api|worker` exits 0 when the
process's own /healthz on localhost answers 200, else 1 with the reason on stderr.

Used by the images' HEALTHCHECK; reads the same settings as the process, so ports agree.
"""

import sys
import urllib.error
import urllib.request

from modules.settings import settings_or_exit

TIMEOUT_S = 2


def main(argv: list[str]) -> int:
    settings = settings_or_exit("probe")
    ports = {"api": settings.api_port, "worker": settings.worker_metrics_port}
    if len(argv) != 1 or argv[0] not in ports:
        sys.stderr.write(f"usage: probe {'|'.join(ports)}\n")
        return 2
    url = f"http://127.0.0.1:{ports[argv[0]]}/healthz"
    try:
        with urllib.request.urlopen(url, timeout=TIMEOUT_S) as response:
            status = response.status
    except (urllib.error.URLError, OSError) as error:
        sys.stderr.write(f"probe: {url}: {error}\n")
        return 1
    return 0 if status == 200 else 1


if __name__ == "__main__":
    raise SystemExit(main(sys.argv[1:]))
