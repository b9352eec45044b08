"""Reading metrics the way Prometheus does: scrape text, parse it, pick samples."""

from __future__ import annotations

import httpx
from prometheus_client.parser import text_string_to_metric_families

from voxflow.observability import exposition

Samples = dict[tuple[str, frozenset[tuple[str, str]]], float]


def parse(text: str) -> Samples:
    """Every sample of a Prometheus text exposition, keyed by name and labels."""
    return {
        (sample.name, frozenset(sample.labels.items())): sample.value
        for family in text_string_to_metric_families(text)
        for sample in family.samples
    }


def scrape(url: str) -> Samples:
    """GET a /metrics endpoint and parse it."""
    response = httpx.get(url, timeout=10)
    response.raise_for_status()
    assert response.headers["content-type"].startswith("text/plain")
    return parse(response.text)


def local() -> Samples:
    """This process group's metrics (the test suite's directory), as an endpoint serves them."""
    body, _ = exposition.render(exposition.group_registry())
    return parse(body.decode())


def value(samples: Samples, name: str, **labels: str) -> float:
    """One sample's value (0 when absent: a counter never incremented)."""
    return samples.get((name, frozenset(labels.items())), 0.0)
