"""The api's Prometheus metrics. Created once per process; every app instance shares them."""

from prometheus_client import Counter, Gauge, Histogram

LABELS = ("method", "route", "status")

REQUESTS = Counter(
    "forge_http_requests_total", "HTTP requests answered, by route template.", LABELS
)
REQUEST_DURATION = Histogram(
    "forge_http_request_duration_seconds",
    "Time from request start to the last response byte, by route template.",
    LABELS,
    buckets=(0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0),
)
IN_FLIGHT = Gauge(
    "forge_http_requests_in_flight",
    "HTTP requests being served right now.",
    multiprocess_mode="livesum",  # the sum over live worker processes
)

_Children = tuple[Counter, Histogram]
# Labelled children by (method, route, status): `labels()` validates and locks on every call.
# Bounded: routes are templates, methods are what the HTTP parser accepts.
_children: dict[tuple[str, str, int], _Children] = {}


def observe_request(method: str, route: str, status: int, seconds: float) -> None:
    key = (method, route, status)
    children = _children.get(key)
    if children is None:
        labels = (method, route, str(status))
        children = _children[key] = (REQUESTS.labels(*labels), REQUEST_DURATION.labels(*labels))
    children[0].inc()
    children[1].observe(seconds)


OPEN_STREAMS = Gauge(
    "forge_event_streams_open",
    "Job event streams (GET /v1/jobs/{id}/events as text/event-stream) open right now.",
    multiprocess_mode="livesum",
)
EVENTS_LISTENING = Gauge(
    "forge_events_listening",
    "1 while the api listens for new job events on PostgreSQL (in every live process); 0 "
    "while a listening connection is being reopened and event readers fall back to polling.",
    multiprocess_mode="livemin",
)
