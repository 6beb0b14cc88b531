"""Tenant limits `LIMITS#<tenant>` (an operator's overrides of the template's defaults) and the per-minute request
counters `RATE#<tenant>#<window>`: one conditional UpdateItem counts a request and its inputs, or refuses it, the
same for every API instance at once (DynamoDB serialises writes to one item). The same item counts the window's
predictions that went to the backlog lane (`backlog`, inputs) and those of them that have left it (`left`)."""

from __future__ import annotations

from datetime import datetime, timedelta
from typing import Any

from botocore.exceptions import BotoCoreError, ClientError

from inference_core.dal.aws_errors import condition_failed, translate
from inference_core.dal.clients import cached_factory
from inference_core.dal.table import Table, from_attrs, iso, key, to_attrs
from inference_core.domain.limits import LIMIT_NAMES, WINDOW, RateState, TenantLimits
from inference_core.settings import get_settings


def _counter_ttl() -> timedelta:
    """A window's counter outlives its minute as long as its predictions may wait in the backlog lane (DynamoDB's
    TTL deletes it within days anyway: the backlog sum reads only the windows within the prediction TTL)."""
    return timedelta(seconds=get_settings().prediction_ttl_seconds) + timedelta(minutes=10)


class LimitStore:
    def __init__(self, table: Table) -> None:
        self.table = table

    def overrides(self, tenant_id: str) -> dict[str, int]:
        try:
            response = self.table.client.get_item(
                TableName=self.table.name, Key=key(f"LIMITS#{tenant_id}"), ConsistentRead=True
            )
        except (ClientError, BotoCoreError) as exc:
            raise translate(exc, "could not read the tenant's limits") from exc
        item = from_attrs(response.get("Item") or {})
        return {name: int(item[name]) for name in LIMIT_NAMES if name in item}

    def set_overrides(self, tenant_id: str, overrides: dict[str, int | None]) -> dict[str, int]:
        """Set (an int) or drop (None: back to the default) each named limit; the overrides as they now are."""
        sets = {name: value for name, value in overrides.items() if value is not None}
        drops = [name for name, value in overrides.items() if value is None]
        expression: list[str] = []
        names: dict[str, str] = {}
        values: dict[str, Any] = {}
        for n, (name, value) in enumerate(sets.items()):
            names[f"#s{n}"], values[f":s{n}"] = name, value
        assignments = [f"#s{n} = :s{n}" for n in range(len(sets))] + ["kind = :kind", "tenant_id = :tenant"]
        values |= {":kind": "tenant_limits", ":tenant": tenant_id}
        expression.append("SET " + ", ".join(assignments))
        if drops:
            for n, name in enumerate(drops):
                names[f"#d{n}"] = name
            expression.append("REMOVE " + ", ".join(f"#d{n}" for n in range(len(drops))))
        request: dict[str, Any] = {
            "TableName": self.table.name,
            "Key": key(f"LIMITS#{tenant_id}"),
            "UpdateExpression": " ".join(expression),
            "ExpressionAttributeValues": to_attrs(values),
            "ReturnValues": "ALL_NEW",
        }
        if names:
            request["ExpressionAttributeNames"] = names
        try:
            response = self.table.client.update_item(**request)
        except (ClientError, BotoCoreError) as exc:
            raise translate(exc, "could not write the tenant's limits") from exc
        item = from_attrs(response.get("Attributes") or {})
        return {name: int(item[name]) for name in LIMIT_NAMES if name in item}

    def count(
        self, tenant_id: str, window: datetime, inputs: int, limits: TenantLimits, requests: int = 1, used: int = 0
    ) -> RateState:
        """Count `requests` requests of `inputs` inputs in all in this window, unless that passes a limit: then
        nothing is counted and the state says which limit refused it. `used` (inputs actually sent, not taken
        ahead) is added to its own attribute in the same write: the lane is decided from it."""
        resets_at = window + WINDOW
        try:
            response = self.table.client.update_item(
                TableName=self.table.name,
                Key=key(f"RATE#{tenant_id}#{iso(window)}"),
                UpdateExpression="ADD requests :one, inputs :inputs, used :used SET expires_at = :ttl",
                ConditionExpression=(
                    "(attribute_not_exists(requests) OR requests <= :request_room) AND "
                    "(attribute_not_exists(inputs) OR inputs <= :room)"
                ),
                ExpressionAttributeValues=to_attrs(
                    {
                        ":one": requests,
                        ":inputs": inputs,
                        ":used": used,
                        ":request_room": limits.requests_per_minute - requests,
                        ":room": limits.inputs_per_minute - inputs,
                        ":ttl": int((resets_at + _counter_ttl()).timestamp()),
                    }
                ),
                ReturnValues="UPDATED_NEW",
                ReturnValuesOnConditionCheckFailure="ALL_OLD",
            )
        except ClientError as exc:
            if not condition_failed(exc):
                raise translate(exc, "could not count the request") from exc
            old = from_attrs(exc.response.get("Item") or {})
            counted = int(old.get("inputs", 0))
            taken = int(old.get("requests", 0))
            refused = "requests" if taken + requests > limits.requests_per_minute else "inputs"
            return RateState(limits, taken, counted, resets_at, refused, int(old.get("used", 0)))
        except BotoCoreError as exc:
            raise translate(exc, "could not count the request") from exc
        new = from_attrs(response.get("Attributes") or {})
        return RateState(
            limits,
            int(new.get("requests", requests)),
            int(new.get("inputs", inputs)),
            resets_at,
            used=int(new.get("used", used)),
        )

    def add_backlog(self, tenant_id: str, window: datetime, enqueued: int = 0, left: int = 0) -> None:
        """Add inputs enqueued to the backlog lane, or that left it (dispatched, answered, expired), to the count of
        the window their predictions were created in."""
        ttl = int((window + WINDOW + _counter_ttl()).timestamp())
        try:
            self.table.client.update_item(
                TableName=self.table.name,
                Key=key(f"RATE#{tenant_id}#{iso(window)}"),
                UpdateExpression="ADD backlog :enqueued, #left :left SET expires_at = if_not_exists(expires_at, :ttl)",
                ExpressionAttributeNames={"#left": "left"},
                ExpressionAttributeValues=to_attrs({":enqueued": enqueued, ":left": left, ":ttl": ttl}),
            )
        except (ClientError, BotoCoreError) as exc:
            raise translate(exc, "could not count the tenant's backlog") from exc

    def backlog(self, tenant_id: str, windows: list[datetime]) -> list[tuple[int, int]]:
        """(enqueued, left) inputs of the backlog lane per window, for the windows that have any (one BatchGetItem,
        eventually consistent: the sum is a limit's estimate, not a balance)."""
        items = self.table.batch_get(
            (f"RATE#{tenant_id}#{iso(window)}" for window in windows),
            "the tenant's backlog",
            consistent=False,
            attributes=("backlog", "left"),
        )
        return [(int(item.get("backlog", 0)), int(item.get("left", 0))) for item in items if "backlog" in item]


@cached_factory
def limit_store() -> LimitStore:
    return LimitStore(Table(get_settings().table_name))
