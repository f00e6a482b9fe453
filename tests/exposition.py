"""Reading Prometheus figures the way a scraper does: exposition text, prometheus_client's parser."""

from __future__ import annotations

from typing import Any

#: (sample name, sorted label pairs) -> value
Samples = dict[tuple[str, tuple[tuple[str, str], ...]], float]

# Samples whose change says nothing a test checks: creation times, and the
# sums and buckets of histograms (their _count says how many were observed).
_NOT_COMPARED = ("_created", "_sum", "_bucket")


def parse(text: str) -> Samples:
    """Every sample of an exposition text, through prometheus_client's own parser."""
    from prometheus_client.parser import text_string_to_metric_families

    samples: Samples = {}
    for family in text_string_to_metric_families(text):
        for sample in family.samples:
            samples[(sample.name, tuple(sorted(sample.labels.items())))] = sample.value
    return samples


def scrape(registry: Any) -> Samples:
    """The samples of ``registry``, read from its exposition text."""
    from prometheus_client import generate_latest

    return parse(generate_latest(registry).decode("utf-8"))


def moved(before: Samples, after: Samples) -> dict[tuple[str, tuple[tuple[str, str], ...]], float]:
    """The samples whose value changed, by how much (creation times, sums and buckets aside)."""
    changes = {}
    for key in before.keys() | after.keys():
        if key[0].endswith(_NOT_COMPARED):
            continue
        delta = after.get(key, 0.0) - before.get(key, 0.0)
        if delta:
            changes[key] = delta
    return changes


def series(name: str, **labels: str) -> tuple[str, tuple[tuple[str, str], ...]]:
    """The key of one sample: ``series("whatsapp_webhooks_total", status="200")``."""
    return name, tuple(sorted(labels.items()))
