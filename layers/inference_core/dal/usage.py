"""Usage counters `USAGE#<tenant>#<day>`, moved exactly once per unit of work: either inside the transaction that
finishes it (a bulk chunk: `update`), or with a marker `USAGEMARK#<unit>` written in the same transaction, so a
second delivery of the same unit counts nothing (`record_once`)."""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from datetime import UTC, date, datetime, timedelta
from typing import Any

from botocore.exceptions import BotoCoreError, ClientError

from inference_core.dal.aws_errors import condition_failed, translate
from inference_core.dal.clients import cached_factory
from inference_core.dal.table import Table, key, to_attrs, transact_write
from inference_core.domain.usage import COUNTERS, UsageCounts
from inference_core.settings import get_settings

# Usage is kept for a year and a month (billing looks back that far); markers as long as a unit can be redelivered.
_USAGE_DAYS = 400
_MARKER_DAYS = 14
# One transaction holds at most 100 items: the marker and 99 tenant-days.
_PER_TRANSACTION = 99


def _pk(tenant_id: str, day: date) -> str:
    return f"USAGE#{tenant_id}#{day.isoformat()}"


class UsageStore:
    def __init__(self, table: Table) -> None:
        self.table = table

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

    def record_once(self, unit: str, usage: Mapping[tuple[str, date], UsageCounts], at: datetime) -> bool:
        """Add `usage` unless this unit was counted before; False when it was (nothing moves twice)."""
        entries = [(tenant_day, counts) for tenant_day, counts in usage.items() if not counts.empty]
        counted = False
        for part, start in enumerate(range(0, len(entries), _PER_TRANSACTION)):
            marker = {
                "Put": {
                    "TableName": self.table.name,
                    "Item": to_attrs(
                        {
                            "pk": f"USAGEMARK#{unit}#{part}",
                            "kind": "usage_marker",
                            "expires_at": int((at + timedelta(days=_MARKER_DAYS)).timestamp()),
                        }
                    ),
                    "ConditionExpression": "attribute_not_exists(pk)",
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
            found[wanted[item["pk"]]] = UsageCounts(**{name: int(item.get(name, 0)) for name in COUNTERS})
        return found


@cached_factory
def usage_store() -> UsageStore:
    return UsageStore(Table(get_settings().table_name))
