"""Each tenant's webhook signing secret: `WHSEC#<tenant>`, the current secret and, for 24 h after a rotation, the
previous one (deliveries are signed with both meanwhile).

Secrets must be recoverable to sign, so they cannot be hashed: they live in the table, which is encrypted at rest
(SSE with KMS), readable only by the roles that serve or sign webhooks, and they are never logged.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

from botocore.exceptions import BotoCoreError, ClientError

from inference_core.dal.aws_errors import condition_failed, translate
from inference_core.dal.clients import cached_factory
from inference_core.dal.table import Table, from_attrs, iso, key, parse_dt, to_attrs
from inference_core.settings import get_settings


@dataclass(frozen=True)
class SigningSecrets:
    current: str
    previous: str | None = None
    previous_until: datetime | None = None

    def in_use(self, now: datetime) -> list[str]:
        """What to sign with now: the current secret, and the previous one until its grace period ends."""
        keep_previous = self.previous and self.previous_until and now < self.previous_until
        return [self.current, *([self.previous] if keep_previous and self.previous else [])]


def _pk(tenant_id: str) -> str:
    return f"WHSEC#{tenant_id}"


class WebhookSecretStore:
    def __init__(self, table: Table) -> None:
        self.table = table

    def get(self, tenant_id: str) -> SigningSecrets | None:
        try:
            response = self.table.client.get_item(
                TableName=self.table.name, Key=key(_pk(tenant_id)), ConsistentRead=True
            )
        except (ClientError, BotoCoreError) as exc:
            raise translate(exc, "could not read the webhook secret") from exc
        if "Item" not in response:
            return None
        item = from_attrs(response["Item"])
        return SigningSecrets(item["secret"], item.get("previous"), parse_dt(item.get("previous_until")))

    def create(self, tenant_id: str, secret: str, at: datetime) -> bool:
        """False when the tenant has one already (another request made it first)."""
        item = {"pk": _pk(tenant_id), "kind": "webhook_secret", "secret": secret, "created_at": iso(at)}
        try:
            self.table.client.put_item(
                TableName=self.table.name, Item=to_attrs(item), ConditionExpression="attribute_not_exists(pk)"
            )
        except ClientError as exc:
            if condition_failed(exc):
                return False
            raise translate(exc, "could not store the webhook secret") from exc
        except BotoCoreError as exc:
            raise translate(exc, "could not store the webhook secret") from exc
        return True

    def rotate(self, tenant_id: str, expected_current: str, new: str, previous_until: datetime) -> bool:
        """current -> previous (kept until `previous_until`), `new` -> current; False if the current one changed
        meanwhile (a concurrent rotation), so two rotations never lose a secret that is still being used."""
        try:
            self.table.client.update_item(
                TableName=self.table.name,
                Key=key(_pk(tenant_id)),
                UpdateExpression="SET secret = :new, previous = :old, previous_until = :until",
                ConditionExpression="secret = :old",
                ExpressionAttributeValues=to_attrs(
                    {":new": new, ":old": expected_current, ":until": iso(previous_until)}
                ),
            )
        except ClientError as exc:
            if condition_failed(exc):
                return False
            raise translate(exc, "could not rotate the webhook secret") from exc
        except BotoCoreError as exc:
            raise translate(exc, "could not rotate the webhook secret") from exc
        return True


@cached_factory
def webhook_secret_store() -> WebhookSecretStore:
    return WebhookSecretStore(Table(get_settings().table_name))
