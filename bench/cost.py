"""Cost model: dollars per 1 million predictions from what the local stack actually did, baseline vs. today.

    python -m bench.cost [--n1 300] [--n2 60] [--n3 100] [--lines 20000] [--baseline 49fe22d] [--only new|baseline]
                         [--output PATH]

Interactive workloads: W1 = N1 single-text predictions, W2 = N2 predictions of 32 texts, submitted over HTTP by 8
threads (no `Prefer: wait`); the harness waits for them through an uncounted DynamoDB client, then reads every
prediction once with GET /v1/predictions/{id} (counted: a user reads results). W3 = N3 single-text predictions
with `Prefer: wait=20` (the API function is billed while it waits). Bulk: B1-B3 = one job of LINES short texts,
with the cache off, on (first run) and on again (the same file).

The baseline is a git revision checked out in a temporary worktree; "new" is this working tree. Each configuration
runs in its own process (`--run-one`) that puts the selected tree first on sys.path, starts its local stack and
counts, with botocore hooks on the default boto3 session (so every client the product, the event pumps and the
local SageMaker endpoint create is seen; the harness's own clients come from a separate session and are not):
requests by operation, SQS/SNS 64 KB units, S3 bytes, DynamoDB read and write units from the real item sizes
(`item_size`, index writes from each GSI's key schema and projection), Lambda durations of the real handlers, API
requests and bytes. It writes raw counts as JSON; this process prices them with bench/prices.json and writes
bench/results/cost.md.
"""

from __future__ import annotations

import argparse
import base64
import binascii
import dataclasses
import json
import math
import os
import re
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from collections import Counter, defaultdict
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from bench.corpus import corpus
from bench.harness import REPO, TERMINAL, describe, finished_records, git, publish

PRICES = Path(__file__).with_name("prices.json")
WORKTREE = Path("/tmp/cost-baseline")
REGION = "us-east-1"

KIB = 1024
GIB = 1024**3
SQS_CHUNK = 64 * KIB
API_CHUNK = 512 * KIB
HOURS_PER_MONTH = 730


@dataclass(frozen=True)
class Workload:
    per: int  # texts per prediction (per line of a bulk job)
    description: str
    wait: int = 0  # `Prefer: wait=N` on every POST (the reply holds the result, no GET); 0: submit, then GET once
    bulk: str = ""  # a bulk job's lines: "off" (`parameters.cache: false`), "first" (cache on), "rerun" (same file)
    seed: int = 13  # of the corpus: each interactive workload its own texts, none answered from the cache

    @property
    def unit(self) -> str:
        return "lines" if self.bulk else "predictions"


WORKLOADS = {
    "W1": Workload(1, "single-text interactive"),
    "W2": Workload(32, "32-text interactive", seed=29),
    "W3": Workload(1, "single-text interactive, `Prefer: wait=20` (the API holds the reply)", wait=20, seed=17),
    "B1": Workload(1, "bulk job of short texts, cache off (`parameters.cache: false` on every line)", bulk="off"),
    "B2": Workload(1, "bulk job of short texts, cache on, first run (new texts)", bulk="first"),
    "B3": Workload(1, "bulk job of short texts, cache on, the same file run again", bulk="rerun"),
}
BULK_SEED = 101  # texts no interactive workload sent, so B2 starts from an empty cache
SUBMIT_THREADS = 8
DYNAMODB_WRITES = {"PutItem", "UpdateItem", "DeleteItem", "TransactWriteItems", "BatchWriteItem"}
SOURCES = {  # how a request's source is labelled in the report
    "product": "API/handlers",
    "esm": "event source mapping",
    "endpoint": "SageMaker endpoint",
    "client": "client (presigned URL)",
    "local": "local stack",
}
LOCAL_CLIENT_SOURCE = {"sqs": "esm", "s3": "endpoint", "sns": "endpoint"}  # what LocalStack.client's clients do


# ---------------------------------------------------------------- DynamoDB sizes


def _binary(value: Any) -> bytes:
    if isinstance(value, bytes | bytearray):
        return bytes(value)
    try:
        return base64.b64decode(value, validate=True)  # the wire form (moto keeps top-level binaries this way)
    except (binascii.Error, ValueError):
        return str(value).encode()


def number_size(text: str) -> int:
    """Bytes DynamoDB counts for a number: 1 byte per 2 significant digits (leading and trailing zeroes trimmed),
    plus 1 byte."""
    mantissa = str(text).strip().lstrip("+-").lower().split("e")[0].replace(".", "")
    significant = mantissa.strip("0") or "0"
    return (len(significant) + 1) // 2 + 1


def value_size(value: dict[str, Any]) -> int:
    """Size of one typed attribute value (see `item_size`)."""
    ((kind, inner),) = value.items()
    if kind == "S":
        return len(inner.encode("utf-8"))
    if kind == "N":
        return number_size(inner)
    if kind == "B":
        return len(_binary(inner))
    if kind in ("BOOL", "NULL"):
        return 1
    if kind == "SS":
        return sum(len(s.encode("utf-8")) for s in inner)
    if kind == "NS":
        return sum(number_size(n) for n in inner)
    if kind == "BS":
        return sum(len(_binary(b)) for b in inner)
    if kind == "M":
        return 3 + sum(len(k.encode("utf-8")) + value_size(v) + 1 for k, v in inner.items())
    if kind == "L":
        return 3 + sum(value_size(v) + 1 for v in inner)
    raise ValueError(f"unknown DynamoDB type {kind}")


def item_size(item: dict[str, Any] | None) -> int:
    """An item's size as DynamoDB bills it: for every attribute, the UTF-8 length of its name plus its value's size.

    Strings: UTF-8 bytes. Numbers: about 1 byte per 2 significant digits + 1. Binary: raw bytes. Booleans and null:
    1 byte. Sets: the sum of their elements. Lists and maps: 3 bytes + each element's size + 1 byte per element
    (map keys count as names). Source: "Item sizes and formats", Amazon DynamoDB Developer Guide,
    https://docs.aws.amazon.com/amazondynamodb/latest/developerguide/CapacityUnitCalculations.html
    """
    if not item:
        return 0
    return sum(len(name.encode("utf-8")) + value_size(value) for name, value in item.items())


def write_units(size: int) -> int:
    """One write unit per 1 KB (rounded up), at least one."""
    return max(1, math.ceil(size / KIB))


def read_units(size: int, consistent: bool) -> float:
    """One read unit per 4 KB (rounded up) strongly consistent, half of that eventually consistent."""
    return max(1, math.ceil(size / (4 * KIB))) * (1.0 if consistent else 0.5)


@dataclass
class IndexInfo:
    name: str
    keys: list[str]
    projection: str  # ALL | KEYS_ONLY | INCLUDE
    non_key: list[str] = field(default_factory=list)


@dataclass
class TableInfo:
    name: str
    keys: list[str]
    indexes: list[IndexInfo]
    ttl_attribute: str | None = None

    def key_of(self, item: dict[str, Any]) -> str | None:
        if not all(k in item for k in self.keys):
            return None
        return json.dumps({k: item[k] for k in self.keys}, sort_keys=True)

    def entry(self, item: dict[str, Any] | None, index: IndexInfo) -> dict[str, Any] | None:
        """What the item puts in the index (None: not in it, the index is sparse on its keys)."""
        if item is None or not all(k in item for k in index.keys):
            return None
        if index.projection == "ALL":
            return dict(item)
        names = {*self.keys, *index.keys, *(index.non_key if index.projection == "INCLUDE" else [])}
        return {k: v for k, v in item.items() if k in names}

    def index_write_units(self, old: dict[str, Any] | None, new: dict[str, Any] | None) -> dict[str, int]:
        """Index writes a table write causes (Developer Guide, "Provisioned throughput considerations for global
        secondary indexes", writes): entering = a put of the projected entry; leaving = a delete; index key changed =
        delete + put; only projected attributes changed = one put; nothing projected changed = nothing."""
        units: dict[str, int] = {}
        for index in self.indexes:
            before, after = self.entry(old, index), self.entry(new, index)
            if before is None and after is None:
                continue
            if before is None:
                units[index.name] = write_units(item_size(after))
            elif after is None:
                units[index.name] = write_units(item_size(before))
            elif any(before[k] != after[k] for k in index.keys):
                units[index.name] = write_units(item_size(before)) + write_units(item_size(after))
            elif before != after:
                units[index.name] = write_units(max(item_size(before), item_size(after)))
        return units


def describe_tables(ddb: Any) -> dict[str, TableInfo]:
    tables = {}
    for name in ddb.list_tables()["TableNames"]:
        description = ddb.describe_table(TableName=name)["Table"]
        indexes = [
            IndexInfo(
                name=gsi["IndexName"],
                keys=[k["AttributeName"] for k in gsi["KeySchema"]],
                projection=gsi.get("Projection", {}).get("ProjectionType", "ALL"),
                non_key=list(gsi.get("Projection", {}).get("NonKeyAttributes", [])),
            )
            for gsi in description.get("GlobalSecondaryIndexes", [])
        ]
        try:
            ttl = ddb.describe_time_to_live(TableName=name)["TimeToLiveDescription"]
            ttl_attribute = ttl.get("AttributeName") if ttl.get("TimeToLiveStatus") in ("ENABLED", "ENABLING") else None
        except Exception:
            ttl_attribute = None
        tables[name] = TableInfo(name, [k["AttributeName"] for k in description["KeySchema"]], indexes, ttl_attribute)
    return tables


class ItemReader:
    """Current item images without making (or counting) requests: straight from the in-process moto backend, or,
    if that is not reachable, a consistent GetItem through the harness's uncounted client."""

    def __init__(self, ddb: Any) -> None:
        self.ddb = ddb
        self.backend: Any = None
        self.dynamo_type: Any = None
        try:
            from moto.core.models import DEFAULT_ACCOUNT_ID
            from moto.dynamodb.models import dynamodb_backends
            from moto.dynamodb.models.dynamo_type import DynamoType

            backend = dynamodb_backends[DEFAULT_ACCOUNT_ID][REGION]
            if backend.tables:
                self.backend, self.dynamo_type = backend, DynamoType
        except Exception:
            self.backend = None

    def get(self, table: str, key: dict[str, Any]) -> dict[str, Any] | None:
        if self.backend is not None:
            for _ in range(5):
                try:
                    moto_table = self.backend.get_table(table)
                    hash_key = self.dynamo_type(key[moto_table.hash_key_attr])
                    range_key = self.dynamo_type(key[moto_table.range_key_attr]) if moto_table.range_key_attr else None
                    found = moto_table.get_item(hash_key, range_key)
                    return None if found is None else found.to_json()["Attributes"]
                except RuntimeError:  # the item changed while we copied it
                    continue
        response = self.ddb.get_item(TableName=table, Key=key, ConsistentRead=True)
        item: dict[str, Any] | None = response.get("Item")
        return item


# ---------------------------------------------------------------- counting (runs in the child)


def _message_size(body: Any, attributes: dict[str, Any] | None) -> int:
    size = len(body.encode("utf-8")) if isinstance(body, str) else len(body or b"")
    for name, attribute in (attributes or {}).items():
        size += len(name.encode()) + len(attribute.get("DataType", "").encode())
        value = attribute.get("StringValue") or attribute.get("BinaryValue") or ""
        size += len(value.encode()) if isinstance(value, str) else len(value)
    return size


def _body_size(body: Any) -> int:
    if body is None:
        return 0
    if isinstance(body, str):
        return len(body.encode("utf-8"))
    if isinstance(body, bytes | bytearray):
        return len(body)
    try:
        position = body.tell()
        body.seek(0, os.SEEK_END)
        size = body.tell() - position
        body.seek(position)
        return int(size)
    except Exception:
        return 0


def _new_phase() -> dict[str, Any]:
    return {
        "requests": Counter(),  # "<source> <service> <Operation>"
        "sqs_units": Counter(),  # "<source> <Operation>": billed requests (64 KB chunks)
        "sqs_bytes": Counter(),
        "sqs_messages_received": Counter(),
        "sns_units": 0,
        "sns_bytes": 0,
        "s3_bytes": Counter(),  # "<source> <Operation>": bytes put or got
        "ddb_wru": Counter(),  # "table <name>" | "index <name>"
        "ddb_wru_by_op": Counter(),
        "ddb_rru_by_op": Counter(),
        "ddb_failed_conditions": 0,
        "ddb_written": set(),  # (table, key json)
        "handler_ms": defaultdict(list),  # function -> [ms]
        "api_ms": [],  # server-side, one per HTTP request
        "http": [],  # client-side (kind, request bytes, response bytes, ms, status)
        "retries": 0,
        "meter_seconds": 0.0,
        "meter_errors": [],
    }


class Meter:
    """botocore hooks on the default session: every request in a phase, with its billing units."""

    def __init__(self) -> None:
        self.lock = threading.Lock()
        self.phase: str | None = None
        self.phases: dict[str, dict[str, Any]] = {}
        self.sources: dict[int, str] = {}
        self._clients: list[Any] = []  # keeps tagged clients alive so their ids stay theirs
        self.reader: ItemReader | None = None
        self.tables: dict[str, TableInfo] = {}
        self.local = threading.local()

    def register(self, events: Any) -> None:
        events.register("before-parameter-build", self.on_params)
        events.register("before-call", self.on_before_call)
        events.register("after-call", self.on_after_call)

    def tag(self, client: Any, source: str) -> None:
        self.sources[id(client._request_signer)] = source
        self._clients.append(client)

    def start(self, phase: str) -> None:
        with self.lock:
            self.phases[phase] = _new_phase()
            self.phase = phase

    def stop(self) -> None:
        self.phase = None

    def _spent(self, phase: str, started: float) -> None:
        elapsed = time.perf_counter() - started
        self.local.seconds = getattr(self.local, "seconds", 0.0) + elapsed
        with self.lock:
            self.phases[phase]["meter_seconds"] += elapsed

    def _error(self, phase: str, where: str, exc: Exception) -> None:
        with self.lock:
            errors = self.phases[phase]["meter_errors"]
            if len(errors) < 20:
                errors.append(f"{where}: {type(exc).__name__}: {exc}")

    # -- hooks

    def on_params(self, params: dict[str, Any], model: Any, context: dict[str, Any], **_: Any) -> None:
        phase = self.phase
        if phase is None or context is None:
            return
        started = time.perf_counter()
        context["cost_phase"] = phase
        context["cost_params"] = params
        try:
            if model.service_model.service_name == "dynamodb" and model.name in DYNAMODB_WRITES and self.reader:
                context["cost_old"] = {
                    ref: self.reader.get(ref[0], json.loads(ref[1])) for ref, _ in self._write_refs(model.name, params)
                }
        except Exception as exc:
            self._error(phase, f"before {model.name}", exc)
        self._spent(phase, started)

    def on_before_call(self, request_signer: Any, context: dict[str, Any], **_: Any) -> None:
        if context is not None and "cost_phase" in context:
            context["cost_source"] = self.sources.get(id(request_signer), "product")

    def on_after_call(self, http_response: Any, parsed: dict[str, Any], model: Any, context: Any, **_: Any) -> None:
        phase = context.get("cost_phase") if context else None
        if phase is None:
            return
        started = time.perf_counter()
        source = context.get("cost_source", "product")
        service, operation = model.service_model.service_name, model.name
        params = context.get("cost_params") or {}
        ok = http_response.status_code < 300
        data = self.phases[phase]
        try:
            label = operation
            if service == "sqs" and operation == "ReceiveMessage" and ok and not parsed.get("Messages"):
                label = "ReceiveMessage (empty)"
            retries = int(parsed.get("ResponseMetadata", {}).get("RetryAttempts", 0) or 0)
            with self.lock:
                data["requests"][f"{source} {service} {label}"] += 1 + retries  # every attempt is billed
                data["retries"] += retries
            if service == "sqs":
                self._sqs(data, source, label, params, parsed if ok else {})
            elif service == "sns":
                self._sns(data, operation, params)
            elif service == "s3":
                self._s3(data, source, operation, params, parsed if ok else {})
            elif service == "dynamodb":
                self._dynamodb(data, operation, params, parsed, http_response.status_code, context.get("cost_old"))
        except Exception as exc:
            self._error(phase, f"after {operation}", exc)
        self._spent(phase, started)

    # -- services

    def _sqs(self, data: dict[str, Any], source: str, operation: str, params: dict[str, Any], parsed: Any) -> None:
        size = 0
        if operation == "SendMessage":
            size = _message_size(params.get("MessageBody"), params.get("MessageAttributes"))
        elif operation == "SendMessageBatch":
            size = sum(_message_size(e.get("MessageBody"), e.get("MessageAttributes")) for e in params["Entries"])
        elif operation == "ReceiveMessage":
            messages = parsed.get("Messages", [])
            size = sum(_message_size(m.get("Body"), m.get("MessageAttributes")) for m in messages)
            with self.lock:
                data["sqs_messages_received"][source] += len(messages)
        with self.lock:
            data["sqs_units"][f"{source} {operation}"] += max(1, math.ceil(size / SQS_CHUNK))
            data["sqs_bytes"][f"{source} {operation}"] += size

    def _sns(self, data: dict[str, Any], operation: str, params: dict[str, Any]) -> None:
        if operation == "Publish":
            sizes = [_message_size(params.get("Message"), params.get("MessageAttributes"))]
        elif operation == "PublishBatch":
            entries = params.get("PublishBatchRequestEntries", [])
            sizes = [_message_size(e.get("Message"), e.get("MessageAttributes")) for e in entries]
        else:
            return
        with self.lock:
            data["sns_units"] += sum(max(1, math.ceil(s / SQS_CHUNK)) for s in sizes)
            data["sns_bytes"] += sum(sizes)

    def _s3(self, data: dict[str, Any], source: str, operation: str, params: dict[str, Any], parsed: Any) -> None:
        size = 0
        if operation in ("PutObject", "UploadPart"):
            size = _body_size(params.get("Body"))
        elif operation == "GetObject":
            size = int(parsed.get("ContentLength") or 0)
        with self.lock:
            data["s3_bytes"][f"{source} {operation}"] += size

    def _table(self, name: str) -> TableInfo:
        return self.tables[name.rsplit("/", 1)[-1]]

    def _write_refs(self, operation: str, params: dict[str, Any]) -> list[tuple[tuple[str, str], int]]:
        """(table, key json) of every item a write touches, with its multiplier (transactions cost 2x)."""
        refs: list[tuple[tuple[str, str], int]] = []

        def add(table_name: str, item_or_key: dict[str, Any], factor: int) -> None:
            table = self._table(table_name)
            key = table.key_of(item_or_key)
            if key is not None:
                refs.append(((table.name, key), factor))

        if operation == "PutItem":
            add(params["TableName"], params["Item"], 1)
        elif operation in ("UpdateItem", "DeleteItem"):
            add(params["TableName"], params["Key"], 1)
        elif operation == "TransactWriteItems":
            for entry in params["TransactItems"]:
                ((kind, body),) = entry.items()
                add(body["TableName"], body["Item"] if kind == "Put" else body["Key"], 2)
        elif operation == "BatchWriteItem":
            for table_name, requests in params["RequestItems"].items():
                for request in requests:
                    if "PutRequest" in request:
                        add(table_name, request["PutRequest"]["Item"], 1)
                    else:
                        add(table_name, request["DeleteRequest"]["Key"], 1)
        return refs

    def _dynamodb(
        self,
        data: dict[str, Any],
        operation: str,
        params: dict[str, Any],
        parsed: dict[str, Any],
        status: int,
        old: dict[tuple[str, str], Any] | None,
    ) -> None:
        assert self.reader is not None
        error = parsed.get("Error", {}).get("Code") if status >= 300 else None
        if operation in DYNAMODB_WRITES:
            refs = self._write_refs(operation, params)
            if operation == "BatchWriteItem" and not error:
                unprocessed = self._write_refs(operation, {"RequestItems": parsed.get("UnprocessedItems") or {}})
                skipped = {ref for ref, _ in unprocessed}
                refs = [(ref, factor) for ref, factor in refs if ref not in skipped]
            if error and error not in ("ConditionalCheckFailedException", "TransactionCanceledException"):
                return  # throttled or invalid: nothing consumed
            units: Counter[str] = Counter()
            for ref, factor in refs:
                table = self.tables[ref[0]]
                before = (old or {}).get(ref)
                if error:  # a failed condition still costs the existing item's size
                    units[f"table {table.name}"] += factor * write_units(item_size(before))
                    continue
                after = self.reader.get(ref[0], json.loads(ref[1]))
                units[f"table {table.name}"] += factor * write_units(max(item_size(before), item_size(after)))
                for index, count in table.index_write_units(before, after).items():
                    units[f"index {index}"] += factor * count
            with self.lock:
                data["ddb_wru"].update(units)
                data["ddb_wru_by_op"][operation + (" (condition failed)" if error else "")] += sum(units.values())
                if error:
                    data["ddb_failed_conditions"] += 1
                else:
                    data["ddb_written"].update(ref for ref, _ in refs)
            return
        if error:
            return
        rru = 0.0
        if operation == "GetItem":
            item = self.reader.get(self._table(params["TableName"]).name, params["Key"]) if "Item" in parsed else None
            rru = read_units(item_size(item), bool(params.get("ConsistentRead")))
        elif operation == "BatchGetItem":
            unprocessed = parsed.get("UnprocessedKeys") or {}
            for table_name, request in params["RequestItems"].items():
                table = self._table(table_name)
                skipped = {table.key_of(k) for k in unprocessed.get(table_name, {}).get("Keys", [])}
                for key in request["Keys"]:
                    if table.key_of(key) in skipped:
                        continue
                    rru += read_units(item_size(self.reader.get(table.name, key)), bool(request.get("ConsistentRead")))
        elif operation in ("Query", "Scan"):
            table = self._table(params["TableName"])
            index = next((i for i in table.indexes if i.name == params.get("IndexName")), None)
            total = 0
            for returned in parsed.get("Items", []):
                key = table.key_of(returned)
                full = self.reader.get(table.name, json.loads(key)) if key else None
                entry = (table.entry(full, index) if index else full) if full else None
                total += item_size(entry or returned)
            rru = read_units(total, bool(params.get("ConsistentRead")) and index is None)
        elif operation == "TransactGetItems":
            for entry in params["TransactItems"]:
                body = entry["Get"]
                rru += 2 * read_units(
                    item_size(self.reader.get(self._table(body["TableName"]).name, body["Key"])), True
                )
        with self.lock:
            data["ddb_rru_by_op"][operation] += rru

    # -- functions and the API

    def timed(self, function: str, handler: Callable[..., Any]) -> Callable[..., Any]:
        """The handler, timed per invocation (minus the time our hooks spent in this thread)."""

        def wrapper(event: Any, context: Any) -> Any:
            phase = self.phase
            hooks_before = getattr(self.local, "seconds", 0.0)
            started = time.perf_counter()
            try:
                return handler(event, context)
            finally:
                elapsed = time.perf_counter() - started - (getattr(self.local, "seconds", 0.0) - hooks_before)
                if phase is not None:
                    with self.lock:
                        self.phases[phase]["handler_ms"][function].append(elapsed * 1000)

        return wrapper


class TimedApp:
    """ASGI wrapper: the API function's duration is the app's time for each HTTP request (server side)."""

    def __init__(self, app: Any, meter: Meter) -> None:
        self.app = app
        self.meter = meter

    async def __call__(self, scope: dict[str, Any], receive: Any, send: Any) -> None:
        phase = self.meter.phase
        if scope["type"] != "http" or phase is None:
            await self.app(scope, receive, send)
            return
        started = time.perf_counter()
        try:
            await self.app(scope, receive, send)
        finally:
            with self.meter.lock:
                self.meter.phases[phase]["api_ms"].append((scope["method"], (time.perf_counter() - started) * 1000))


# ---------------------------------------------------------------- one configuration (the child process)


def _endpoint_delta(before: dict[str, int], after: dict[str, int]) -> dict[str, int]:
    keys = ("invocations", "succeeded", "failed", "texts")
    return {k: after[k] - before.get(k, 0) for k in keys if k in after}


def _rate_per_hour(expression: str) -> float:
    match = re.fullmatch(r"rate\((\d+)\s+(minute|minutes|hour|hours|day|days)\)", expression.strip())
    if not match:
        return 0.0
    value, unit = int(match.group(1)), match.group(2).rstrip("s")
    return {"minute": 60.0, "hour": 1.0, "day": 1 / 24}[unit] / value


def _functions(resolver: Any) -> dict[str, dict[str, Any]]:
    """Memory (MB) and schedule (runs per hour) of every function in the template."""
    template = resolver.template
    default_memory = int(resolver.resolve(template.get("Globals", {}).get("Function", {}).get("MemorySize", 128)))
    functions = {}
    for name, resource in template["Resources"].items():
        if resource.get("Type") != "AWS::Serverless::Function":
            continue
        properties = resource["Properties"]
        runs = 0.0
        for event in properties.get("Events", {}).values():
            if event.get("Type") == "Schedule":
                runs += _rate_per_hour(str(resolver.resolve(event["Properties"]["Schedule"])))
        http = any(e.get("Type") in ("HttpApi", "Api") for e in properties.get("Events", {}).values())
        memory = int(resolver.resolve(properties.get("MemorySize", default_memory)))
        functions[name] = {"memory_mb": memory, "runs_per_hour": runs, "http": http}
    return functions


def _objects(s3: Any, bucket: str) -> dict[str, int]:
    found = {}
    for page in s3.get_paginator("list_objects_v2").paginate(Bucket=bucket):
        found.update({o["Key"]: o["Size"] for o in page.get("Contents", [])})
    return found


def _lifecycle(s3: Any, bucket: str) -> list[tuple[str, int]]:
    try:
        rules = s3.get_bucket_lifecycle_configuration(Bucket=bucket)["Rules"]
    except Exception:
        return []
    found = []
    for rule in rules:
        days = rule.get("Expiration", {}).get("Days")
        prefix = rule.get("Prefix", rule.get("Filter", {}).get("Prefix"))
        if rule.get("Status") == "Enabled" and days and prefix is not None:
            found.append((prefix, int(days)))
    return sorted(found, key=lambda rule: -len(rule[0]))


def _pending(ddb: Any, table: str, ids: list[str]) -> dict[str, str]:
    """Statuses of the finished ones, straight from DynamoDB through the uncounted client."""
    return {i: record["status"] for i, record in finished_records(ddb, table, ids).items()}


class Harness:
    def __init__(self, stack: Any, meter: Meter, pumps: Any, state_dir: Path) -> None:
        import boto3
        import httpx

        self.stack, self.meter, self.pumps, self.httpx = stack, meter, pumps, httpx
        session = boto3.session.Session()  # not the default session: no hooks, nothing counted
        self.ddb = session.client("dynamodb", region_name=REGION, endpoint_url=stack.urls["aws"])
        self.s3 = session.client("s3", region_name=REGION, endpoint_url=stack.urls["aws"])
        self.sqs = session.client("sqs", region_name=REGION, endpoint_url=stack.urls["aws"])
        meter.tables = describe_tables(self.ddb)
        meter.reader = ItemReader(self.ddb)
        self.table = stack.stack.table_name
        self.bucket = stack.stack.bucket_name
        self.lifecycle = _lifecycle(self.s3, self.bucket)
        self.functions = _functions(stack.stack.resolver)
        self.retention_days = float(stack.stack.resolver.parameter("RecordRetentionDays"))
        self.queues = sorted({poller.spec.queue_url for poller in stack._pollers})
        self.api_key = (state_dir / "api-key").read_text().strip()
        self.ids: dict[str, list[str]] = {}
        self.api_function = next((n for n, f in self.functions.items() if f["http"]), "ApiFunction")
        self.api = httpx.Client(
            base_url=stack.urls["api"], headers={"Authorization": f"Bearer {self.api_key}"}, timeout=60
        )

    def _http(self, kind: str, method: str, url: str, body: bytes | None = None, wait: int = 0) -> Any:
        started = time.perf_counter()
        headers = {"Prefer": f"wait={wait}"} if wait else {}
        if body is None:
            response = self.api.request(method, url, headers=headers)
        else:
            headers["Content-Type"] = "application/json"
            response = self.api.request(method, url, content=body, headers=headers)
        elapsed = (time.perf_counter() - started) * 1000
        phase = self.meter.phase
        if phase is not None:
            with self.meter.lock:
                self.meter.phases[phase]["http"].append(
                    (kind, len(body or b""), response.num_bytes_downloaded, elapsed, response.status_code)
                )
        return response

    def _download(self, url: str) -> None:
        """A result kept in S3: the user follows the presigned link (an S3 GET billed to the bucket's owner)."""
        started = time.perf_counter()
        response = self.httpx.get(url, timeout=60)
        elapsed = (time.perf_counter() - started) * 1000
        phase = self.meter.phase
        if phase is not None:
            with self.meter.lock:
                data = self.meter.phases[phase]
                data["http"].append(("download", 0, response.num_bytes_downloaded, elapsed, response.status_code))
                data["requests"]["client s3 GetObject"] += 1
                data["s3_bytes"]["client GetObject"] += len(response.content)

    def warm_up(self) -> None:
        for inputs in ("warm-up", corpus(32, seed=7)):
            self.api.post("/v1/predictions", json={"inputs": inputs}, headers={"Prefer": "wait=20"}).raise_for_status()
        self._wait_idle(30)

    def _wait_idle(self, timeout: float) -> None:
        """Until both event-source queues hold nothing, visible or in flight (so the pumps' deletes are done)."""
        deadline = time.monotonic() + timeout
        names = ["ApproximateNumberOfMessages", "ApproximateNumberOfMessagesNotVisible"]
        while time.monotonic() < deadline:
            busy = 0
            for url in self.queues:
                attributes = self.sqs.get_queue_attributes(QueueUrl=url, AttributeNames=names)["Attributes"]
                busy += sum(int(attributes.get(n, 0)) for n in names)
            if not busy:
                break
            time.sleep(0.5)
        time.sleep(1.0)

    def _pump_totals(self) -> dict[str, dict[str, int]]:
        return {
            name: {k: getattr(stats, k) for k in ("invocations", "records", "failed_records", "errors")}
            for name, stats in self.stack.pump_stats.items()
        }

    def _endpoint_stats(self) -> dict[str, int]:
        stats: dict[str, int] = self.httpx.get(self.stack.urls["sagemaker"] + "/_local/stats").json()
        return stats

    def run_workload(self, name: str, count: int, workload: Workload) -> dict[str, Any]:
        if workload.bulk:
            return self.run_bulk(name, count, workload)
        per = workload.per
        texts = corpus(max(count * per, 1), seed=workload.seed)
        bodies = [
            json.dumps({"inputs": texts[i] if per == 1 else texts[i * per : (i + 1) * per]}).encode()
            for i in range(count)
        ]
        objects_before = _objects(self.s3, self.bucket)
        pumps_before, endpoint_before = self._pump_totals(), self._endpoint_stats()
        print(f"  {name}: {count} predictions of {per} text(s)", file=sys.stderr, flush=True)
        started = time.monotonic()
        self.meter.start(name)
        ids: list[str] = []
        rejected = Counter[int]()
        lock = threading.Lock()

        def submit(body: bytes) -> None:
            response = self._http("POST", "POST", "/v1/predictions", body, workload.wait)
            with lock:
                if response.status_code in (200, 202):
                    ids.append(response.json()["id"])
                else:
                    rejected[response.status_code] += 1
            if workload.wait and response.status_code == 200 and response.json().get("output_url"):
                self._download(response.json()["output_url"])

        with ThreadPoolExecutor(max_workers=SUBMIT_THREADS) as pool:
            list(pool.map(submit, bodies))
        statuses: dict[str, str] = {}
        finished = None
        deadline = time.monotonic() + 120 + 0.1 * count * per
        while time.monotonic() < deadline:
            statuses.update(_pending(self.ddb, self.table, [i for i in ids if statuses.get(i) not in TERMINAL]))
            if all(statuses.get(i) in TERMINAL for i in ids):
                finished = time.monotonic() - started
                break
            time.sleep(1.0)
        self._wait_idle(60)

        def read(prediction_id: str) -> None:
            response = self._http("GET", "GET", f"/v1/predictions/{prediction_id}")
            if response.status_code == 200 and response.json().get("output_url"):
                self._download(response.json()["output_url"])

        if not workload.wait:  # a waiting caller has its result in the reply
            with ThreadPoolExecutor(max_workers=SUBMIT_THREADS) as pool:
                list(pool.map(read, ids))
        self.ids[name] = ids
        time.sleep(0.5)
        self.meter.stop()
        wall = time.monotonic() - started
        data = self.meter.phases[name]
        pumps_after, endpoint_after = self._pump_totals(), self._endpoint_stats()
        outcome = Counter(statuses.get(i, "unfinished") for i in ids)
        result = self._summarise(data, count, per)
        result.update(
            {
                "wall_seconds": wall,
                "seconds_to_finish": finished,
                "outcomes": dict(outcome),
                "rejected": {str(k): v for k, v in rejected.items()},
                "pump_stats": {
                    fn: {k: pumps_after[fn][k] - pumps_before.get(fn, {}).get(k, 0) for k in pumps_after[fn]}
                    for fn in pumps_after
                },
                "endpoint": _endpoint_delta(endpoint_before, endpoint_after),
                "s3_storage": self._s3_storage(objects_before),
                "ddb_storage": self._ddb_storage(data["ddb_written"]),
            }
        )
        return result

    def run_bulk(self, name: str, lines: int, workload: Workload) -> dict[str, Any]:
        """One job of `lines` short texts through the API: create it, PUT the file to its upload link (an S3 PUT
        billed to the bucket's owner), wait (uncounted) until it ends, read it and download its result file."""
        from bench.jobs import JOB_TERMINAL, job_record  # lazily: bench.jobs imports this module

        texts = [t for t in corpus(4 * lines, seed=BULK_SEED) if len(t.split()) <= 12][:lines]
        parameters = {"parameters": {"cache": False}} if workload.bulk == "off" else {}
        body = b"".join(
            json.dumps({"custom_id": f"{name}-{i}", "inputs": text, **parameters}).encode() + b"\n"
            for i, text in enumerate(texts)
        )
        objects_before = _objects(self.s3, self.bucket)
        endpoint_before = self._endpoint_stats()
        print(f"  {name}: a job of {len(texts)} lines", file=sys.stderr, flush=True)
        started = time.monotonic()
        self.meter.start(name)
        created = self._http("POST", "POST", "/v1/jobs", json.dumps({"metadata": {"bench": name}}).encode())
        created.raise_for_status()
        job_id, upload = created.json()["id"], created.json()["upload"]
        put = self.httpx.put(upload["url"], content=body, headers=upload["headers"], timeout=120)
        put.raise_for_status()
        with self.meter.lock:
            data = self.meter.phases[name]
            data["requests"]["client s3 PutObject"] += 1
            data["s3_bytes"]["client PutObject"] += len(body)
        finished, record = None, {}
        deadline = time.monotonic() + 600 + 0.05 * lines
        while time.monotonic() < deadline:
            record = job_record(self.ddb, self.table, job_id)
            if record.get("status") in JOB_TERMINAL:
                finished = time.monotonic() - started
                break
            time.sleep(0.5)
        self._wait_idle(60)
        job = self._http("GET", "GET", f"/v1/jobs/{job_id}").json()
        for link in ("output_url", "error_url"):
            if job.get(link):
                self._download(job[link])
        time.sleep(0.5)
        self.meter.stop()
        result = self._summarise(self.meter.phases[name], len(texts), 1)
        counts = job.get("request_counts") or {}
        endpoint_after = self._endpoint_stats()
        result.update(
            {
                "wall_seconds": time.monotonic() - started,
                "seconds_to_finish": finished,
                "outcomes": {"succeeded": int(counts.get("completed", 0))},
                "job_status": job.get("status", record.get("status")),
                "job_counts": counts,
                "rejected": {},
                "endpoint": _endpoint_delta(endpoint_before, endpoint_after),
                "s3_storage": self._s3_storage(objects_before),
                "ddb_storage": self._ddb_storage(self.meter.phases[name]["ddb_written"]),
            }
        )
        return result

    def calibrate(self, samples: int = 5) -> dict[str, dict[str, float]]:
        """Every function's time one request at a time, as each Lambda environment serves them: `samples`
        predictions per workload shape, each submitted alone, waited for (uncounted) and read once. Medians, by
        function (the API by method), to set against the times under the workloads' 8 concurrent clients, where
        everything shares one process and 2 cores with the model server."""
        found: dict[str, dict[str, float]] = {}
        for workload, shape in WORKLOADS.items():
            if shape.bulk:
                continue  # a job's chunks are one request each already: its times are one at a time
            per, phase = shape.per, f"calibration {workload}"
            # Texts of their own per sample: a repeated body would be answered from the result cache.
            texts = corpus(per * samples, seed=shape.seed + 1000)
            bodies = [
                json.dumps({"inputs": texts[n] if per == 1 else texts[n * per : (n + 1) * per]}).encode()
                for n in range(samples)
            ]
            self.meter.start(phase)
            for body in bodies:
                response = self._http("POST", "POST", "/v1/predictions", body, shape.wait)
                if shape.wait:
                    continue  # the POST returned with the result: its time is the wait
                prediction_id = response.json()["id"]
                deadline = time.monotonic() + 60
                while time.monotonic() < deadline:
                    if _pending(self.ddb, self.table, [prediction_id]).get(prediction_id) in TERMINAL:
                        break
                    time.sleep(0.1)
                time.sleep(0.3)  # the completion handler returns just after its write
                self._http("GET", "GET", f"/v1/predictions/{prediction_id}")
            self.meter.stop()
            data = self.meter.phases[phase]
            times = {
                f"{self.api_function} {m}": [ms for method, ms in data["api_ms"] if method == m]
                for m in ("POST", "GET")
            }
            times.update(data["handler_ms"])
            found[workload] = {name: statistics.median(values) for name, values in times.items() if values}
        self._wait_idle(30)
        return found

    def idle_sweep(self) -> dict[str, Any] | None:
        """One run of each scheduled function with nothing stuck: what the schedule costs when idle."""
        schedulers = getattr(self.stack, "_schedulers", [])
        if not schedulers:
            return None
        self.meter.start("idle sweep")
        for scheduler in schedulers:
            function = scheduler.spec.function
            scheduler.handler(self.pumps.scheduled_event(function), self.pumps.FakeContext(function))
        time.sleep(0.2)
        self.meter.stop()
        return self._summarise(self.meter.phases["idle sweep"], 0, 0)

    def _summarise(self, data: dict[str, Any], count: int, per: int) -> dict[str, Any]:
        lambdas = {}
        durations = dict(data["handler_ms"])
        if data["api_ms"]:
            durations[self.api_function] = [ms for _, ms in data["api_ms"]]
        for function, values in durations.items():
            ordered = sorted(values)
            lambdas[function] = {
                "invocations": len(values),
                "billed_ms": sum(math.ceil(v) for v in values),
                "mean_ms": sum(values) / len(values),
                "p50_ms": ordered[len(ordered) // 2],
                "memory_mb": self.functions.get(function, {}).get("memory_mb", 128),
            }
        api = [h for h in data["http"] if h[0] in ("POST", "GET")]
        downloads = [h for h in data["http"] if h[0] == "download"]
        return {
            "predictions": count,
            "texts": count * per,
            "texts_per_prediction": per,
            "requests": dict(data["requests"]),
            "sqs_units": dict(data["sqs_units"]),
            "sqs_bytes": dict(data["sqs_bytes"]),
            "sqs_messages_received": dict(data["sqs_messages_received"]),
            "sns_units": data["sns_units"],
            "sns_bytes": data["sns_bytes"],
            "s3_bytes": dict(data["s3_bytes"]),
            "ddb_wru": dict(data["ddb_wru"]),
            "ddb_wru_by_op": dict(data["ddb_wru_by_op"]),
            "ddb_rru_by_op": dict(data["ddb_rru_by_op"]),
            "ddb_failed_conditions": data["ddb_failed_conditions"],
            "lambda": lambdas,
            "api": {
                "requests": len(api),
                "by_kind": dict(Counter(h[0] for h in api)),
                "statuses": dict(Counter(str(h[4]) for h in api)),
                "billed_requests": sum(max(1, math.ceil(max(h[1], h[2]) / API_CHUNK)) for h in api),
                "request_bytes": sum(h[1] for h in api),
                "response_bytes": sum(h[2] for h in api),
                "client_mean_ms": sum(h[3] for h in api) / len(api) if api else 0.0,
                "server_requests": len(data["api_ms"]),
                "server_mean_ms": {
                    method: statistics.mean(ms for m, ms in data["api_ms"] if m == method)
                    for method in sorted({m for m, _ in data["api_ms"]})
                },
            },
            "downloads": {"requests": len(downloads), "bytes": sum(h[2] for h in downloads)},
            "retries": data["retries"],
            "meter_seconds": data["meter_seconds"],
            "meter_errors": data["meter_errors"],
        }

    def _s3_storage(self, before: dict[str, int]) -> dict[str, Any]:
        by_prefix: dict[str, dict[str, Any]] = {}
        for key, size in _objects(self.s3, self.bucket).items():
            if key in before:
                continue
            prefix, days = next(
                ((p, d) for p, d in self.lifecycle if key.startswith(p)), (key.split("/")[0] + "/", None)
            )
            entry = by_prefix.setdefault(prefix, {"objects": 0, "bytes": 0, "days": days})
            entry["objects"] += 1
            entry["bytes"] += size
        return by_prefix

    def _ddb_storage(self, written: set[tuple[str, str]]) -> dict[str, Any]:
        """Bytes x days each item written stays (until its TTL, else RecordRetentionDays), with its index entries;
        100 bytes of overhead per item and per index entry, as DynamoDB bills storage."""
        assert self.meter.reader is not None
        now = time.time()
        byte_days, total, items = 0.0, 0, Counter[str]()
        sizes: defaultdict[str, list[int]] = defaultdict(list)
        for table_name, key in written:
            table = self.meter.tables[table_name]
            item = self.meter.reader.get(table_name, json.loads(key))
            if item is None:
                continue
            kind = next(iter(json.loads(key).values()))
            kind_name = str(next(iter(kind.values()))).split("#")[0] if isinstance(kind, dict) else "item"
            size = item_size(item) + 100
            sizes[kind_name].append(item_size(item))
            for index in table.indexes:
                entry = table.entry(item, index)
                if entry is not None:
                    size += item_size(entry) + 100
            days = self.retention_days
            if table.ttl_attribute and "N" in item.get(table.ttl_attribute, {}):
                days = max(0.0, (float(item[table.ttl_attribute]["N"]) - now) / 86400)
            byte_days += size * days
            total += size
            items[kind_name] += 1
        return {
            "byte_days": byte_days,
            "bytes": total,
            "items": dict(items),
            "mean_item_bytes": {k: sum(v) / len(v) for k, v in sizes.items()},
            "max_item_bytes": {k: max(v) for k, v in sizes.items()},
        }


def run_one(config: str, tree: Path, counts: dict[str, int], result_file: Path) -> None:
    """Runs in the child process: the selected tree's product and local stack, both workloads, raw counts."""
    tree = tree.resolve()
    for path in reversed([tree, tree / "layers", tree / "api", tree / "model"]):
        sys.path.insert(0, str(path))
    os.chdir(tree)
    import boto3

    meter = Meter()
    boto3.setup_default_session()
    meter.register(boto3.DEFAULT_SESSION.events)  # clients made from now on inherit the hooks

    from local_stack import pumps, runner

    if not Path(runner.__file__).resolve().is_relative_to(tree):
        raise RuntimeError(f"local_stack was imported from {runner.__file__}, not from {tree}")

    make_client = runner.LocalStack.client

    def client(self: Any, service: str) -> Any:
        made = make_client(self, service)
        meter.tag(made, LOCAL_CLIENT_SOURCE.get(service, "local"))
        return made

    serve = runner.LocalStack._serve

    def timed_serve(self: Any, app: Any, host: str, port: int) -> None:
        serve(self, TimedApp(app, meter) if port == self.options.api_port else app, host, port)

    poller_init = pumps.Poller.__init__

    def timed_poller(self: Any, spec: Any, *args: Any, **kwargs: Any) -> None:
        poller_init(self, spec, *args, **kwargs)
        self.handler = meter.timed(spec.function, self.handler)

    runner.LocalStack.client = client  # type: ignore[method-assign]
    runner.LocalStack._serve = timed_serve  # type: ignore[method-assign]
    pumps.Poller.__init__ = timed_poller  # type: ignore[method-assign]
    scheduler_class = getattr(pumps, "Scheduler", None)
    if scheduler_class is not None:
        scheduler_init = scheduler_class.__init__

        def timed_scheduler(self: Any, spec: Any, *args: Any, **kwargs: Any) -> None:
            scheduler_init(self, spec, *args, **kwargs)
            self.handler = meter.timed(spec.function, self.handler)

        scheduler_class.__init__ = timed_scheduler

    harness: Harness | None = None
    with tempfile.TemporaryDirectory() as state:
        wanted: dict[str, Any] = {
            "api_port": runner.free_port("127.0.0.1"),
            "state_dir": Path(state),
            "pollers_per_function": 5,
            "schedule_interval": 365 * 86400.0,  # the sweeper runs once, on purpose, after the workloads
        }
        names = {f.name for f in dataclasses.fields(runner.Options)}
        stack = runner.LocalStack(runner.Options(**{k: v for k, v in wanted.items() if k in names}))
        print(f"{config}: starting the local stack from {tree}", file=sys.stderr, flush=True)
        stack.start()
        try:
            harness = Harness(stack, meter, pumps, Path(state))
            harness.warm_up()
            workloads = {
                name: harness.run_workload(name, counts[name], workload)
                for name, workload in WORKLOADS.items()
                if counts[name]
            }
            sweep = harness.idle_sweep()
            for name, times in harness.calibrate().items():
                workloads[name]["one_at_a_time_ms"] = times
            result = {
                "config": config,
                "tree": str(tree),
                "functions": harness.functions,
                "esm_queues": len(harness.queues),
                "tables": {name: dataclasses.asdict(t) for name, t in meter.tables.items()},
                "lifecycle": harness.lifecycle,
                "retention_days": harness.retention_days,
                "item_reader": "moto backend" if meter.reader and meter.reader.backend else "GetItem",
                "workloads": workloads,
                "idle_sweep": sweep,
            }
        finally:
            if harness is not None:
                harness.api.close()
            stack.stop()
    result_file.write_text(json.dumps(result, indent=1, default=sorted))


# ---------------------------------------------------------------- prices (the parent)

SERVICE_ORDER = ["API Gateway", "Lambda", "SQS", "SNS", "S3", "DynamoDB", "SageMaker", "Data transfer"]


def _price(prices: dict[str, Any], name: str) -> float:
    entry = prices["prices"][name]
    return float(entry["usd"]) / float(entry["per"])


def _s3_tier(operation: str) -> int | None:
    if operation.startswith(("Delete", "Abort")):
        return None  # free
    if operation.startswith(("Put", "Copy", "Post", "List", "Create", "Upload", "Complete")):
        return 1
    return 2


def cost_lines(data: dict[str, Any], prices: dict[str, Any]) -> dict[tuple[str, str], float]:
    """Dollars for everything a phase did (not scaled)."""
    lines: dict[tuple[str, str], float] = defaultdict(float)
    assumptions = prices["assumptions"]
    api = data["api"]
    if api["requests"]:
        lines[("API Gateway", "HTTP API requests")] = api["billed_requests"] * _price(prices, "apigateway_http_request")
    lambdas = data["lambda"]
    lines[("Lambda", "invocations")] = sum(f["invocations"] for f in lambdas.values()) * _price(
        prices, "lambda_request"
    )
    for function, f in sorted(lambdas.items()):
        gb_seconds = f["billed_ms"] / 1000 * f["memory_mb"] / 1024
        lines[("Lambda", f"duration: {function}")] = gb_seconds * _price(prices, "lambda_gb_second_arm64")
    sqs = _price(prices, "sqs_standard_request")
    for key, units in data["sqs_units"].items():
        source, operation = key.split(" ", 1)
        if operation == "ReceiveMessage (empty)":
            continue  # idle polling is a fixed cost, priced per hour from the stated assumption
        item = "event source mappings (receives, deletes)" if source == "esm" else "API and handlers (sends)"
        lines[("SQS", item)] += units * sqs
    if data["sns_units"]:
        lines[("SNS", "endpoint notifications (publishes)")] = data["sns_units"] * _price(prices, "sns_publish")
    for key, count in data["requests"].items():
        source, service, operation = key.split(" ", 2)
        if service != "s3" or _s3_tier(operation) is None:
            continue
        tier = _s3_tier(operation)
        item = "PUT/COPY/POST/LIST requests" if tier == 1 else "GET and other requests"
        lines[("S3", item)] += count * _price(prices, f"s3_tier{tier}_request")
    storage = data.get("s3_storage") or {}
    byte_days = sum(p["bytes"] * (p["days"] if p["days"] is not None else 30) for p in storage.values())
    if byte_days:
        lines[("S3", "storage until lifecycle expiry")] = _gb_months(byte_days) * _price(prices, "s3_storage_gb_month")
    wru = _price(prices, "dynamodb_ondemand_wru")
    for key, units in data["ddb_wru"].items():
        kind, name = key.split(" ", 1)
        lines[("DynamoDB", "writes: table" if kind == "table" else f"writes: index {name}")] += units * wru
    rru = sum(data["ddb_rru_by_op"].values())
    if rru:
        lines[("DynamoDB", "reads")] = rru * _price(prices, "dynamodb_ondemand_rru")
    ddb_storage = data.get("ddb_storage") or {}
    if ddb_storage.get("byte_days"):
        gb_months = _gb_months(ddb_storage["byte_days"])
        lines[("DynamoDB", "storage until TTL")] = gb_months * _price(prices, "dynamodb_storage_gb_month")
        lines[("DynamoDB", "point-in-time recovery")] = gb_months * _price(prices, "dynamodb_pitr_gb_month")
    # Texts the model computed (cache hits cost no GPU time), where the local endpoint reports them.
    computed = data.get("endpoint", {}).get("texts", data["texts"])
    if computed:
        seconds = computed / float(assumptions["gpu_items_per_second"]["value"])
        instance = assumptions["gpu_items_per_second"]["instance"]
        lines[("SageMaker", f"{instance} instance time")] = seconds / 3600 * _price(prices, "sagemaker_instance_hour")
    processed = sum(v for k, v in data["s3_bytes"].items() if k.startswith("endpoint "))
    if processed:
        lines[("SageMaker", "data processed in + out")] = (
            processed / GIB * _price(prices, "sagemaker_data_processed_gb")
        )
    transferred = api["response_bytes"] + data["downloads"]["bytes"]
    if transferred:
        lines[("Data transfer", "out to the internet")] = transferred / GIB * _price(prices, "data_transfer_out_gb")
    return dict(lines)


def alone_lambda(data: dict[str, Any], prices: dict[str, Any]) -> dict[tuple[str, str], float]:
    """The Lambda duration lines again, with each function's median time one request at a time (calibration) in
    place of the times measured under the workload (the API by method)."""
    alone = data.get("one_at_a_time_ms") or {}
    lines = {}
    for function, f in data["lambda"].items():
        if f"{function} POST" in alone or f"{function} GET" in alone:
            ms = sum(
                n * math.ceil(alone.get(f"{function} {m}", f["mean_ms"])) for m, n in data["api"]["by_kind"].items()
            )
        else:
            ms = f["invocations"] * math.ceil(alone.get(function, f["mean_ms"]))
        gb_seconds = ms / 1000 * f["memory_mb"] / 1024
        lines[("Lambda", f"duration: {function}")] = gb_seconds * _price(prices, "lambda_gb_second_arm64")
    return lines


def _gb_months(byte_days: float) -> float:
    return byte_days / GIB * 24 / HOURS_PER_MONTH


def _money(value: float | None) -> str:
    if value is None:
        return "—"
    if value == 0:
        return "0"
    if abs(value) >= 100:
        return f"{value:,.0f}"
    if abs(value) >= 1:
        return f"{value:,.2f}"
    return f"{value:.3g}"


def _ratio(new: float | None, base: float | None) -> str:
    if new is None or base is None:
        return ""
    if base == 0:
        return "new" if new else ""
    return f"{new / base:.2f}x"


def _order(key: tuple[str, str]) -> tuple[int, str]:
    service = key[0]
    return (SERVICE_ORDER.index(service) if service in SERVICE_ORDER else len(SERVICE_ORDER), key[1])


def fixed_costs(result: dict[str, Any], prices: dict[str, Any]) -> dict[str, float]:
    """Dollars per hour that do not depend on traffic."""
    hourly = {}
    receives = result["esm_queues"] * float(prices["assumptions"]["esm_idle_receives_per_queue_per_hour"]["value"])
    hourly[f"SQS: idle event source mapping polls ({result['esm_queues']} queues)"] = receives * _price(
        prices, "sqs_standard_request"
    )
    sweep = result.get("idle_sweep")
    if sweep:
        runs = sum(f["runs_per_hour"] for f in result["functions"].values())
        per_run = cost_lines(sweep, prices)
        hourly[f"scheduled functions ({runs:g} runs/hour, all services)"] = runs * sum(per_run.values())
    return hourly


def _per_prediction(data: dict[str, Any]) -> dict[str, float]:
    n = data["predictions"]
    found: dict[str, float] = {}
    for key, count in data["requests"].items():
        source, rest = key.split(" ", 1)
        found[f"{rest} ({SOURCES.get(source, source)})"] = count / n
    found["API Gateway HTTP requests (client)"] = data["api"]["requests"] / n
    return found


def _render_workload(
    workload: str, shape: Workload, results: dict[str, dict[str, Any]], names: dict[str, str], prices: dict[str, Any]
) -> list[str]:
    """One workload's section: cost by line item for each configuration that ran it, drivers, measurements."""
    configs = [c for c in ("baseline", "new") if workload in results.get(c, {}).get("workloads", {})]
    if not configs:
        return []
    per, description, unit = shape.per, shape.description, shape.unit
    lines: list[str] = []
    tables = {c: results[c]["workloads"][workload] for c in configs}
    scaled = {
        c: {k: v * 1e6 / tables[c]["predictions"] for k, v in cost_lines(tables[c], prices).items()} for c in configs
    }
    keys = sorted({k for c in configs for k in scaled[c]}, key=_order)
    header = " | ".join(f"{names[c]} $/1M {unit}" for c in configs)
    counted = tables[configs[-1]]["predictions"]
    what = (
        f"{counted} lines of 1 text" if shape.bulk else f"{counted} predictions of {per} text{'s' if per > 1 else ''}"
    )
    lines += [
        f"## {workload}: {description} ({what})",
        "",
        f"| service | line item | {header} |" + (" new / baseline |" if len(configs) == 2 else ""),
        "|---|---|" + "---:|" * len(configs) + ("---:|" if len(configs) == 2 else ""),
    ]
    for key in keys:
        values = [scaled[c].get(key) for c in configs]
        ratio = f" {_ratio(values[-1], values[0])} |" if len(configs) == 2 else ""
        lines.append(f"| {key[0]} | {key[1]} | " + " | ".join(_money(v) for v in values) + " |" + ratio)
    totals = [sum(scaled[c].values()) for c in configs]
    ratio = f" **{_ratio(totals[-1], totals[0])}** |" if len(configs) == 2 else ""
    lines.append("| **total** | | " + " | ".join(f"**{_money(t)}**" for t in totals) + " |" + ratio)
    per_text = [t / per for t in totals]
    ratio = f" {_ratio(per_text[-1], per_text[0])} |" if len(configs) == 2 else ""
    lines.append("| **per 1M input texts** | | " + " | ".join(_money(t) for t in per_text) + " |" + ratio)
    alone = {
        c: {
            **scaled[c],
            **{k: v * 1e6 / tables[c]["predictions"] for k, v in alone_lambda(tables[c], prices).items()},
        }
        for c in configs
    }
    alone_totals = [sum(alone[c].values()) for c in configs]
    ratio = f" {_ratio(alone_totals[-1], alone_totals[0])} |" if len(configs) == 2 else ""
    lines.append(
        "| total with every Lambda duration timed one request at a time (see below) | | "
        + " | ".join(_money(t) for t in alone_totals)
        + " |"
        + ratio
    )
    last = configs[-1]
    if shape.bulk:
        lines += ["", *_bulk_target(alone[last], alone_totals[-1], shape)]
    for title, lines_of, total in (
        ("Lambda durations as measured under load, an upper bound", scaled[last], totals[-1]),
        ("Lambda durations timed one request at a time", alone[last], alone_totals[-1]),
    ):
        top = sorted(lines_of.items(), key=lambda kv: -kv[1])[:3]
        lines += ["", f"Top three cost drivers, {names[last]} ({title}):", ""]
        lines += [
            f"{rank}. {key[0]}, {key[1]}: ${_money(value)} per 1M {unit} ({100 * value / total:.0f}%)"
            for rank, (key, value) in enumerate(top, 1)
        ]
    lines += [
        "",
        f"Measured (per {unit[:-1]} unless stated):",
        "",
        "| | " + " | ".join(names[c] for c in configs) + " |",
    ]
    lines.append("|---|" + "---:|" * len(configs))
    for label, get in _measurements():
        label = label.replace("prediction", unit[:-1]) if shape.bulk else label
        lines.append(f"| {label} | " + " | ".join(get(tables[c]) for c in configs) + " |")
    lines += [
        "",
        f"AWS requests per {unit[:-1]} by operation ({workload}):",
        "",
        "| operation (source) | " + " | ".join(names[c] for c in configs) + " |",
        "|---|" + "---:|" * len(configs),
    ]
    per_prediction = {c: _per_prediction(tables[c]) for c in configs}
    for operation in sorted({o for c in configs for o in per_prediction[c]}):
        lines.append(
            f"| {operation} | " + " | ".join(f"{per_prediction[c].get(operation, 0):.3f}" for c in configs) + " |"
        )
    lines.append("")
    return lines


def _bulk_target(lines_of: dict[tuple[str, str], float], total: float, shape: Workload) -> list[str]:
    """The bulk target: everything a job costs within 2x of what it cannot avoid (GPU time and S3)."""
    gpu = sum(v for (service, item), v in lines_of.items() if service == "SageMaker" and "instance time" in item)
    s3 = sum(v for (service, _), v in lines_of.items() if service == "S3")
    floor = gpu + s3
    ratio = total / floor if floor else float("inf")
    verdict = ("met" if ratio <= 2 else "not met") if shape.bulk == "off" else "for reference (target is on B1)"
    return [
        f"Against the floor (one request at a time): GPU time ${_money(gpu)} + S3 ${_money(s3)} = "
        f"${_money(floor)} per 1M lines; the whole job costs ${_money(total)}, **{ratio:.2f}x** "
        f"(target <= 2x with the cache off: {verdict})."
    ]


def render(results: dict[str, dict[str, Any]], prices: dict[str, Any], args: argparse.Namespace, seconds: float) -> str:
    configs = [c for c in ("baseline", "new") if c in results]
    names = {"baseline": f"baseline {args.baseline}", "new": "new"}
    assumptions = prices["assumptions"]
    gpu = assumptions["gpu_items_per_second"]
    lines = [
        "# Cost per 1 million predictions (local stack, counted; priced with bench/prices.json)",
        "",
        f"Generated by `make bench-cost` (`python -m bench.cost --n1 {args.n1} --n2 {args.n2} --n3 {args.n3} "
        f"--lines {args.lines} --baseline {args.baseline}`) in {seconds / 60:.1f} min. Prices: {prices['region']}, public on-demand list prices "
        "(first tier, no free tier); each price's source and date are in bench/prices.json.",
        "",
        *[f"- **{c}**: {results[c]['revision']}" for c in configs],
        "",
        "Workloads, each run on both configurations' own local stacks: **W1** = "
        f"{args.n1} single-text predictions, **W2** = {args.n2} predictions of 32 texts, submitted by "
        f"{SUBMIT_THREADS} threads without `Prefer: wait`; then every prediction read once with "
        "`GET /v1/predictions/{id}` (counted; waiting used an uncounted DynamoDB client). "
        f"**W3** = {args.n3} single-text predictions with `Prefer: wait=20`, same threads: the reply holds the "
        "result, so no GET, and the API function's duration includes the wait. Texts: the seeded mixed corpus of "
        f"bench/corpus.py. **B1-B3** = one bulk job of {args.lines:,} lines of one short text each (corpus texts of "
        "at most 12 words, as in bench-jobs): created with `POST /v1/jobs`, the file PUT to its upload link "
        "(counted as an S3 PUT), waited for (uncounted), read with `GET /v1/jobs/{id}` and its result file "
        "downloaded; B1 with `parameters.cache: false` on every line, B2 the same texts with the cache on (nothing "
        "cached yet), B3 the same file again. Everything below is scaled linearly from the run to 1,000,000 "
        "predictions (bulk: lines).",
        "",
    ]
    for workload, shape in WORKLOADS.items():
        lines += _render_workload(workload, shape, results, names, prices)
    lines += [
        "## Fixed costs (no traffic), $ per hour and per month",
        "",
        "| item | " + " | ".join(names[c] for c in configs) + " |",
    ]
    lines.append("|---|" + "---:|" * len(configs))
    fixed = {c: fixed_costs(results[c], prices) for c in configs}
    for item in sorted({i for c in configs for i in fixed[c]}):
        cells = [fixed[c].get(item) for c in configs]
        lines.append(
            f"| {item} | "
            + " | ".join("—" if v is None else f"${v:.5f}/h = ${v * HOURS_PER_MONTH:.2f}/month" for v in cells)
            + " |"
        )
    lines += [
        "",
        "The SageMaker endpoint scales to zero, so it has no fixed cost here; but each scale-out from zero bills at "
        "least the instance's start-up plus the 600 s scale-in cooldown of the template's target tracking policy "
        f"(about ${_price(prices, 'sagemaker_instance_hour') / 6:.2f} per burst after an idle period), which per-1M "
        "figures do not include.",
        "",
        "## Assumptions and how each number is made",
        "",
        f"- **SageMaker instance time** = input texts / {gpu['value']:,} items/s on one {gpu['instance']} "
        f"(assumed, not measured: no GPU here). {gpu['derivation']} Source: {gpu['source']}. It assumes a busy "
        "instance (merged batches); idle time, start-up and cooldown are not in the per-1M figures.",
        "- **Lambda duration** = each handler call timed in the local process (event pumps call the real "
        "handlers; the API's time is the FastAPI app's time per HTTP request, server side, without Mangum), rounded "
        "up to 1 ms, times the template's MemorySize. The local machine (2 cores shared by moto, the model server and "
        "every function's threads, GIL included) is slower than Lambda, so GB-seconds are an upper bound. Cold-start "
        "(INIT) time is not included (see bench/results/coldstart.md). The row **total with every Lambda duration "
        "timed one request at a time** re-prices the duration lines with each function's median time from a "
        "calibration after the workloads: a few predictions of the same shape, each submitted alone and waited for "
        "(so the dispatcher's batches hold one prediction there, fewer than under load): closer to what separate "
        "Lambda environments would bill, and a lower estimate.",
        "- **API Gateway**: one HTTP API request per HTTP call, metered in 512 KB increments of the larger of request "
        "and response body; one Lambda invocation each.",
        "- **SQS**: every request the API, handlers and event source mappings (the local pumps) make, in 64 KB "
        "units of payload (a batch of up to 10 is one request). Per-prediction figures count only receives that "
        "returned messages, and deletes; empty receives are a fixed cost: "
        f"{assumptions['esm_idle_receives_per_queue_per_hour']['derivation']} "
        f"({assumptions['esm_idle_receives_per_queue_per_hour']['source']}). The local pumps' 1 s polls are shown "
        "in the request tables as `ReceiveMessage (empty)` but not priced.",
        "- **SNS**: the endpoint's success/error publishes in 64 KB units; deliveries to SQS are free.",
        "- **S3**: requests by operation (PUT/COPY/POST/LIST tier 1, GET and others tier 2, DELETE free), including "
        "the endpoint's own input GET and output PUT and users following presigned result links. Storage: bytes "
        "written per prefix x the bucket's lifecycle expiration days (read back from the bucket), GB = 2^30 bytes, "
        f"{HOURS_PER_MONTH} hours a month.",
        "- **DynamoDB writes**: every write's item read back right after it (straight from the in-process moto "
        "backend, so nothing is counted or slowed by HTTP), billed at max(old, new) size per 1 KB rounded up "
        "(transactions 2x; failed conditions the existing item's size); each GSI from DescribeTable charges a put "
        "when the item enters it, a delete when it leaves, delete + put when its index key changes, a put when "
        "only projected attributes change. **Reads**: GetItem/BatchGetItem per item per 4 KB of the full item, "
        "Query per 4 KB of the summed returned item sizes (index entries for index queries), 0.5 eventually "
        "consistent. Storage: each written item and its index entries (+100 bytes each) until its TTL attribute "
        "(else RecordRetentionDays); TTL deletes are free. Point-in-time recovery is billed on the same size.",
        "- **SageMaker data processed**: bytes the endpoint read (batch inputs) and wrote (batch outputs).",
        "- **Data transfer out**: API response bodies and presigned downloads as sent (gzipped where the API "
        "compressed them) at the internet rate (headers and the first 100 GB a month free are ignored).",
        "- Not included: CloudWatch Logs and metrics (Powertools logs and EMF metrics), X-Ray traces "
        "(`Tracing: Active`), KMS (SSE-S3 and SQS-managed SSE are free), the request and completion DLQs (empty "
        "here), free tiers.",
        "",
    ]
    return "\n".join(lines)


def _measurements() -> list[tuple[str, Callable[[dict[str, Any]], str]]]:
    def per(value: float, data: dict[str, Any], digits: int = 2) -> str:
        return f"{value / data['predictions']:.{digits}f}"

    def lambda_ms(data: dict[str, Any]) -> str:
        return ", ".join(f"{k.removesuffix('Function')} {v['mean_ms']:.0f}" for k, v in sorted(data["lambda"].items()))

    def items(data: dict[str, Any]) -> str:
        storage = data["ddb_storage"]
        return ", ".join(f"{k} {v:,.0f} B" for k, v in sorted(storage["mean_item_bytes"].items()))

    def s3_prefixes(data: dict[str, Any]) -> str:
        return ", ".join(
            f"{prefix} {v['bytes'] / data['predictions']:,.0f} B ({v['days']} d)"
            for prefix, v in sorted(data["s3_storage"].items())
        )

    def alone_ms(data: dict[str, Any]) -> str:
        return ", ".join(
            f"{k.replace('Function', '')} {v:.0f}" for k, v in sorted(data.get("one_at_a_time_ms", {}).items())
        )

    def api_ms(data: dict[str, Any]) -> str:
        return ", ".join(f"{m} {v:.0f}" for m, v in sorted(data["api"]["server_mean_ms"].items()))

    return [
        ("succeeded", lambda d: f"{d['outcomes'].get('succeeded', 0)}/{d['predictions']}"),
        ("endpoint invocations per 1,000 predictions", lambda d: per(1000 * d["endpoint"]["invocations"], d, 1)),
        ("Lambda invocations", lambda d: per(sum(f["invocations"] for f in d["lambda"].values()), d, 3)),
        ("Lambda mean duration, ms", lambda_ms),
        ("API mean duration by method, ms", api_ms),
        ("one request at a time: median duration, ms", alone_ms),
        ("DynamoDB write units", lambda d: per(sum(d["ddb_wru"].values()), d)),
        ("DynamoDB read units", lambda d: per(sum(d["ddb_rru_by_op"].values()), d)),
        ("DynamoDB mean item size by kind", items),
        ("S3 bytes kept, by prefix (lifecycle days)", s3_prefixes),
        ("API response bytes (as sent)", lambda d: per(d["api"]["response_bytes"], d, 0)),
        ("presigned result downloads", lambda d: per(d["downloads"]["requests"], d)),
        ("AWS request retries (billed, counted above)", lambda d: str(d["retries"])),
        (
            "seconds until all finished / whole run with reads",
            lambda d: f"{d['seconds_to_finish'] or 0:.0f} / {d['wall_seconds']:.0f}",
        ),
    ]


# ---------------------------------------------------------------- orchestration


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=(__doc__ or "").splitlines()[0])
    parser.add_argument("--n1", type=int, default=300, help="W1: single-text predictions")
    parser.add_argument("--n2", type=int, default=60, help="W2: predictions of 32 texts")
    parser.add_argument("--n3", type=int, default=100, help="W3: single-text predictions with Prefer: wait (0: skip)")
    parser.add_argument("--lines", type=int, default=20000, help="B1-B3: lines of the bulk job (0: skip)")
    parser.add_argument("--baseline", default="49fe22d", help="git revision of the baseline design")
    parser.add_argument("--only", choices=["new", "baseline"], help="run one configuration")
    parser.add_argument("--output", type=Path, default=REPO / "bench/results/cost.md")
    parser.add_argument("--prices", type=Path, default=PRICES)
    parser.add_argument("--run-one", choices=["new", "baseline"], help=argparse.SUPPRESS)
    parser.add_argument("--tree", type=Path, help=argparse.SUPPRESS)
    parser.add_argument("--result-file", type=Path, help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.run_one:
        counts = {"W1": args.n1, "W2": args.n2, "W3": args.n3, "B1": args.lines, "B2": args.lines, "B3": args.lines}
        run_one(args.run_one, args.tree, counts, args.result_file)
        return 0
    prices = json.loads(args.prices.read_text())
    configs = [args.only] if args.only else ["baseline", "new"]
    started = time.monotonic()
    results: dict[str, dict[str, Any]] = {}
    with tempfile.TemporaryDirectory() as scratch:
        try:
            if "baseline" in configs:
                if WORKTREE.exists():
                    subprocess.run(["git", "worktree", "remove", "--force", str(WORKTREE)], cwd=REPO, check=False)
                git("worktree", "add", "--detach", str(WORKTREE), args.baseline)
            for config in configs:
                tree = WORKTREE if config == "baseline" else REPO
                print(f"running: {config} ({tree}) ...", file=sys.stderr, flush=True)
                result_file, log_file = Path(scratch) / f"{config}.json", Path(scratch) / f"{config}.log"
                with log_file.open("w") as log:
                    child = subprocess.run(
                        [
                            sys.executable,
                            "-m",
                            "bench.cost",
                            *("--run-one", config, "--tree", str(tree), "--result-file", str(result_file)),
                            *("--n1", str(args.n1), "--n2", str(args.n2), "--n3", str(args.n3)),
                            *("--lines", str(args.lines)),
                        ],
                        cwd=REPO,
                        stdout=log,
                        stderr=subprocess.STDOUT,
                        check=False,
                    )
                if child.returncode != 0:
                    print(log_file.read_text()[-5000:], file=sys.stderr)
                    return child.returncode
                results[config] = json.loads(result_file.read_text())
                results[config]["revision"] = describe(config, tree, args.baseline)
                for workload, data in results[config]["workloads"].items():
                    if data["meter_errors"]:
                        print(f"{config} {workload} meter errors: {data['meter_errors'][:3]}", file=sys.stderr)
            if os.environ.get("BENCH_COST_RAW"):
                Path(os.environ["BENCH_COST_RAW"]).write_text(json.dumps(results, indent=1))
        finally:
            if WORKTREE.exists():
                subprocess.run(["git", "worktree", "remove", "--force", str(WORKTREE)], cwd=REPO, check=False)
    report = render(results, prices, args, time.monotonic() - started)
    publish(report, args.output)
    return 0


if __name__ == "__main__":
    sys.exit(main())
