"""The webhook outbox, for predictions and jobs alike.

The conditional write that causes an event (a prediction finishing or starting, a job finishing or reporting
progress) keeps it on the record (`outbox`), so the write and its event stand or fall together. Right after the
write, `flush` queues the record's events for the sender function and takes them off the record. Whatever this
cannot do (SQS refuses, the function dies in between) stays on the record, whose open-index entry makes it due for
the sweeper a little later, and the sweeper flushes it. An event may therefore be queued twice, never lost; it
keeps its webhook-id, so receivers drop the duplicate.
"""

from __future__ import annotations

from collections.abc import Iterable
from datetime import datetime
from typing import TYPE_CHECKING, Any, Protocol

from inference_core.dal.predictions import prediction_store
from inference_core.dal.webhook_events import EventMessage, webhook_events
from inference_core.domain.clock import utc_now
from inference_core.domain.predictions import Prediction
from inference_core.domain.webhooks import PendingEvent
from inference_core.errors import DependencyError
from inference_core.observability import MetricUnit, logger, metrics

if TYPE_CHECKING:  # the dispatcher flushes predictions only: job code stays off its cold start
    from inference_core.domain.jobs import Job


def flush(records: Iterable[Prediction | Job]) -> int:
    """Queue the events kept on these records and take them off; returns how many were queued."""
    # A finished record with a webhook stays in the sweeper's index until its outbox is empty, even when this
    # transition caused no event (an earlier one may still be on it): it is closed here.
    pending = [record for record in records if record.outbox or (_finished(record) and record.webhook)]
    if not pending:
        return 0
    messages = [_message(record, event.event.value, event.webhook_id) for record in pending for event in record.outbox]
    queued = webhook_events().send_many(messages)
    for record in pending:
        sent = [event for event in record.outbox if event.webhook_id in queued]
        try:
            if sent or _finished(record):
                _store(record).clear_outbox(record, sent)
            if len(sent) < len(record.outbox):
                _store(record).outbox_due(record, utc_now())
        except DependencyError:  # the record keeps its events, due for the sweeper a little later anyway
            logger.warning("webhook outbox not updated", subject_id=record.id)
    deferred = len(messages) - len(queued)
    if deferred:
        logger.warning("webhook events left for the sweeper", count=deferred)
        metrics.add_metric(name="WebhookEventsDeferred", unit=MetricUnit.Count, value=deferred)
    return len(queued)


class _OutboxStore(Protocol):
    def clear_outbox(self, record: Any, queued: Iterable[PendingEvent]) -> None: ...

    def outbox_due(self, record: Any, at: datetime) -> None: ...


def _finished(record: Prediction | Job) -> bool:
    return record.status.is_terminal if isinstance(record, Prediction) else record.completed_at is not None


def _store(record: Prediction | Job) -> _OutboxStore:
    if isinstance(record, Prediction):
        return prediction_store()
    from inference_core.dal.jobs import job_store

    return job_store()


def _message(record: Prediction | Job, event: str, msg_id: str) -> EventMessage:
    subject = "prediction" if isinstance(record, Prediction) else "job"
    return EventMessage(event, subject, record.id, record.tenant_id, record.webhook or "", msg_id)
