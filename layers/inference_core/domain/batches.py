"""What travels between the queue, the endpoint and completion: work items, batch lines, results, notifications.

Plain dataclasses read through `domain.documents`: every consumer handles them on its cold path (see there)."""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime
from enum import StrEnum
from typing import Any

from inference_core.domain import documents as doc
from inference_core.domain.predictions import ErrorInfo


@dataclass
class WorkItem:
    """The request-queue message: everything the dispatcher needs without reading the status record's inputs."""

    prediction_id: str
    tenant_id: str
    created_at: datetime
    inputs: list[str]
    parameters: dict[str, Any] = field(default_factory=dict)

    @classmethod
    def from_json(cls, raw: str | bytes) -> WorkItem:
        document = doc.load_object(raw)
        return cls(
            prediction_id=doc.text(document, "prediction_id", min_length=1),
            tenant_id=doc.text(document, "tenant_id", min_length=1),
            created_at=doc.timestamp(document, "created_at"),
            inputs=doc.texts(document, "inputs", min_length=1),
            parameters=doc.object_or_empty(document, "parameters"),
        )

    def to_json(self) -> str:
        return doc.dump(
            {
                "prediction_id": self.prediction_id,
                "tenant_id": self.tenant_id,
                "created_at": self.created_at.isoformat(),
                "inputs": self.inputs,
                "parameters": self.parameters,
            }
        )


@dataclass
class BatchLine:
    """One line of a batch input object: one prediction for the model."""

    id: str
    inputs: list[str]
    parameters: dict[str, Any] = field(default_factory=dict)

    @classmethod
    def from_json(cls, raw: str | bytes) -> BatchLine:
        document = doc.load_object(raw)
        return cls(
            id=doc.text(document, "id"),
            inputs=doc.texts(document, "inputs"),
            parameters=doc.object_or_empty(document, "parameters"),
        )

    def to_json(self) -> str:
        return doc.dump({"id": self.id, "inputs": self.inputs, "parameters": self.parameters})


@dataclass
class BatchRecord:
    batch_id: str
    prediction_ids: list[str]
    input_location: str
    created_at: datetime
    # The result cache's answers for this batch, if any: predictions answered whole (finished by the dispatcher
    # right after the invocation; `answered_ids`) and in part (completion fills their gaps; `partial_hits`).
    hits_location: str | None = None
    answered_ids: list[str] = field(default_factory=list)
    partial_hits: bool = False
    # prediction id -> the cache keys of the texts sent to the model, in order: what completion writes back.
    fill_keys: dict[str, list[str]] = field(default_factory=dict)


@dataclass
class ResultLine:
    """One line of a batch output object, as the model container writes it."""

    id: str | None = None
    output: dict[str, Any] | None = None
    error: ErrorInfo | None = None

    @classmethod
    def from_json(cls, raw: str | bytes) -> ResultLine:
        document = doc.load_object(raw)
        error = doc.optional_object(document, "error")
        return cls(
            id=doc.optional_text(document, "id"),
            output=doc.optional_object(document, "output"),
            error=None
            if error is None
            else ErrorInfo(code=doc.text(error, "code"), message=doc.text(error, "message")),
        )


@dataclass
class LocatedResult:
    """A result line and where it sits in the batch output object (bytes [start, end], inclusive), or in the
    object at `location` when that is set."""

    line: ResultLine
    start: int
    end: int
    location: str | None = None

    @property
    def size(self) -> int:
        return self.end - self.start + 1

    @property
    def output(self) -> dict[str, Any] | None:
        return self.line.output

    @property
    def error(self) -> ErrorInfo | None:
        return self.line.error


class InvocationStatus(StrEnum):
    COMPLETED = "Completed"
    FAILED = "Failed"


@dataclass(frozen=True)
class RequestParameters:
    input_location: str | None = None


@dataclass(frozen=True)
class ResponseParameters:
    output_location: str | None = None
    failure_location: str | None = None


@dataclass
class AsyncInferenceNotification:
    """SageMaker's asynchronous-inference SNS notification (success and error topics share the shape)."""

    invocation_status: InvocationStatus
    inference_id: str
    failure_reason: str | None = None
    request_parameters: RequestParameters = field(default_factory=RequestParameters)
    response_parameters: ResponseParameters = field(default_factory=ResponseParameters)

    @classmethod
    def from_document(cls, document: Any) -> AsyncInferenceNotification:
        """From the notification's JSON object, in SageMaker's camelCase."""
        document = doc.as_object(document, "notification")
        status = doc.text(document, "invocationStatus")
        try:
            invocation_status = InvocationStatus(status)
        except ValueError as exc:
            raise doc.InvalidDocument(f"invocationStatus {status!r} is not one SageMaker sends") from exc
        request = doc.object_or_empty(document, "requestParameters")
        response = doc.object_or_empty(document, "responseParameters")
        return cls(
            invocation_status=invocation_status,
            inference_id=doc.text(document, "inferenceId", min_length=1),
            failure_reason=doc.optional_text(document, "failureReason"),
            request_parameters=RequestParameters(doc.optional_text(request, "inputLocation")),
            response_parameters=ResponseParameters(
                doc.optional_text(response, "outputLocation"), doc.optional_text(response, "failureLocation")
            ),
        )


# A bulk job's chunk is invoked as `<job id>-<chunk>`, job ids start with this; interactive batch ids are UUIDs.
JOB_PREFIX = "job_"


def is_job_chunk(inference_id: str) -> bool:
    """A notification for a job chunk rather than an interactive batch (told apart before any job code loads)."""
    return inference_id.startswith(JOB_PREFIX)
