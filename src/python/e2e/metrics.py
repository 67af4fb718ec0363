"""Reading a Forge process's /metrics in tests: its samples, and one series' value."""

import httpx
from prometheus_client.parser import text_string_to_metric_families

type Sample = tuple[str, dict[str, str], float]


def samples(base_url: str) -> list[Sample]:
    text = httpx.get(f"{base_url}/metrics", timeout=30).raise_for_status().text
    return [
        (sample.name, sample.labels, sample.value)
        for family in text_string_to_metric_families(text)
        for sample in family.samples
    ]


def value(scraped: list[Sample], name: str, labels: dict[str, str]) -> float:
    """The series' value in `scraped` (0 if it does not exist yet); `labels` must all match."""
    values = [
        sample_value
        for sample_name, sample_labels, sample_value in scraped
        if sample_name == name and labels.items() <= sample_labels.items()
    ]
    assert len(values) <= 1, f"{name}{labels} matches several series"
    return values[0] if values else 0.0
