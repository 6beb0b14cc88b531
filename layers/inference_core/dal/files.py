"""File records `FILE#<id>`, listed per tenant on the tenant index (`FILES#<tenant>`, by creation time). DynamoDB's
TTL removes a record once its file has expired; reads treat it as gone from its expiry on."""

from __future__ import annotations

from collections.abc import Mapping
from datetime import datetime, timedelta
from typing import Any

from botocore.exceptions import BotoCoreError, ClientError

from inference_core.dal.aws_errors import condition_failed, translate
from inference_core.dal.clients import cached_factory
from inference_core.dal.table import InvalidCursor, Table, from_attrs, iso, key, to_attrs
from inference_core.domain.files import FilePurpose, StoredFile
from inference_core.settings import get_settings

# Kept a little past its expiry, so a read just after it still finds the record (and answers 404 for it).
_TTL_MARGIN = timedelta(days=1)


def _pk(file_id: str) -> str:
    return f"FILE#{file_id}"


def _partition(tenant_id: str) -> str:
    return f"FILES#{tenant_id}"


def _sort_key(file: StoredFile) -> str:
    return f"{iso(file.created_at)}#{file.id}"


def _to_item(file: StoredFile) -> dict[str, Any]:
    return {
        "pk": _pk(file.id),
        "kind": "file",
        "id": file.id,
        "tenant_id": file.tenant_id,
        "created_at": iso(file.created_at),
        "filename": file.filename,
        "purpose": file.purpose.value,
        "size_bytes": file.bytes,
        "file_expires_at": iso(file.expires_at),
        "object_key": file.object_key,
        "gsi1pk": _partition(file.tenant_id),
        "gsi1sk": _sort_key(file),
        "expires_at": int((file.expires_at + _TTL_MARGIN).timestamp()),
    }


def _to_file(item: Mapping[str, Any]) -> StoredFile:
    return StoredFile(
        id=item["id"],
        tenant_id=item["tenant_id"],
        filename=item["filename"],
        purpose=FilePurpose(item["purpose"]),
        bytes=int(item["size_bytes"]),
        created_at=datetime.fromisoformat(item["created_at"]),
        expires_at=datetime.fromisoformat(item["file_expires_at"]),
        object_key=item["object_key"],
    )


class FileStore:
    def __init__(self, table: Table, tenant_index: str) -> None:
        self.table = table
        self.tenant_index = tenant_index

    def create(self, file: StoredFile) -> bool:
        """False when a file with this id exists (a batch's result file written twice)."""
        try:
            self.table.client.put_item(
                TableName=self.table.name,
                Item=to_attrs(_to_item(file)),
                ConditionExpression="attribute_not_exists(pk)",
            )
        except ClientError as exc:
            if condition_failed(exc):
                return False
            raise translate(exc, "could not write the file record") from exc
        except BotoCoreError as exc:
            raise translate(exc, "could not write the file record") from exc
        return True

    def get(self, file_id: str) -> StoredFile | None:
        try:
            response = self.table.client.get_item(TableName=self.table.name, Key=key(_pk(file_id)), ConsistentRead=True)
        except (ClientError, BotoCoreError) as exc:
            raise translate(exc, "could not read the file record") from exc
        item = response.get("Item")
        return _to_file(from_attrs(item)) if item and item.get("kind", {}).get("S") == "file" else None

    def delete(self, file_id: str) -> bool:
        """False when it was gone already."""
        try:
            self.table.client.delete_item(
                TableName=self.table.name, Key=key(_pk(file_id)), ConditionExpression="attribute_exists(pk)"
            )
        except ClientError as exc:
            if condition_failed(exc):
                return False
            raise translate(exc, "could not delete the file record") from exc
        except BotoCoreError as exc:
            raise translate(exc, "could not delete the file record") from exc
        return True

    def list_for_tenant(
        self,
        tenant_id: str,
        limit: int,
        after: StoredFile | None,
        newest_first: bool,
        keep: Any = None,
    ) -> tuple[list[StoredFile], bool]:
        """Up to `limit` files after `after` (in the order asked), those `keep` accepts, and whether there are
        more. InvalidCursor when `after` is another tenant's."""
        partition = _partition(tenant_id)
        query: dict[str, Any] = {
            "TableName": self.table.name,
            "IndexName": self.tenant_index,
            "KeyConditionExpression": "gsi1pk = :pk",
            "ExpressionAttributeValues": {":pk": {"S": partition}},
            "ScanIndexForward": not newest_first,
            "Limit": min(limit + 1, 1000),
        }
        if after is not None:
            if after.tenant_id != tenant_id:
                raise InvalidCursor("after: no such file")
            query["ExclusiveStartKey"] = {
                "pk": {"S": _pk(after.id)},
                "gsi1pk": {"S": partition},
                "gsi1sk": {"S": _sort_key(after)},
            }
        found: list[StoredFile] = []
        try:
            while len(found) <= limit:
                response = self.table.client.query(**query)
                ids = [item["pk"]["S"] for item in response.get("Items", [])]
                records = {item["pk"]: _to_file(item) for item in self.table.batch_get(ids, "files")}
                found += [records[i] for i in ids if i in records and (keep is None or keep(records[i]))]
                if "LastEvaluatedKey" not in response:
                    break
                query["ExclusiveStartKey"] = response["LastEvaluatedKey"]
        except (ClientError, BotoCoreError) as exc:
            raise translate(exc, "could not list files") from exc
        return found[:limit], len(found) > limit


@cached_factory
def file_store() -> FileStore:
    settings = get_settings()
    return FileStore(Table(settings.table_name), settings.tenant_index_name)
