"""Where a job's objects live in the data bucket. The prefixes come from the template's Layout mapping.

uploads/<tenant>/<job>.jsonl            the input of a job created through the API (its presigned PUT)
inbox/<tenant>/<path>.jsonl             the input of a job dropped by a pipeline
outbox/<tenant>/<path>.output.jsonl     its results (and .errors.jsonl, .manifest.json written last)
jobs/<job>/output.jsonl                 the results of an API job (and errors.jsonl, manifest.json)
jobs/<job>/input.jsonl                  the input of a retry job (the failed lines of its parent)
jobs/<job>/chunks/<n>.jsonl             chunk n as the endpoint reads it
jobs/<job>/parts/<n>.output.jsonl       chunk n's results, in final form (and <n>.errors.jsonl)
jobs/<job>/validation-errors.jsonl      the lines refused before anything ran
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass

from inference_core.dal.objects import object_store
from inference_core.domain.batches import BatchLine
from inference_core.settings import get_settings

JSONL = ".jsonl"


@dataclass(frozen=True)
class InboxFile:
    tenant_id: str
    key: str
    results_base: str


def upload_key(tenant_id: str, job_id: str) -> str:
    return f"{get_settings().job_upload_prefix}{tenant_id}/{job_id}{JSONL}"


def work_prefix(job_id: str) -> str:
    return f"{get_settings().job_work_prefix}{job_id}/"


def api_results_base(job_id: str) -> str:
    return work_prefix(job_id)


def retry_input_key(job_id: str) -> str:
    return f"{work_prefix(job_id)}input{JSONL}"


def chunk_key(job_id: str, chunk: int) -> str:
    return f"{work_prefix(job_id)}chunks/{chunk:06d}{JSONL}"


def chunk_cache_key(job_id: str, chunk: int) -> str:
    """The chunk's cache plan: per line, its cache keys and what the cache answered (gaps left for the model)."""
    return f"{work_prefix(job_id)}chunks/{chunk:06d}.cache{JSONL}"


def chunk_sent_key(job_id: str, chunk: int) -> str:
    """What the endpoint gets of a chunk: the texts the cache did not answer, with the model's parameters only."""
    return f"{work_prefix(job_id)}chunks/{chunk:06d}.sent{JSONL}"


# A chunk object holds at most a chunk's worth of lines (a few MB).
_MAX_CHUNK_BYTES = 512 * 1024 * 1024


def chunk_lines(job_id: str, chunk: int) -> Iterator[BatchLine]:
    """The lines of chunk n as the planner wrote them (a line that does not parse is a bug, not input)."""
    for raw in object_store().lines(chunk_key(job_id, chunk), _MAX_CHUNK_BYTES):
        if raw.strip():
            yield BatchLine.from_json(raw)


def part_key(job_id: str, chunk: int, kind: str) -> str:
    return f"{work_prefix(job_id)}parts/{chunk:06d}.{kind}{JSONL}"


def validation_errors_key(job_id: str) -> str:
    return f"{work_prefix(job_id)}validation-errors{JSONL}"


def output_key(results_base: str) -> str:
    return f"{results_base}output{JSONL}"


def errors_key(results_base: str) -> str:
    return f"{results_base}errors{JSONL}"


def manifest_key(results_base: str) -> str:
    return f"{results_base}manifest.json"


def rejection_key(inbox_key: str) -> str:
    """Beside a refused inbox file (not ending in .jsonl, so it starts nothing itself)."""
    return f"{inbox_key}.rejected.json"


def inbox_file(key: str) -> InboxFile | None:
    """`inbox/<tenant>/<path>.jsonl` -> its tenant and where its results go; None for any other key."""
    settings = get_settings()
    if not key.startswith(settings.inbox_prefix) or not key.endswith(JSONL):
        return None
    tenant_id, _, path = key.removeprefix(settings.inbox_prefix).partition("/")
    if not tenant_id or not path.removesuffix(JSONL):
        return None
    stem = path.removesuffix(JSONL)
    return InboxFile(tenant_id, key, f"{settings.outbox_prefix}{tenant_id}/{stem}.")


def upload_job(key: str) -> tuple[str, str] | None:
    """`uploads/<tenant>/<job>.jsonl` -> (tenant, job id); None for any other key."""
    settings = get_settings()
    if not key.startswith(settings.job_upload_prefix) or not key.endswith(JSONL):
        return None
    tenant_id, _, name = key.removeprefix(settings.job_upload_prefix).partition("/")
    job_id = name.removesuffix(JSONL)
    if not tenant_id or not job_id or "/" in job_id:
        return None
    return tenant_id, job_id
