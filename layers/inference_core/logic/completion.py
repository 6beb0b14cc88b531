"""Completion: turn one SageMaker async notification into finished status records, one per prediction.

The dispatcher marks a batch's predictions `running` before it invokes the endpoint, so by the time any
notification exists every prediction it concerns is `running` in this batch, or has moved on (cancelled, requeued
into another batch, or finished by a duplicate notification); completion never waits for anything.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field, replace
from datetime import datetime
from typing import Any

from inference_core.dal.batches import batch_store
from inference_core.dal.objects import batch_hits_key, batch_input_key, batch_merged_key, object_store
from inference_core.dal.predictions import prediction_store
from inference_core.dal.results import result_store
from inference_core.domain.batches import (
    AsyncInferenceNotification,
    BatchLine,
    BatchRecord,
    InvocationStatus,
    LocatedResult,
    ResultLine,
)
from inference_core.domain.clock import utc_now
from inference_core.domain.documents import InvalidDocument
from inference_core.domain.predictions import ErrorInfo, Prediction, PredictionStatus
from inference_core.domain.result_cache import CachedEmbedding, fresh_entries, is_complete, merge, result_line
from inference_core.logic import outbox, usage
from inference_core.logic.result_cache import write_back
from inference_core.observability import MetricUnit, logger, metrics
from inference_core.settings import get_settings

# A batch output holds at most a few hundred predictions of up to 256 embeddings each.
MAX_OUTPUT_BYTES = 512 * 1024 * 1024


class MalformedNotification(ValueError):
    """The message is not a SageMaker async-inference notification we can act on."""


@dataclass
class CompletionOutcome:
    batch_id: str
    succeeded: list[str] = field(default_factory=list)
    failed: list[str] = field(default_factory=list)
    ignored: list[str] = field(default_factory=list)
    finished: list[Prediction] = field(default_factory=list)  # as the finishing writes left them


def parse_notification(body: str) -> AsyncInferenceNotification:
    """Accepts the raw notification (raw message delivery) or one wrapped in an SNS envelope."""
    try:
        document = json.loads(body)
        if isinstance(document, dict) and document.get("Type") == "Notification" and "Message" in document:
            document = json.loads(document["Message"])
        return AsyncInferenceNotification.from_document(document)
    except (ValueError, TypeError, RecursionError) as exc:
        raise MalformedNotification("not a SageMaker async inference notification") from exc


def parse_results(body: bytes) -> dict[str, LocatedResult]:
    """Index the model's output lines by prediction id, with each line's byte range in the object (so a status
    record can point at it); a line that is not valid JSON is skipped alone.

    Lines are split on "\n" only, as JSON Lines frames them: a text may hold U+2028 or U+0085 unescaped."""
    results: dict[str, LocatedResult] = {}
    start = 0
    for number, raw in enumerate(body.split(b"\n"), start=1):
        line_start, start = start, start + len(raw) + 1
        if not raw.strip():
            continue
        try:
            line = ResultLine.from_json(raw)
        except InvalidDocument:
            logger.warning("malformed output line", line=number)
            continue
        if line.id is not None and (line.output is not None or line.error is not None):
            results.setdefault(line.id, LocatedResult(line=line, start=line_start, end=line_start + len(raw) - 1))
    return results


def complete(
    notification: AsyncInferenceNotification, now: datetime | None = None, prediction_ids: list[str] | None = None
) -> CompletionOutcome:
    """Finish the batch's predictions that are still running in it. `prediction_ids` (the sweeper's) stands in
    for the batch record when that was never written."""
    batch_id = notification.inference_id
    outcome = CompletionOutcome(batch_id=batch_id)
    batch = batch_store().get(batch_id)
    if prediction_ids is None:
        if batch is not None:
            prediction_ids = batch.prediction_ids
        elif notification.request_parameters.input_location == object_store().uri(batch_input_key(batch_id)):
            # Ours, but not recorded: a fast endpoint beat the record's write, or the dispatcher took an invocation
            # timeout for a refusal. The batch input names its predictions; the batch-id condition on every write
            # keeps any that went out again in another batch untouched.
            prediction_ids = _ids_in_input(batch_input_key(batch_id))
        else:
            logger.warning("notification for an unknown batch", batch_id=batch_id)
            metrics.add_metric(name="UnknownBatchNotifications", unit=MetricUnit.Count, value=1)
            return outcome

    completed = notification.invocation_status == InvocationStatus.COMPLETED
    if completed and not notification.response_parameters.output_location:
        raise MalformedNotification("a Completed notification without responseParameters.outputLocation")
    now = now or utc_now()
    hits_object = object_store().uri(batch_hits_key(batch_id))
    if batch is None and notification.response_parameters.output_location == hits_object:
        # The sweeper's, for a batch the cache answered whole whose dispatcher died: every text was a hit.
        batch = usage.answered_whole(batch_id, prediction_ids, now, hits_location=hits_object)
    # Without a record, only the hits object knows the batch's cached parts and the predictions it answered whole
    # (they are not in the input); usage counts those too.
    found = unrecorded_hits(batch_id) if batch is None else None
    hits = found[1] if found is not None else None
    cached = _cached_texts(hits) if hits is not None else None
    members = [*prediction_ids, *(batch.prediction_ids if batch else hits or {})]
    # One read per batch: late and duplicate notifications of recorded batches stop here without touching S3.
    current = prediction_store().get_many(list(dict.fromkeys(members)))
    wanted = set(prediction_ids)
    ready = [
        p
        for p in current.values()
        if p.id in wanted and p.status == PredictionStatus.RUNNING and p.batch_id == batch_id
    ]
    outcome.ignored += [pid for pid in prediction_ids if pid not in {p.id for p in ready}]
    if not ready:
        # Finished before (a duplicate, or a delivery that died after its writes): count it, once, if not yet.
        usage.record_batch(batch_id, current.values(), batch, now, cached)
        return outcome
    results: dict[str, LocatedResult] = {}
    output_location = notification.response_parameters.output_location or ""
    if completed:
        results = parse_results(object_store().read(output_location, MAX_OUTPUT_BYTES))
        # Keys of the texts the model saw, in its order: the batch record has them (none without a record).
        fill_keys = batch.fill_keys if batch else {}
        write_back(_fresh_entries(ready, results, fill_keys), now)
    if batch is None:
        if hits is not None:
            results = _merge_hits(batch_id, results, hits, hits_object)
    # Read only when something needs it: gaps to fill, or a whole hit the dispatcher did not get to finish.
    elif batch.hits_location and (batch.partial_hits or {p.id for p in ready} & set(batch.answered_ids)):
        recorded_hits = parse_results(object_store().read(batch.hits_location, MAX_OUTPUT_BYTES))
        results = _merge_hits(batch_id, results, recorded_hits, batch.hits_location)
    for prediction in ready:
        _settle(prediction, notification, output_location, results, now, outcome)
    outbox.flush(outcome.finished)
    _record_usage(batch_id, current, outcome, batch, now, cached)
    return outcome


def _record_usage(
    batch_id: str,
    before: dict[str, Prediction],
    outcome: CompletionOutcome,
    batch: BatchRecord | None,
    now: datetime,
    cached: dict[str, int] | None,
) -> None:
    """The batch's usage from its records as they now are: those this call finished, and (read again) any that
    someone else finished meanwhile, such as the dispatcher's whole cache hits."""
    finished = {p.id: p for p in outcome.finished}
    after = {**before, **finished}
    unsure = [
        p.id
        for p in before.values()
        if p.status == PredictionStatus.RUNNING and p.batch_id == batch_id and p.id not in finished
    ]
    if unsure:
        after.update(prediction_store().get_many(unsure))
    usage.record_batch(batch_id, after.values(), batch, now, cached)


def _fresh_entries(
    ready: list[Prediction], results: dict[str, LocatedResult], fill_keys: dict[str, list[str]]
) -> dict[str, CachedEmbedding]:
    entries: dict[str, CachedEmbedding] = {}
    for prediction in ready:
        keys, located = fill_keys.get(prediction.id), results.get(prediction.id)
        if keys and located is not None and located.output is not None and located.error is None:
            entries.update(fresh_entries(keys, located.output))
    return entries


def unrecorded_hits(batch_id: str) -> tuple[str, dict[str, LocatedResult]] | None:
    """A batch without a record may still have had cached parts: its hits object (where it is, and its lines by
    prediction id), if it has one."""
    key = batch_hits_key(batch_id)
    if object_store().size(key) is None:
        return None
    location = object_store().uri(key)
    return location, parse_results(object_store().read(location, MAX_OUTPUT_BYTES))


def _cached_texts(hits: dict[str, LocatedResult]) -> dict[str, int]:
    """prediction id -> how many of its texts a batch's hits object answered."""
    counts: dict[str, int] = {}
    for prediction_id, hit in hits.items():
        embeddings = hit.output.get("embeddings") if hit.output is not None else None
        if isinstance(embeddings, list):
            counts[prediction_id] = sum(vector is not None for vector in embeddings)
    return counts


def _merge_hits(
    batch_id: str, results: dict[str, LocatedResult], hits: dict[str, LocatedResult], hits_location: str
) -> dict[str, LocatedResult]:
    """Predictions the cache answered in part: fill the cached outputs' gaps with the model's results, in input
    order, into one object of merged lines that their records point at.

    Every part-cached prediction of the batch is merged, whatever its status now, so the object comes out byte for
    byte the same on every retry or sweep: a record that already points into it keeps pointing at its own line."""
    results = dict(results)
    body = bytearray()
    ranges: dict[str, tuple[int, int]] = {}
    merged: dict[str, dict[str, Any]] = {}
    for prediction_id, hit in hits.items():
        if hit.output is not None and is_complete(hit.output):
            # Answered whole: the dispatcher finishes it, unless it died first; then this line is its output.
            results[prediction_id] = replace(hit, location=hits_location)
            continue
        located = results.get(prediction_id)
        if hit.output is None or located is None or located.output is None:
            continue  # the model failed it
        try:
            merged[prediction_id] = merge(hit.output, located.output)
        except ValueError as exc:
            error = ErrorInfo.of("malformed_output", f"the model's output does not fit the request: {exc}")
            results[prediction_id] = LocatedResult(line=ResultLine(id=prediction_id, error=error), start=0, end=0)
            continue
        line = result_line(prediction_id, merged[prediction_id])
        ranges[prediction_id] = (len(body), len(body) + len(line) - 2)  # the newline is not part of the line
        body += line
    if not merged:
        return results
    location = object_store().put(batch_merged_key(batch_id), bytes(body), "application/jsonlines")
    for prediction_id, (start, end) in ranges.items():
        filled = ResultLine(id=prediction_id, output=merged[prediction_id])
        results[prediction_id] = LocatedResult(line=filled, start=start, end=end, location=location)
    return results


def _ids_in_input(key: str) -> list[str]:
    body = object_store().read(object_store().uri(key), MAX_OUTPUT_BYTES)
    ids = []
    for raw in body.split(b"\n"):
        if raw.strip():
            try:
                ids.append(BatchLine.from_json(raw).id)
            except InvalidDocument:
                continue
    return ids


def _settle(
    prediction: Prediction,
    notification: AsyncInferenceNotification,
    output_location: str,
    results: dict[str, LocatedResult],
    now: datetime,
    outcome: CompletionOutcome,
) -> None:
    store = prediction_store()
    batch_id = outcome.batch_id
    located = results.get(prediction.id)
    answered_whole = located is not None and located.location is not None and located.output is not None
    error: ErrorInfo | None = None
    if notification.invocation_status == InvocationStatus.FAILED and not answered_whole:
        error = ErrorInfo.of("inference_failed", notification.failure_reason or "the model endpoint failed the batch")
    elif located is None:
        error = ErrorInfo.of("missing_output", "the model returned no result for this prediction")
    elif located.line.error is not None:
        error = ErrorInfo.of(located.line.error.code, located.line.error.message)
    if error is not None or located is None:
        moved = store.fail(prediction.id, error or _NO_OUTPUT, now, batch_id=batch_id, record=prediction)
        _record(prediction, moved, now, outcome)
        return
    if located.size <= get_settings().inline_output_max_bytes:
        # The status record points at the line in the output SageMaker already wrote: nothing large is stored.
        location = located.location or output_location
        moved = store.succeed(prediction.id, batch_id, location, (located.start, located.end), now, record=prediction)
    else:
        # Too large to inline in a response: a copy of its own, served as a presigned link.
        standalone = result_store().put_standalone(prediction.id, located.line.output or {})
        moved = store.succeed(prediction.id, batch_id, standalone, None, now, record=prediction)
    _record(prediction, moved, now, outcome)


_NO_OUTPUT = ErrorInfo.of("missing_output", "the model returned no result for this prediction")


def _record(prediction: Prediction, moved: Prediction | None, now: datetime, outcome: CompletionOutcome) -> None:
    if moved is None:
        outcome.ignored.append(prediction.id)  # cancelled in the meantime: its result is discarded
        return
    outcome.finished.append(moved)
    succeeded = moved.status is PredictionStatus.SUCCEEDED
    if succeeded:
        outcome.succeeded.append(prediction.id)
        metrics.add_metric(name="PredictionsSucceeded", unit=MetricUnit.Count, value=1)
    else:
        outcome.failed.append(prediction.id)
        metrics.add_metric(name="PredictionsFailed", unit=MetricUnit.Count, value=1)
    if prediction.started_at is not None:
        inference_ms = int((now - prediction.started_at).total_seconds() * 1000)
        metrics.add_metric(name="InferenceTime", unit=MetricUnit.Milliseconds, value=inference_ms)
    logger.info(
        "prediction finished", prediction_id=prediction.id, status=moved.status.value, batch_id=outcome.batch_id
    )
