"""Usage counters `USAGE#<tenant>#<day>`, moved exactly once per unit of work: either inside the transaction that
finishes it (a bulk chunk: `update`), or with a marker `USAGEMARK#<unit>` written in the same transaction, so a
second delivery of the same unit counts nothing (`record_once`).

A unit that no later event will count should its worker die (a batch the result cache answered whole: no
notification follows it) is `promise`d first: a pending marker in the open index, which the sweeper finds once it
is due and counts from the records (`promised_due`). Counting the unit replaces the pending marker, by whoever
comes first."""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, date, datetime, timedelta
from typing import Any

from botocore.exceptions import BotoCoreError, ClientError

from inference_core.dal.aws_errors import condition_failed, translate
from inference_core.dal.clients import cached_factory
from inference_core.dal.table import Table, iso, key, to_attrs, transact_write
from inference_core.domain.usage import COUNTERS, UsageCounts
from inference_core.settings import get_settings

# Usage is kept for a year and a month (billing looks back that far); markers as long as a unit can be redelivered.
_USAGE_DAYS = 400
_MARKER_DAYS = 14
# One transaction holds at most 100 items: the marker and 99 tenant-days.
_PER_TRANSACTION = 99
# The open-index partition of pending markers (predictions use OPEN#0..3, jobs their own names).
PROMISED = "OPEN#usage"
_PENDING = "pending"


def _pk(tenant_id: str, day: date) -> str:
    return f"USAGE#{tenant_id}#{day.isoformat()}"


def _marker_pk(unit: str, part: int) -> str:
    return f"USAGEMARK#{unit}#{part}"


def _marker_expiry(at: datetime) -> int:
    return int((at + timedelta(days=_MARKER_DAYS)).timestamp())


@dataclass(frozen=True)
class PromisedUnit:
    unit: str
    subject_ids: list[str]


class UsageStore:
    def __init__(self, table: Table, open_index: str) -> None:
        self.table = table
        self.open_index = open_index

    def update(self, tenant_id: str, day: date, counts: UsageCounts) -> dict[str, Any]:
        """The Update of one tenant-day, for a transaction of the caller's."""
        values = {f":{name}": value for name, value in counts.as_dict().items()}
        expires = datetime(day.year, day.month, day.day, tzinfo=UTC) + timedelta(days=_USAGE_DAYS)
        return {
            "Update": {
                "TableName": self.table.name,
                "Key": key(_pk(tenant_id, day)),
                "UpdateExpression": "ADD "
                + ", ".join(f"{name} :{name}" for name in COUNTERS)
                + " SET kind = :kind, tenant_id = :tenant, expires_at = :ttl",
                "ExpressionAttributeValues": to_attrs(
                    {**values, ":kind": "usage", ":tenant": tenant_id, ":ttl": int(expires.timestamp())}
                ),
            }
        }

    def promise(self, unit: str, subject_ids: Sequence[str], due: datetime) -> None:
        """Mark `unit` as to be counted, from these records, by the sweeper once `due` unless counted first."""
        item = {
            "pk": _marker_pk(unit, 0),
            "kind": "usage_marker",
            "marker_state": _PENDING,
            "subject_ids": list(subject_ids),
            "open_pk": PROMISED,
            "open_due": iso(due),
            "expires_at": _marker_expiry(due),
        }
        try:
            self.table.client.put_item(
                TableName=self.table.name, Item=to_attrs(item), ConditionExpression="attribute_not_exists(pk)"
            )
        except ClientError as exc:
            if not condition_failed(exc):  # promised or counted already: a redelivery
                raise translate(exc, "could not promise usage") from exc
        except BotoCoreError as exc:
            raise translate(exc, "could not promise usage") from exc

    def promised_due(self, now: datetime, limit: int) -> list[PromisedUnit]:
        """Units promised and not counted whose time has come, at most `limit`."""
        try:
            response = self.table.client.query(
                TableName=self.table.name,
                IndexName=self.open_index,
                KeyConditionExpression="open_pk = :pk AND open_due <= :now",
                ExpressionAttributeValues={":pk": {"S": PROMISED}, ":now": {"S": iso(now) or ""}},
                Limit=limit,
            )
        except (ClientError, BotoCoreError) as exc:
            raise translate(exc, "could not read the promised usage") from exc
        pks = [item["pk"]["S"] for item in response.get("Items", [])]
        found = self.table.batch_get(pks, "promised usage") if pks else []
        return [
            PromisedUnit(item["pk"].removeprefix("USAGEMARK#").removesuffix("#0"), list(item.get("subject_ids", [])))
            for item in found
            if item.get("marker_state") == _PENDING
        ]

    def promise_later(self, unit: str, due: datetime) -> None:
        """Its records are not all settled yet: look again at `due`."""
        try:
            self.table.client.update_item(
                TableName=self.table.name,
                Key=key(_marker_pk(unit, 0)),
                UpdateExpression="SET open_due = :due",
                ConditionExpression="marker_state = :pending",
                ExpressionAttributeValues=to_attrs({":due": iso(due), ":pending": _PENDING}),
            )
        except ClientError as exc:
            if not condition_failed(exc):  # counted meanwhile
                raise translate(exc, "could not reschedule promised usage") from exc
        except BotoCoreError as exc:
            raise translate(exc, "could not reschedule promised usage") from exc

    def record_once(self, unit: str, usage: Mapping[tuple[str, date], UsageCounts], at: datetime) -> bool:
        """Add `usage` unless this unit was counted before; False when it was (nothing moves twice). A promised
        unit counts (and leaves the open index) even with nothing to add."""
        entries = [(tenant_day, counts) for tenant_day, counts in usage.items() if not counts.empty]
        counted = False
        for part, start in enumerate(range(0, max(1, len(entries)), _PER_TRANSACTION)):
            marker = {
                "Put": {
                    "TableName": self.table.name,
                    "Item": to_attrs(
                        {"pk": _marker_pk(unit, part), "kind": "usage_marker", "expires_at": _marker_expiry(at)}
                    ),
                    # A pending marker is the promise of this very count: it is replaced, out of the open index.
                    "ConditionExpression": "attribute_not_exists(pk) OR marker_state = :pending",
                    "ExpressionAttributeValues": to_attrs({":pending": _PENDING}),
                }
            }
            updates = [self.update(t, d, c) for (t, d), c in entries[start : start + _PER_TRANSACTION]]
            try:
                transact_write(self.table.client, [marker, *updates])
                counted = True
            except ClientError as exc:
                if not condition_failed(exc, item=0):
                    raise translate(exc, "could not record usage") from exc
            except BotoCoreError as exc:
                raise translate(exc, "could not record usage") from exc
        return counted

    def read(self, tenant_id: str, days: Iterable[date]) -> dict[date, UsageCounts]:
        wanted = {_pk(tenant_id, day): day for day in days}
        found: dict[date, UsageCounts] = {}
        for item in self.table.batch_get(wanted, "usage", consistent=False):
            counts = UsageCounts(**{name: int(item.get(name, 0)) for name in COUNTERS})
            counts.endpoint_us += 1000 * int(item.get("endpoint_ms", 0))  # counted in milliseconds before
            found[wanted[item["pk"]]] = counts
        return found


@cached_factory
def usage_store() -> UsageStore:
    settings = get_settings()
    return UsageStore(Table(settings.table_name), settings.open_index_name)
