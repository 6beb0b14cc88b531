"""A fake of the API behind httpx.MockTransport (no sockets) and a fake clock whose sleeps only move time."""

from __future__ import annotations

import asyncio
import base64
import json
import re
import struct
import sys
import threading
import uuid
from collections.abc import Callable
from pathlib import Path
from typing import Any

import httpx
import pytest

try:
    import inference_client  # noqa: F401  (installed with `pip install -e ./client`)
except ImportError:  # not installed: import it from the source tree
    sys.path.insert(0, str(Path(__file__).resolve().parents[2] / "client" / "src"))

from inference_client import AsyncClient, CircuitBreaker, Client, RetryPolicy

API_URL = "https://api.example"
API_KEY = "tenant.s3cr3t-key-value"
OUTPUT_HOST = "objects.example"
_PREDICTION_PATH = re.compile(r"^/v1/predictions/([0-9a-f-]{36})(/cancel)?$")
_JOB_PATH = re.compile(r"^/v1/jobs/(job_[0-9a-f]{32})(/cancel|/retry)?$")
SIGNATURE = "X-Amz-Signature=sig"


def vector(text: str) -> list[float]:
    """The fake model: four float32-exact numbers derived from the text."""
    return [float(len(text)), float(sum(map(ord, text)) % 997), 0.5, -1.0]


class FakeClock:
    """time.monotonic and time.sleep (and an async sleep) for tests: sleeping only moves the clock forward."""

    def __init__(self) -> None:
        self.now = 1000.0
        self.sleeps: list[float] = []
        self._lock = threading.Lock()

    def __call__(self) -> float:
        return self.now

    def sleep(self, seconds: float) -> None:
        with self._lock:
            self.sleeps.append(seconds)
            self.now += seconds

    async def async_sleep(self, seconds: float) -> None:
        self.sleep(seconds)
        await asyncio.sleep(0)  # yields to other tasks; never waits on the wall clock

    def advance(self, seconds: float) -> None:
        with self._lock:
            self.now += seconds


class FakeAPI:
    """Enough of API v1 for the client: create (with Idempotency-Key and Prefer: wait), get, list, cancel, and
    outputs behind a presigned-style link. `script` holds answers (or exceptions) given before the normal ones."""

    def __init__(self) -> None:
        self.lock = threading.Lock()
        self.requests: list[httpx.Request] = []
        self.script: list[httpx.Response | Exception | Callable[[httpx.Request], httpx.Response | None]] = []
        self.predictions: dict[str, dict[str, Any]] = {}
        self.outputs: dict[str, dict[str, Any]] = {}
        self.polls_left: dict[str, int] = {}
        self.by_key: dict[str, str] = {}
        self.completed: list[str] = []  # prediction ids in the order they finished
        # Per-request behaviour, decided from the inputs of a create:
        self.polls_needed: Callable[[list[str]], int] = lambda _inputs: 0
        self.fails: Callable[[list[str]], bool] = lambda _inputs: False
        self.large_output: Callable[[list[str]], bool] = lambda _inputs: False
        # Bulk jobs: each GET of a running job moves it on; `job_polls` GETs take it from its upload to the end.
        self.jobs: dict[str, dict[str, Any]] = {}
        self.uploads: dict[str, bytes] = {}
        self.job_files: dict[str, bytes] = {}  # "<job id>/output.jsonl" -> the file
        self.job_polls = 3
        self.job_keys: dict[str, str] = {}  # Idempotency-Key -> the job its first request made (create and retry)
        self.expired_job_links = 0  # the next N GETs of a job's file are refused as expired (403)

    # -- what tests read ---------------------------------------------------------------------------------------

    def api_requests(self, method: str | None = None, path: str | None = None) -> list[httpx.Request]:
        return [
            r
            for r in self.requests
            if r.url.host != OUTPUT_HOST
            and (method is None or r.method == method)
            and (path is None or r.url.path == path)
        ]

    def creates(self) -> list[httpx.Request]:
        return self.api_requests("POST", "/v1/predictions")

    def created_inputs(self) -> list[list[str]]:
        return [json.loads(r.content)["inputs"] for r in self.creates()]

    def link_requests(self, method: str | None = None) -> list[httpx.Request]:
        """Requests to presigned links (uploads, job files, large outputs)."""
        return [r for r in self.requests if r.url.host == OUTPUT_HOST and (method is None or r.method == method)]

    # -- the handler ---------------------------------------------------------------------------------------------

    def handler(self, request: httpx.Request) -> httpx.Response:
        with self.lock:
            self.requests.append(request)
            scripted = self.script.pop(0) if self.script else None
        if isinstance(scripted, Exception):
            raise scripted
        if isinstance(scripted, httpx.Response):
            return scripted
        if scripted is not None:
            answer = scripted(request)
            if answer is not None:
                return answer
        with self.lock:
            return self._route(request)

    def _route(self, request: httpx.Request) -> httpx.Response:
        if request.url.host == OUTPUT_HOST:
            assert "authorization" not in request.headers, "the API key must not go to a presigned link"
            if request.url.path.startswith("/uploads/"):
                return self._upload(request)
            if request.url.path.startswith("/jobs/"):
                return self._job_file(request)
            return httpx.Response(200, json=self.outputs[request.url.path.rsplit("/", 1)[1].removesuffix(".json")])
        if request.headers.get("authorization") != f"Bearer {API_KEY}":
            return error(401, "unauthorized", "invalid API key")
        if request.url.path.startswith("/v1/jobs"):
            return self._jobs(request)
        if request.url.path == "/v1/predictions" and request.method == "POST":
            return self._create(request)
        if request.url.path == "/v1/predictions" and request.method == "GET":
            items = [{**p, "output": None} for p in reversed(self.predictions.values())]
            limit = int(request.url.params.get("limit", 20))
            start = int(request.url.params.get("cursor", "0"))
            page = items[start : start + limit]
            cursor = str(start + limit) if start + limit < len(items) else None
            return httpx.Response(200, json={"data": page, "next_cursor": cursor})
        match = _PREDICTION_PATH.match(request.url.path)
        if match is None or match.group(1) not in self.predictions:
            return error(404, "not_found", "prediction not found", {"id": request.url.path.rsplit("/", 1)[-1]})
        prediction_id = match.group(1)
        if match.group(2):
            return self._cancel(prediction_id)
        self._advance(prediction_id)
        return httpx.Response(200, json=self.predictions[prediction_id])

    def _create(self, request: httpx.Request) -> httpx.Response:
        body = json.loads(request.content)
        inputs = body["inputs"] if isinstance(body["inputs"], list) else [body["inputs"]]
        key = request.headers.get("idempotency-key")
        if key in self.by_key:
            prediction_id = self.by_key[key]
        else:
            prediction_id = str(uuid.uuid4())
            if key:
                self.by_key[key] = prediction_id
            self.predictions[prediction_id] = {
                "id": prediction_id,
                "status": "queued",
                "created_at": "2026-11-23T11:23:24.760Z",
                "started_at": None,
                "completed_at": None,
                "input_count": len(inputs),
                "metadata": body.get("metadata") or {},
                "output": None,
                "output_url": None,
                "error": None,
                "metrics": {"queue_ms": None, "inference_ms": None},
                "_inputs": inputs,
                "_base64": (body.get("parameters") or {}).get("encoding_format") == "base64",
            }
            self.polls_left[prediction_id] = self.polls_needed(inputs)
        if "wait=" in request.headers.get("prefer", ""):
            self._advance(prediction_id, waited=True)
        prediction = self.predictions[prediction_id]
        status = 200 if prediction["status"] not in ("queued", "running") else 202
        return httpx.Response(
            status, json=_public(prediction), headers={"Location": f"/v1/predictions/{prediction_id}"}
        )

    def _advance(self, prediction_id: str, waited: bool = False) -> None:
        prediction = self.predictions[prediction_id]
        if prediction["status"] not in ("queued", "running"):
            return
        if self.polls_left[prediction_id] > 0:
            if not waited:
                self.polls_left[prediction_id] -= 1
            prediction["status"] = "running"
            prediction["started_at"] = "2026-11-23T11:23:25.000Z"
            return
        inputs = prediction["_inputs"]
        prediction["completed_at"] = "2026-11-23T11:23:26.000Z"
        self.completed.append(prediction_id)
        if self.fails(inputs):
            prediction["status"] = "failed"
            prediction["error"] = {"code": "inference_failed", "message": "the model failed"}
            return
        prediction["status"] = "succeeded"
        vectors = [vector(text) for text in inputs]
        output = {"model": "fake", "dimensions": 4, "embeddings": vectors, "truncated": [False] * len(inputs)}
        if self.large_output(inputs):
            self.outputs[prediction_id] = output  # the stored object holds float lists
            prediction["output_url"] = f"https://{OUTPUT_HOST}/results/{prediction_id}.json?X-Amz-Signature=sig"
            return
        if prediction["_base64"]:
            output = {**output, "embeddings": [_b64(v) for v in vectors]}
        prediction["output"] = output

    def _cancel(self, prediction_id: str) -> httpx.Response:
        prediction = self.predictions[prediction_id]
        if prediction["status"] not in ("queued", "running", "cancelled"):
            return error(409, "invalid_state", f"a {prediction['status']} prediction cannot be cancelled")
        prediction["status"] = "cancelled"
        return httpx.Response(200, json=_public(prediction))

    # -- bulk jobs ---------------------------------------------------------------------------------------------

    def add_job(self, **fields: Any) -> dict[str, Any]:
        """A job in the store (as a test's starting point, or for POST /v1/jobs)."""
        job_id = f"job_{uuid.uuid4().hex}"
        job = {
            "id": job_id,
            "status": "awaiting_upload",
            "created_at": f"2026-11-23T11:{len(self.jobs) // 60:02d}:{len(self.jobs) % 60:02d}.000Z",
            "started_at": None,
            "completed_at": None,
            "request_counts": {"total": 0, "completed": 0, "failed": 0},
            "progress": {"fraction": 0.0, "items_per_second": None, "eta_seconds": None},
            "output_url": None,
            "error_url": None,
            "errors": [],
            "error": None,
            "metadata": {},
            "source": "api",
            "input_location": None,
            "parent_id": None,
            "dry_run": False,
            "estimate": None,
            "upload": None,
            "_polls": 0,
            "_lines": [],
            **fields,
        }
        self.jobs[job_id] = job
        return job

    def _jobs(self, request: httpx.Request) -> httpx.Response:
        key = request.headers.get("idempotency-key")
        if request.url.path == "/v1/jobs" and request.method == "POST":
            body = json.loads(request.content or b"{}")
            replayed = key in self.job_keys
            if replayed:
                job = self.jobs[self.job_keys[key]]
            else:
                job = self.add_job(metadata=body.get("metadata") or {}, dry_run=bool(body.get("dry_run")))
                if key:
                    self.job_keys[key] = job["id"]
            public = _public(job)
            public["upload"] = {
                "url": f"https://{OUTPUT_HOST}/uploads/{job['id']}.jsonl?{SIGNATURE}",
                "method": "PUT",
                "headers": {"Content-Type": "application/jsonl"},
                "expires_at": "2026-11-23T12:23:24.760Z",
            }
            # A replay answers the job the first request made, with a fresh link (as the API does).
            return httpx.Response(200 if replayed else 201, json=public)
        if request.url.path == "/v1/jobs":
            items = [_public(job) for job in reversed(self.jobs.values())]
            limit = int(request.url.params.get("limit", 20))
            start = int(request.url.params.get("cursor", "0"))
            cursor = str(start + limit) if start + limit < len(items) else None
            return httpx.Response(200, json={"data": items[start : start + limit], "next_cursor": cursor})
        match = _JOB_PATH.match(request.url.path)
        if match is None or match.group(1) not in self.jobs:
            return error(404, "not_found", "job not found", {"id": request.url.path.rsplit("/", 1)[-1]})
        job = self.jobs[match.group(1)]
        if match.group(2) == "/cancel":
            if job["status"] in ("awaiting_upload", "validating", "in_progress"):
                job["status"] = "cancelled" if job["status"] == "awaiting_upload" else "cancelling"
            elif job["status"] not in ("cancelling", "cancelled"):
                return error(409, "invalid_state", f"a {job['status']} job cannot be cancelled")
            return httpx.Response(200, json=_public(job))
        if match.group(2) == "/retry":
            if key in self.job_keys:
                return httpx.Response(201, json=_public(self.jobs[self.job_keys[key]]))
            if job["status"] not in ("completed", "cancelled", "expired") or not job["request_counts"]["failed"]:
                return error(409, "invalid_state", f"a {job['status']} job has no failed lines to retry")
            child = self.add_job(status="validating", source="retry", parent_id=job["id"], metadata=job["metadata"])
            if key:
                self.job_keys[key] = child["id"]
            return httpx.Response(201, json=_public(child))
        self._advance_job(job)
        return httpx.Response(200, json=_public(job))

    def _upload(self, request: httpx.Request) -> httpx.Response:
        assert request.method == "PUT"
        assert SIGNATURE in str(request.url)
        if request.headers.get("content-type") != "application/jsonl":
            return httpx.Response(403, content=b"<Error><Code>SignatureDoesNotMatch</Code><Message>m</Message></Error>")
        job = self.jobs[request.url.path.removeprefix("/uploads/").removesuffix(".jsonl")]
        self.uploads[job["id"]] = request.content
        if job["status"] == "awaiting_upload":  # a second upload to the same link does nothing
            job["status"] = "validating"
        return httpx.Response(200)

    def _advance_job(self, job: dict[str, Any]) -> None:
        """validating -> in_progress (counted) -> ... -> completed with its files, one step per GET."""
        if job["status"] not in ("validating", "in_progress", "cancelling"):
            return
        if job["status"] == "validating":
            lines = [line for line in self.uploads.get(job["id"], b"").split(b"\n")]
            job["_lines"] = [(n, line) for n, line in enumerate(lines, start=1) if line.strip()]
            job["request_counts"]["total"] = len(job["_lines"])
            job["started_at"] = "2026-11-23T11:30:00.000Z"
            if job["dry_run"]:
                job["status"] = "validated"
                job["estimate"] = {
                    "inputs": len(job["_lines"]),
                    "tokens": 40,
                    "endpoint_seconds": 0.5,
                    "cost_usd": 0.0001,
                    "eta_seconds": 2.0,
                }
                return
            job["status"] = "in_progress"
            return
        job["_polls"] += 1
        total = job["request_counts"]["total"]
        done = total if job["status"] == "cancelling" else min(total, total * job["_polls"] // self.job_polls)
        outputs, failures = [], []
        for number, raw in job["_lines"][:done]:
            try:
                line = json.loads(raw)
                outputs.append(
                    {
                        "custom_id": line["custom_id"],
                        "line": number,
                        "output": {"model": "fake", "dimensions": 4, "embeddings": [vector(line["inputs"])]},
                    }
                )
            except (ValueError, KeyError, TypeError):
                failures.append(
                    {
                        "custom_id": None,
                        "line": number,
                        "error": {"code": "invalid_json", "message": "the line is not a JSON document"},
                    }
                )
        job["request_counts"].update(completed=len(outputs), failed=len(failures))
        job["progress"] = {
            "fraction": round(done / total, 4) if total else 1.0,
            "items_per_second": 2.5,
            "eta_seconds": (total - done) / 2.5,
        }
        job["errors"] = failures[:5]
        if done < total:
            return
        job["status"] = "cancelled" if job["status"] == "cancelling" else "completed"
        job["completed_at"] = "2026-11-23T11:31:00.000Z"
        job["progress"]["eta_seconds"] = 0.0
        self.job_files[f"{job['id']}/output.jsonl"] = b"".join(json.dumps(o).encode() + b"\n" for o in outputs)
        self.job_files[f"{job['id']}/errors.jsonl"] = b"".join(json.dumps(f).encode() + b"\n" for f in failures)
        job["output_url"] = f"https://{OUTPUT_HOST}/jobs/{job['id']}/output.jsonl?{SIGNATURE}"
        job["error_url"] = f"https://{OUTPUT_HOST}/jobs/{job['id']}/errors.jsonl?{SIGNATURE}"

    def _job_file(self, request: httpx.Request) -> httpx.Response:
        if self.expired_job_links > 0:
            self.expired_job_links -= 1
            return httpx.Response(
                403,
                content=b"<?xml version='1.0'?><Error><Code>AccessDenied</Code><Message>Request has expired"
                b"</Message></Error>",
                headers={"Content-Type": "application/xml"},
            )
        return httpx.Response(200, content=self.job_files[request.url.path.removeprefix("/jobs/")])


def _public(prediction: dict[str, Any]) -> dict[str, Any]:
    return {k: v for k, v in prediction.items() if not k.startswith("_")}


def _b64(values: list[float]) -> str:
    return base64.b64encode(struct.pack(f"<{len(values)}f", *values)).decode()


def error(
    status: int, code: str, message: str, details: Any = None, headers: dict[str, str] | None = None
) -> httpx.Response:
    return httpx.Response(
        status, json={"error": {"code": code, "message": message, "details": details}}, headers=headers
    )


@pytest.fixture
def api() -> FakeAPI:
    return FakeAPI()


@pytest.fixture
def clock() -> FakeClock:
    return FakeClock()


@pytest.fixture
def make_client(api: FakeAPI, clock: FakeClock) -> Callable[..., Client]:
    def make(**kwargs: Any) -> Client:
        kwargs.setdefault("breaker", CircuitBreaker(5, 30.0, clock=clock))
        kwargs.setdefault("retry", RetryPolicy())
        kwargs.setdefault("random", lambda: 1.0)
        return Client(
            API_URL, API_KEY, transport=httpx.MockTransport(api.handler), sleep=clock.sleep, clock=clock, **kwargs
        )

    return make


@pytest.fixture
def make_async_client(api: FakeAPI, clock: FakeClock) -> Callable[..., AsyncClient]:
    def make(**kwargs: Any) -> AsyncClient:
        kwargs.setdefault("breaker", CircuitBreaker(5, 30.0, clock=clock))
        kwargs.setdefault("random", lambda: 1.0)
        return AsyncClient(
            API_URL, API_KEY, transport=httpx.MockTransport(api.handler), sleep=clock.async_sleep, clock=clock, **kwargs
        )

    return make
