"""API keys: `KEY#<key id>` -> tenant, SHA-256 of the secret, revocation time."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from botocore.exceptions import BotoCoreError, ClientError

from inference_core.dal.aws_errors import condition_failed, translate
from inference_core.dal.clients import cached_factory
from inference_core.dal.table import Table, from_attrs, iso, key, parse_dt, to_attrs
from inference_core.domain.api_keys import ApiKey
from inference_core.settings import get_settings


def _to_key(item: dict[str, Any]) -> ApiKey:
    return ApiKey(
        key_id=item["key_id"],
        tenant_id=item["tenant_id"],
        secret_hash=item["secret_hash"],
        created_at=datetime.fromisoformat(item["created_at"]),
        revoked_at=parse_dt(item.get("revoked_at")),
        name=item.get("name"),
    )


class ApiKeyStore:
    def __init__(self, table: Table) -> None:
        self.table = table

    def put(self, api_key: ApiKey) -> None:
        item = {
            "pk": f"KEY#{api_key.key_id}",
            "kind": "api_key",
            "key_id": api_key.key_id,
            "tenant_id": api_key.tenant_id,
            "secret_hash": api_key.secret_hash,
            "created_at": iso(api_key.created_at),
            "name": api_key.name,
            # Listed per tenant through the tenant index: an inbox file is accepted only for a tenant with a key.
            "gsi1pk": f"KEYS#{api_key.tenant_id}",
            "gsi1sk": f"{iso(api_key.created_at)}#{api_key.key_id}",
        }
        try:
            self.table.client.put_item(
                TableName=self.table.name, Item=to_attrs(item), ConditionExpression="attribute_not_exists(pk)"
            )
        except (ClientError, BotoCoreError) as exc:
            raise translate(exc, "could not store the API key") from exc

    def get(self, key_id: str) -> ApiKey | None:
        try:
            response = self.table.client.get_item(TableName=self.table.name, Key=key(f"KEY#{key_id}"))
        except (ClientError, BotoCoreError) as exc:
            raise translate(exc, "could not read the API key") from exc
        return _to_key(from_attrs(response["Item"])) if "Item" in response else None

    def revoke(self, key_id: str, at: datetime) -> bool:
        """False when there is no such key. Revoking twice keeps the first time."""
        try:
            self.table.client.update_item(
                TableName=self.table.name,
                Key=key(f"KEY#{key_id}"),
                UpdateExpression="SET revoked_at = if_not_exists(revoked_at, :at)",
                ConditionExpression="attribute_exists(pk)",
                ExpressionAttributeValues={":at": {"S": iso(at) or ""}},
            )
        except ClientError as exc:
            if condition_failed(exc):
                return False
            raise translate(exc, "could not revoke the API key") from exc
        except BotoCoreError as exc:
            raise translate(exc, "could not revoke the API key") from exc
        return True

    def tenant_has_active_key(self, tenant_id: str) -> bool:
        try:
            response = self.table.client.query(
                TableName=self.table.name,
                IndexName=get_settings().tenant_index_name,
                KeyConditionExpression="gsi1pk = :pk",
                ExpressionAttributeValues={":pk": {"S": f"KEYS#{tenant_id}"}},
                ScanIndexForward=False,
                Limit=50,
            )
        except (ClientError, BotoCoreError) as exc:
            raise translate(exc, "could not list the tenant's API keys") from exc
        for item in response.get("Items", []):
            found = self.get(item["gsi1sk"]["S"].rpartition("#")[2])
            if found is not None and found.revoked_at is None:
                return True
        return False

    def list(self) -> list[ApiKey]:
        """Every key, for operators (a scan: the key count is small and this never runs on a request path)."""
        keys: list[ApiKey] = []
        request: dict[str, Any] = {
            "TableName": self.table.name,
            "FilterExpression": "#kind = :kind",
            "ExpressionAttributeNames": {"#kind": "kind"},
            "ExpressionAttributeValues": {":kind": {"S": "api_key"}},
        }
        try:
            while True:
                response = self.table.client.scan(**request)
                keys.extend(_to_key(from_attrs(item)) for item in response.get("Items", []))
                if "LastEvaluatedKey" not in response:
                    return sorted(keys, key=lambda k: k.created_at)
                request["ExclusiveStartKey"] = response["LastEvaluatedKey"]
        except (ClientError, BotoCoreError) as exc:
            raise translate(exc, "could not list API keys") from exc


@cached_factory
def api_key_store() -> ApiKeyStore:
    return ApiKeyStore(Table(get_settings().table_name))
