"""What a tenant used, per UTC day: kept as counters that move exactly once per finished unit of work (a batch
of predictions, a bulk chunk), and priced at read time with the template's price parameters."""

from __future__ import annotations

from dataclasses import dataclass, fields
from datetime import date, datetime

COUNTERS = ("predictions", "inputs", "tokens", "cache_hits", "bulk_lines", "endpoint_us")


@dataclass
class UsageCounts:
    predictions: int = 0  # succeeded predictions
    inputs: int = 0  # their texts, and the texts of completed bulk lines
    tokens: int = 0  # of those texts, estimated
    cache_hits: int = 0  # texts answered by the result cache instead of the model
    bulk_lines: int = 0  # completed lines of jobs and batches
    # The endpoint's time for the texts it computed, at its configured throughput; microseconds, since one text
    # takes a third of a millisecond at the default 3,000 a second.
    endpoint_us: int = 0

    def add(self, other: UsageCounts) -> None:
        for field in fields(self):
            setattr(self, field.name, getattr(self, field.name) + getattr(other, field.name))

    def as_dict(self) -> dict[str, int]:
        return {field.name: getattr(self, field.name) for field in fields(self)}

    @property
    def empty(self) -> bool:
        return not any(self.as_dict().values())


def usage_day(at: datetime) -> date:
    return at.date()


def endpoint_us(texts_computed: int, items_per_second: float) -> int:
    return round(texts_computed / items_per_second * 1_000_000) if items_per_second > 0 else 0
