"""Cost model: dollars per 1 million predictions from what the local stack actually did, baseline vs. today.

    python -m bench.cost [--n1 300] [--n2 60] [--n3 100] [--lines 20000] [--baseline 3be0838] [--only new|baseline]
                         [--output PATH]

Workloads: W1 = N1 single-text predictions and W2 = N2 predictions of 32 texts, submitted over HTTP by 8 threads,
waited for through an uncounted DynamoDB client, then each read once with a (counted) GET; W3 = N3 single-text
predictions with `Prefer: wait=20` (the API function is billed while it waits); B1-B3 = one bulk job of LINES short
texts with the cache off, on (first run) and on again (the same file).

The baseline is a git revision in a temporary worktree; "new" is this working tree. Each runs in its own process
(`--child`) that puts its tree first on sys.path, starts its local stack and counts with botocore hooks on the
default boto3 session (every client the product, the event pumps and the local endpoint make; the harness's own
clients come from another session and are not counted): requests by operation, SQS/SNS 64 KB units, S3 bytes,
DynamoDB units from the real item sizes and each GSI's schema, Lambda durations of the real handlers, API requests
and bytes. The child writes raw counts as JSON; this process prices them with bench/prices.json into
bench/results/cost.md (BENCH_COST_RAW=path also keeps the raw counts).
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
import threading
import time
from collections import Counter, defaultdict
from collections.abc import Callable, Iterable, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx

from bench.corpus import corpus
from bench.harness import (
    REPO,
    api_client,
    children,
    describe,
    git,
    local_stack,
    log,
    publish,
    table,
    wait_records,
)

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
    """1 byte per 2 significant digits (leading and trailing zeroes trimmed), plus 1 byte."""
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
    if kind in ("SS", "NS", "BS"):  # the sum of the elements
        return sum(value_size({kind[0]: element}) for element in inner)
    if kind == "M":
        return 3 + sum(len(k.encode("utf-8")) + value_size(v) + 1 for k, v in inner.items())
    if kind == "L":
        return 3 + sum(value_size(v) + 1 for v in inner)
    raise ValueError(f"unknown DynamoDB type {kind}")


def item_size(item: dict[str, Any] | None) -> int:
    """An item's size as DynamoDB bills it: each attribute's UTF-8 name length plus its value's size. Strings: UTF-8
    bytes; numbers: about 1 byte per 2 significant digits + 1; binary: raw bytes; booleans and null: 1 byte; sets: the
    sum of their elements; lists and maps: 3 bytes + each element's size + 1 byte per element (map keys count as
    names). Source: "Item sizes and formats", Amazon DynamoDB Developer Guide,
    https://docs.aws.amazon.com/amazondynamodb/latest/developerguide/CapacityUnitCalculations.html
    """
    return sum(len(name.encode("utf-8")) + value_size(value) for name, value in (item or {}).items())


def write_units(size: int) -> int:
    return max(1, math.ceil(size / KIB))  # per 1 KB rounded up, at least one


def read_units(size: int, consistent: bool) -> float:
    return max(1, math.ceil(size / (4 * KIB))) * (1.0 if consistent else 0.5)  # per 4 KB; half if eventual


def item_kind(key: str) -> str:
    """`PRED`, `BATCH`, ...: what comes before the first `#` of an item's partition key (a key as `key_of` makes)."""
    first = next(iter(json.loads(key).values()), None)
    return str(next(iter(first.values()))).split("#")[0] if isinstance(first, dict) else "item"


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
        secondary indexes"): entering = a put of the projected entry; leaving = a delete; index key changed =
        delete + put; only projected attributes changed = one put; nothing projected changed = nothing."""
        units: dict[str, int] = {}
        for index in self.indexes:
            before, after = self.entry(old, index), self.entry(new, index)
            if before is None and after is None:
                continue
            if before is None or after is None:  # entering or leaving the index
                units[index.name] = write_units(item_size(before or after))
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
        item: dict[str, Any] | None = self.ddb.get_item(TableName=table, Key=key, ConsistentRead=True).get("Item")
        return item


# ---------------------------------------------------------------- counting (runs in the child)


def _length(data: str | bytes | bytearray | None) -> int:
    return len(data.encode("utf-8") if isinstance(data, str) else data or b"")


def _message_size(body: Any, attributes: dict[str, Any] | None) -> int:
    size = _length(body)
    for name, attribute in (attributes or {}).items():
        size += _length(name) + _length(attribute.get("DataType", ""))
        size += _length(attribute.get("StringValue") or attribute.get("BinaryValue") or "")
    return size


def _body_size(body: Any) -> int:
    if body is None or isinstance(body, str | bytes | bytearray):
        return _length(body)
    try:  # a file object: what is left of it
        position = body.tell()
        body.seek(0, os.SEEK_END)
        size = body.tell() - position
        body.seek(position)
        return int(size)
    except Exception:
        return 0


def _units(size: int) -> int:
    return max(1, math.ceil(size / SQS_CHUNK))  # SQS and SNS bill a request per 64 KB of payload


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
        "ddb_wru_by_kind": Counter(),  # "<item kind> <Operation>": table and index units
        "ddb_rru_by_op": Counter(),
        "ddb_failed_conditions": 0,
        "ddb_written": Counter(),  # (table, key json) -> writes
        "handler_ms": defaultdict(list),  # function -> [ms]
        "api_ms": [],  # server-side (method, ms), one per HTTP request
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

    def add(self, **counts: Any) -> None:
        """What the harness itself saw (its HTTP calls, presigned URLs), into the current phase."""
        phase = self.phase
        if phase is not None:
            self.count(phase, counts)

    def count(self, phase: str, counts: dict[str, Any]) -> None:
        """Adds `counts` to the phase's: Counters by key, numbers and lists by `+=`."""
        with self.lock:
            data = self.phases[phase]
            for name, value in counts.items():
                if isinstance(data[name], Counter):
                    data[name].update(value)
                else:
                    data[name] += value

    def _spent(self, phase: str, started: float) -> None:
        elapsed = time.perf_counter() - started
        self.local.seconds = getattr(self.local, "seconds", 0.0) + elapsed
        self.count(phase, {"meter_seconds": elapsed})

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
                refs = self._write_refs(model.name, params)
                context["cost_old"] = {ref: self.reader.get(ref[0], json.loads(ref[1])) for ref, _ in refs}
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
        try:
            label = operation
            if service == "sqs" and operation == "ReceiveMessage" and ok and not parsed.get("Messages"):
                label = "ReceiveMessage (empty)"
            retries = int(parsed.get("ResponseMetadata", {}).get("RetryAttempts", 0) or 0)
            # Every attempt is billed.
            self.count(phase, {"requests": {f"{source} {service} {label}": 1 + retries}, "retries": retries})
            if service == "sqs":
                self.count(phase, self._sqs(source, label, params, parsed if ok else {}))
            elif service == "sns" and operation in ("Publish", "PublishBatch"):
                entries = params.get("PublishBatchRequestEntries", []) if operation == "PublishBatch" else [params]
                sizes = [_message_size(e.get("Message"), e.get("MessageAttributes")) for e in entries]
                self.count(phase, {"sns_units": sum(_units(s) for s in sizes), "sns_bytes": sum(sizes)})
            elif service == "s3":
                size = 0
                if operation in ("PutObject", "UploadPart"):
                    size = _body_size(params.get("Body"))
                elif operation == "GetObject" and ok:
                    size = int(parsed.get("ContentLength") or 0)
                self.count(phase, {"s3_bytes": {f"{source} {operation}": size}})
            elif service == "dynamodb":
                error = parsed.get("Error", {}).get("Code") if not ok else None
                if operation in DYNAMODB_WRITES:
                    self.count(phase, self._ddb_write(operation, params, parsed, error, context.get("cost_old")))
                elif not error:
                    self.count(phase, {"ddb_rru_by_op": {operation: self._ddb_read(operation, params, parsed)}})
        except Exception as exc:
            self._error(phase, f"after {operation}", exc)
        self._spent(phase, started)

    # -- services

    def _sqs(self, source: str, operation: str, params: dict[str, Any], parsed: Any) -> dict[str, Any]:
        received = {}
        if operation == "ReceiveMessage":
            messages = parsed.get("Messages", [])
            size = sum(_message_size(m.get("Body"), m.get("MessageAttributes")) for m in messages)
            received = {source: len(messages)}
        else:
            sent = {"SendMessage": [params], "SendMessageBatch": params.get("Entries", [])}.get(operation, [])
            size = sum(_message_size(e.get("MessageBody"), e.get("MessageAttributes")) for e in sent)
        key = f"{source} {operation}"
        return {"sqs_units": {key: _units(size)}, "sqs_bytes": {key: size}, "sqs_messages_received": received}

    def _table(self, name: str) -> TableInfo:
        return self.tables[name.rsplit("/", 1)[-1]]

    def _write_refs(self, operation: str, params: dict[str, Any]) -> list[tuple[tuple[str, str], int]]:
        """(table, key json) of every item a write touches, with its multiplier (transactions cost 2x)."""
        writes: list[tuple[str, dict[str, Any], int]] = []  # table name, item or key, factor
        if operation == "PutItem":
            writes.append((params["TableName"], params["Item"], 1))
        elif operation in ("UpdateItem", "DeleteItem"):
            writes.append((params["TableName"], params["Key"], 1))
        elif operation == "TransactWriteItems":
            for entry in params["TransactItems"]:
                ((kind, body),) = entry.items()
                writes.append((body["TableName"], body["Item"] if kind == "Put" else body["Key"], 2))
        elif operation == "BatchWriteItem":
            for table_name, requests in params["RequestItems"].items():
                for request in requests:
                    put = "PutRequest" in request
                    writes.append(
                        (table_name, request["PutRequest"]["Item"] if put else request["DeleteRequest"]["Key"], 1)
                    )
        refs = []
        for table_name, item_or_key, factor in writes:
            table = self._table(table_name)
            key = table.key_of(item_or_key)
            if key is not None:
                refs.append(((table.name, key), factor))
        return refs

    def _ddb_write(
        self, operation: str, params: dict[str, Any], parsed: dict[str, Any], error: str | None, old: Any
    ) -> dict[str, Any]:
        """Write units of the table and its indexes, from the items before (read in `on_params`) and after."""
        assert self.reader is not None
        refs = self._write_refs(operation, params)
        if operation == "BatchWriteItem" and not error:
            unprocessed = self._write_refs(operation, {"RequestItems": parsed.get("UnprocessedItems") or {}})
            refs = [(ref, factor) for ref, factor in refs if ref not in {ref for ref, _ in unprocessed}]
        if error and error not in ("ConditionalCheckFailedException", "TransactionCanceledException"):
            return {}  # throttled or invalid: nothing consumed
        units: Counter[str] = Counter()
        by_kind: Counter[str] = Counter()
        label = operation + (" (condition failed)" if error else "")
        for ref, factor in refs:
            table = self.tables[ref[0]]
            before = (old or {}).get(ref)
            spent = sum(units.values())
            if error:  # a failed condition still costs the existing item's size
                units[f"table {table.name}"] += factor * write_units(item_size(before))
            else:
                after = self.reader.get(ref[0], json.loads(ref[1]))
                units[f"table {table.name}"] += factor * write_units(max(item_size(before), item_size(after)))
                for index, count in table.index_write_units(before, after).items():
                    units[f"index {index}"] += factor * count
            by_kind[f"{item_kind(ref[1])} {label}"] += sum(units.values()) - spent
        return {
            "ddb_wru": units,
            "ddb_wru_by_kind": by_kind,
            "ddb_wru_by_op": {label: sum(units.values())},
            "ddb_failed_conditions": 1 if error else 0,
            "ddb_written": [] if error else [ref for ref, _ in refs],
        }

    def _ddb_read(self, operation: str, params: dict[str, Any], parsed: dict[str, Any]) -> float:
        """Read units: per item for gets, per summed size of what a query or scan returned."""
        assert self.reader is not None
        reader = self.reader

        def size(table_name: str, key: dict[str, Any]) -> int:
            return item_size(reader.get(self._table(table_name).name, key))

        rru = 0.0
        if operation == "GetItem":
            rru = read_units(
                size(params["TableName"], params["Key"]) if "Item" in parsed else 0, bool(params.get("ConsistentRead"))
            )
        elif operation == "BatchGetItem":
            unprocessed = parsed.get("UnprocessedKeys") or {}
            for table_name, request in params["RequestItems"].items():
                table = self._table(table_name)
                skipped = {table.key_of(k) for k in unprocessed.get(table_name, {}).get("Keys", [])}
                for key in request["Keys"]:
                    if table.key_of(key) not in skipped:
                        rru += read_units(size(table_name, key), bool(request.get("ConsistentRead")))
        elif operation in ("Query", "Scan"):
            table = self._table(params["TableName"])
            gsi = next((i for i in table.indexes if i.name == params.get("IndexName")), None)
            total = 0
            for returned in parsed.get("Items", []):
                item_key = table.key_of(returned)
                full = reader.get(table.name, json.loads(item_key)) if item_key else None
                entry = (table.entry(full, gsi) if gsi else full) if full else None
                total += item_size(entry or returned)
            rru = read_units(total, bool(params.get("ConsistentRead")) and gsi is None)
        elif operation == "TransactGetItems":
            for entry in params["TransactItems"]:
                rru += 2 * read_units(size(entry["Get"]["TableName"], entry["Get"]["Key"]), True)
        return rru

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
            self.meter.count(phase, {"api_ms": [(scope["method"], (time.perf_counter() - started) * 1000)]})


# ---------------------------------------------------------------- one configuration (the child process)


def _rate_per_hour(expression: str) -> float:
    match = re.fullmatch(r"rate\((\d+)\s+(minute|minutes|hour|hours|day|days)\)", expression.strip())
    if not match:
        return 0.0
    return {"minute": 60.0, "hour": 1.0, "day": 1 / 24}[match.group(2).rstrip("s")] / int(match.group(1))


def _functions(resolver: Any) -> dict[str, dict[str, Any]]:
    """Memory (MB), schedule (runs per hour) and whether it serves HTTP, for every function in the template."""
    template = resolver.template
    default_memory = int(resolver.resolve(template.get("Globals", {}).get("Function", {}).get("MemorySize", 128)))
    functions = {}
    for name, resource in template["Resources"].items():
        if resource.get("Type") != "AWS::Serverless::Function":
            continue
        properties = resource["Properties"]
        events = properties.get("Events", {}).values()
        schedules = [str(resolver.resolve(e["Properties"]["Schedule"])) for e in events if e.get("Type") == "Schedule"]
        functions[name] = {
            "memory_mb": int(resolver.resolve(properties.get("MemorySize", default_memory))),
            "runs_per_hour": sum(map(_rate_per_hour, schedules), 0.0),
            "http": any(e.get("Type") in ("HttpApi", "Api") for e in events),
        }
    return functions


def _objects(s3: Any, bucket: str) -> dict[str, int]:
    pages = s3.get_paginator("list_objects_v2").paginate(Bucket=bucket)
    return {o["Key"]: o["Size"] for page in pages for o in page.get("Contents", [])}


def _lifecycle(s3: Any, bucket: str) -> list[tuple[str, int]]:
    """(prefix, expiration days) of the bucket's enabled rules, longest prefix first."""
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


def _until(done: Callable[[], bool], timeout: float, interval: float) -> bool:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if done():
            return True
        time.sleep(interval)
    return False


def _bodies(count: int, per: int, seed: int) -> list[bytes]:
    """`count` prediction bodies of `per` corpus texts each."""
    texts = corpus(max(count * per, 1), seed=seed)
    return [
        json.dumps({"inputs": texts[i] if per == 1 else texts[i * per : (i + 1) * per]}).encode() for i in range(count)
    ]


class Harness:
    """Drives the workloads over HTTP and reads what they left, with uncounted clients of its own."""

    def __init__(self, stack: Any, meter: Meter, pumps: Any) -> None:
        import boto3

        self.stack, self.meter, self.pumps = stack, meter, pumps
        session = boto3.session.Session()  # not the default session: no hooks, nothing counted
        self.ddb, self.s3, self.sqs = (
            session.client(service, region_name=REGION, endpoint_url=stack.urls["aws"])
            for service in ("dynamodb", "s3", "sqs")
        )
        meter.tables = describe_tables(self.ddb)
        meter.reader = ItemReader(self.ddb)
        self.table, self.bucket = stack.stack.table_name, stack.stack.bucket_name
        self.lifecycle = _lifecycle(self.s3, self.bucket)
        self.functions = _functions(stack.stack.resolver)
        self.retention_days = float(stack.stack.resolver.parameter("RecordRetentionDays"))
        self.queues = sorted({poller.spec.queue_url for poller in stack._pollers})
        self.api_function = next((n for n, f in self.functions.items() if f["http"]), "ApiFunction")
        self.api = api_client(stack)

    def _http(self, method: str, url: str, body: bytes | None = None, wait: int = 0) -> httpx.Response:
        headers = {"Prefer": f"wait={wait}"} if wait else {}
        if body is not None:
            headers["Content-Type"] = "application/json"
        started = time.perf_counter()
        response = self.api.request(method, url, content=body, headers=headers)
        elapsed = (time.perf_counter() - started) * 1000
        self.meter.add(http=[(method, len(body or b""), response.num_bytes_downloaded, elapsed, response.status_code)])
        return response

    def _download(self, url: str) -> None:
        """A result kept in S3: the user follows the presigned link (an S3 GET billed to the bucket's owner)."""
        started = time.perf_counter()
        response = httpx.get(url, timeout=60)
        elapsed = (time.perf_counter() - started) * 1000
        self.meter.add(
            http=[("download", 0, response.num_bytes_downloaded, elapsed, response.status_code)],
            requests={"client s3 GetObject": 1},
            s3_bytes={"client GetObject": len(response.content)},
        )

    def warm_up(self) -> None:
        for inputs in ("warm-up", corpus(32, seed=7)):
            self.api.post("/v1/predictions", json={"inputs": inputs}, headers={"Prefer": "wait=20"}).raise_for_status()
        self._wait_idle(30)

    def _wait_idle(self, timeout: float) -> None:
        """Until the event-source queues hold nothing, visible or in flight (so the pumps' deletes are done)."""
        names = ["ApproximateNumberOfMessages", "ApproximateNumberOfMessagesNotVisible"]

        def idle() -> bool:
            for url in self.queues:
                attributes = self.sqs.get_queue_attributes(QueueUrl=url, AttributeNames=names)["Attributes"]
                if any(int(attributes.get(n, 0)) for n in names):
                    return False
            return True

        _until(idle, timeout, 0.5)
        time.sleep(1.0)

    def _pump_totals(self) -> dict[str, dict[str, int]]:
        keys = ("invocations", "records", "failed_records", "errors")
        return {name: {k: getattr(stats, k) for k in keys} for name, stats in self.stack.pump_stats.items()}

    def _endpoint_stats(self) -> dict[str, int]:
        stats: dict[str, int] = httpx.get(self.stack.urls["sagemaker"] + "/_local/stats").json()
        return stats

    def _start(self, name: str) -> float:
        """Notes what a workload's phase will be compared with, then starts counting it."""
        self.before = (_objects(self.s3, self.bucket), self._pump_totals(), self._endpoint_stats())
        self.started = time.monotonic()
        self.meter.start(name)
        return self.started

    def run_workload(self, name: str, count: int, workload: Workload) -> dict[str, Any]:
        """One workload as a counted phase: the drive, then what it cost and what it left in S3 and DynamoDB."""
        texts, per, extra = (self._bulk if workload.bulk else self._interactive)(name, count, workload)
        time.sleep(0.5)
        self.meter.stop()
        wall = time.monotonic() - self.started
        data = self.meter.phases[name]
        objects_before, pumps_before, endpoint_before = self.before
        pumps, endpoint = self._pump_totals(), self._endpoint_stats()
        keys = ("invocations", "succeeded", "failed", "texts")
        return {
            **self._summarise(data, texts, per),
            **extra,
            "wall_seconds": wall,
            "pump_stats": {
                fn: {k: pumps[fn][k] - pumps_before.get(fn, {}).get(k, 0) for k in pumps[fn]} for fn in pumps
            },
            "endpoint": {k: endpoint[k] - endpoint_before.get(k, 0) for k in keys if k in endpoint},
            "s3_storage": self._s3_storage(objects_before),
            "ddb_storage": self._ddb_storage(data["ddb_written"]),
        }

    def _interactive(self, name: str, count: int, workload: Workload) -> tuple[int, int, dict[str, Any]]:
        """Submitted by SUBMIT_THREADS threads, waited for (uncounted), then each read once unless the POST waited."""
        bodies = _bodies(count, workload.per, workload.seed)
        log(f"  {name}: {count} predictions of {workload.per} text(s)")
        started = self._start(name)
        ids: list[str] = []
        rejected = Counter[int]()
        lock = threading.Lock()

        def submit(body: bytes) -> None:
            response = self._http("POST", "/v1/predictions", body, workload.wait)
            with lock:
                if response.status_code in (200, 202):
                    ids.append(response.json()["id"])
                else:
                    rejected[response.status_code] += 1
            if workload.wait and response.status_code == 200 and response.json().get("output_url"):
                self._download(response.json()["output_url"])

        def read(prediction_id: str) -> None:
            response = self._http("GET", f"/v1/predictions/{prediction_id}")
            if response.status_code == 200 and response.json().get("output_url"):
                self._download(response.json()["output_url"])

        with ThreadPoolExecutor(max_workers=SUBMIT_THREADS) as pool:
            list(pool.map(submit, bodies))
        records = wait_records(self.ddb, self.table, ids, timeout=120 + 0.1 * count * workload.per, poll=1.0)
        finished = time.monotonic() - started if len(records) == len(ids) else None
        self._wait_idle(60)
        if not workload.wait:  # a waiting caller has its result in the reply
            with ThreadPoolExecutor(max_workers=SUBMIT_THREADS) as pool:
                list(pool.map(read, ids))
        extra = {
            "seconds_to_finish": finished,
            "outcomes": dict(Counter(records.get(i, {}).get("status", "unfinished") for i in ids)),
            "rejected": {str(k): v for k, v in rejected.items()},
        }
        return count, workload.per, extra

    def _bulk(self, name: str, lines: int, workload: Workload) -> tuple[int, int, dict[str, Any]]:
        """One job through the API: create it, PUT the file to its upload link (an S3 PUT billed to the bucket's
        owner), wait (uncounted) until it ends, read it and download its result file."""
        from bench.jobs import JOB_TERMINAL, job_record  # lazily: it imports the product (from the tree)

        texts = [t for t in corpus(4 * lines, seed=BULK_SEED) if len(t.split()) <= 12][:lines]
        parameters = {"parameters": {"cache": False}} if workload.bulk == "off" else {}
        body = b"".join(
            json.dumps({"custom_id": f"{name}-{i}", "inputs": text, **parameters}).encode() + b"\n"
            for i, text in enumerate(texts)
        )
        log(f"  {name}: a job of {len(texts)} lines")
        started = self._start(name)
        created = self._http("POST", "/v1/jobs", json.dumps({"metadata": {"bench": name}}).encode())
        if created.status_code == 404:
            raise SystemExit("this revision has no bulk jobs: give a newer --baseline, or --lines 0")
        created.raise_for_status()
        job_id, upload = created.json()["id"], created.json()["upload"]
        httpx.put(upload["url"], content=body, headers=upload["headers"], timeout=120).raise_for_status()
        self.meter.add(requests={"client s3 PutObject": 1}, s3_bytes={"client PutObject": len(body)})
        record: dict[str, Any] = {}

        def done() -> bool:
            record.update(job_record(self.ddb, self.table, job_id))
            return record.get("status") in JOB_TERMINAL

        finished = time.monotonic() - started if _until(done, 600 + 0.05 * lines, 0.5) else None
        self._wait_idle(60)
        job = self._http("GET", f"/v1/jobs/{job_id}").json()
        for link in ("output_url", "error_url"):
            if job.get(link):
                self._download(job[link])
        counts = job.get("request_counts") or {}
        extra = {
            "seconds_to_finish": finished,
            "outcomes": {"succeeded": int(counts.get("completed", 0))},
            "job_status": job.get("status", record.get("status")),
            "job_counts": counts,
            "rejected": {},
        }
        return len(texts), 1, extra

    def calibrate(self, samples: int = 5) -> dict[str, dict[str, float]]:
        """Every function's median time one request at a time, as each Lambda environment serves them (the API by
        method): `samples` predictions per interactive shape, each submitted alone, waited for (uncounted) and read
        once, to set against the times under 8 concurrent clients sharing one process and 2 cores with the model
        server. A job's chunks are one request each already."""
        found: dict[str, dict[str, float]] = {}
        for workload, shape in WORKLOADS.items():
            if shape.bulk:
                continue
            phase = f"calibration {workload}"
            self.meter.start(phase)
            for body in _bodies(samples, shape.per, shape.seed + 1000):  # own texts: no result-cache hits
                response = self._http("POST", "/v1/predictions", body, shape.wait)
                if shape.wait:
                    continue  # the POST returned with the result: its time is the wait
                prediction_id = response.json()["id"]
                wait_records(self.ddb, self.table, [prediction_id], timeout=60, poll=0.1)
                time.sleep(0.3)  # the completion handler returns just after its write
                self._http("GET", f"/v1/predictions/{prediction_id}")
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
        durations = dict(data["handler_ms"])
        if data["api_ms"]:
            durations[self.api_function] = [ms for _, ms in data["api_ms"]]
        lambdas = {
            function: {
                "invocations": len(values),
                "billed_ms": sum(math.ceil(v) for v in values),
                "mean_ms": sum(values) / len(values),
                "p50_ms": sorted(values)[len(values) // 2],
                "memory_mb": self.functions.get(function, {}).get("memory_mb", 128),
            }
            for function, values in durations.items()
        }
        api = [h for h in data["http"] if h[0] in ("POST", "GET")]
        downloads = [h for h in data["http"] if h[0] == "download"]
        server_ms = data["api_ms"]
        counted = {  # the meter's own counts, as plain JSON
            k: dict(v) if isinstance(v, dict) else v
            for k, v in data.items()
            if k not in ("ddb_written", "handler_ms", "api_ms", "http")
        }
        return {
            "predictions": count,
            "texts": count * per,
            "texts_per_prediction": per,
            **counted,
            "lambda": lambdas,
            "api": {
                "requests": len(api),
                "by_kind": dict(Counter(h[0] for h in api)),
                "statuses": dict(Counter(str(h[4]) for h in api)),
                "billed_requests": sum(max(1, math.ceil(max(h[1], h[2]) / API_CHUNK)) for h in api),
                "request_bytes": sum(h[1] for h in api),
                "response_bytes": sum(h[2] for h in api),
                "client_mean_ms": sum(h[3] for h in api) / len(api) if api else 0.0,
                "server_requests": len(server_ms),
                "server_mean_ms": {
                    method: statistics.mean(ms for m, ms in server_ms if m == method)
                    for method in sorted({m for m, _ in server_ms})
                },
            },
            "downloads": {"requests": len(downloads), "bytes": sum(h[2] for h in downloads)},
        }

    def _s3_storage(self, before: dict[str, int]) -> dict[str, Any]:
        """New objects by lifecycle prefix (else their first path segment), with the prefix's expiration days."""
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

    def _ddb_storage(self, written: Iterable[tuple[str, str]]) -> dict[str, Any]:
        """Bytes x days each item written stays (until its TTL, else RecordRetentionDays), with its index entries;
        100 bytes of overhead per item and per index entry, as DynamoDB bills storage."""
        assert self.meter.reader is not None
        now = time.time()
        byte_days, total = 0.0, 0
        sizes: defaultdict[str, list[int]] = defaultdict(list)
        for table_name, key in written:
            table = self.meter.tables[table_name]
            item = self.meter.reader.get(table_name, json.loads(key))
            if item is None:
                continue
            sizes[item_kind(key)].append(item_size(item))
            entries = [table.entry(item, index) for index in table.indexes]
            size = item_size(item) + 100 + sum(item_size(e) + 100 for e in entries if e is not None)
            days = self.retention_days
            if table.ttl_attribute and "N" in item.get(table.ttl_attribute, {}):
                days = max(0.0, (float(item[table.ttl_attribute]["N"]) - now) / 86400)
            byte_days += size * days
            total += size
        return {
            "byte_days": byte_days,
            "bytes": total,
            "items": {k: len(v) for k, v in sizes.items()},
            "mean_item_bytes": {k: sum(v) / len(v) for k, v in sizes.items()},
            "max_item_bytes": {k: max(v) for k, v in sizes.items()},
        }


def _instrument(meter: Meter, runner: Any, pumps: Any) -> None:
    """Patches the selected tree's local stack: its own clients tagged by source, the API app timed, every
    poller's and scheduler's handler timed."""
    make_client, serve = runner.LocalStack.client, runner.LocalStack._serve

    def client(self: Any, service: str) -> Any:
        made = make_client(self, service)
        meter.tag(made, LOCAL_CLIENT_SOURCE.get(service, "local"))
        return made

    def timed_serve(self: Any, app: Any, host: str, port: int) -> None:
        serve(self, TimedApp(app, meter) if port == self.options.api_port else app, host, port)

    def time_handlers(cls: Any) -> None:
        init = cls.__init__

        def timed_init(self: Any, spec: Any, *args: Any, **kwargs: Any) -> None:
            init(self, spec, *args, **kwargs)
            self.handler = meter.timed(spec.function, self.handler)

        cls.__init__ = timed_init

    runner.LocalStack.client = client
    runner.LocalStack._serve = timed_serve
    for cls in (pumps.Poller, getattr(pumps, "Scheduler", None)):  # a baseline may have no scheduler
        if cls is not None:
            time_handlers(cls)


def run_one(config: str, tree: Path, counts: dict[str, int], result_file: Path) -> None:
    """Runs in the child process: the selected tree's product and local stack, every workload, raw counts."""
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
    _instrument(meter, runner, pumps)
    # The sweeper runs once, on purpose, after the workloads; options a baseline's stack lacks are left out.
    wanted = {"pollers_per_function": 5, "schedule_interval": 365 * 86400.0}
    options = {k: v for k, v in wanted.items() if k in {f.name for f in dataclasses.fields(runner.Options)}}
    # Costs count requests and price the GPU from the texts, so the CPU model server's small bulk slices (fair
    # latency behind a backlog, bench.tenants) would only slow the bulk workloads: 64 runs 20,000 lines ~1.6x faster.
    os.environ.setdefault("BULK_SLICE_TEXTS", "64")
    log(f"{config}: starting the local stack from {tree}")
    with local_stack(**options) as stack:
        harness = Harness(stack, meter, pumps)
        with harness.api:
            harness.warm_up()
            workloads = {
                name: harness.run_workload(name, counts[name], workload)
                for name, workload in WORKLOADS.items()
                if counts[name]
            }
            sweep = harness.idle_sweep()
            for name, times in harness.calibrate().items():
                if name in workloads:  # not skipped (count 0)
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
    result_file.write_text(json.dumps(result, indent=1, default=sorted))


# ---------------------------------------------------------------- prices (the parent)

SERVICE_ORDER = ["API Gateway", "Lambda", "SQS", "SNS", "S3", "DynamoDB", "SageMaker", "Data transfer"]


def _price(prices: dict[str, Any], name: str) -> float:
    entry = prices["prices"][name]
    return float(entry["usd"]) / float(entry["per"])


def _s3_tier(operation: str) -> int | None:
    if operation.startswith(("Delete", "Abort")):
        return None  # free
    return 1 if operation.startswith(("Put", "Copy", "Post", "List", "Create", "Upload", "Complete")) else 2


def _gb_months(byte_days: float) -> float:
    return byte_days / GIB * 24 / HOURS_PER_MONTH


def _lambda_duration(function: str, ms: float, memory_mb: int, prices: dict[str, Any]) -> dict[tuple[str, str], float]:
    return {
        ("Lambda", f"duration: {function}"): ms / 1000 * memory_mb / 1024 * _price(prices, "lambda_gb_second_arm64")
    }


def cost_lines(data: dict[str, Any], prices: dict[str, Any]) -> dict[tuple[str, str], float]:
    """Dollars for everything a phase did (not scaled)."""
    lines: dict[tuple[str, str], float] = defaultdict(float)
    api, lambdas = data["api"], data["lambda"]
    if api["requests"]:
        lines[("API Gateway", "HTTP API requests")] = api["billed_requests"] * _price(prices, "apigateway_http_request")
    invocations = sum(f["invocations"] for f in lambdas.values())
    lines[("Lambda", "invocations")] = invocations * _price(prices, "lambda_request")
    for function, f in sorted(lambdas.items()):
        lines.update(_lambda_duration(function, f["billed_ms"], f["memory_mb"], prices))
    for key, units in data["sqs_units"].items():
        source, operation = key.split(" ", 1)
        if operation == "ReceiveMessage (empty)":
            continue  # idle polling is a fixed cost, priced per hour from the stated assumption
        item = "event source mappings (receives, deletes)" if source == "esm" else "API and handlers (sends)"
        lines[("SQS", item)] += units * _price(prices, "sqs_standard_request")
    if data["sns_units"]:
        lines[("SNS", "endpoint notifications (publishes)")] = data["sns_units"] * _price(prices, "sns_publish")
    for key, count in data["requests"].items():
        _, service, operation = key.split(" ", 2)
        tier = _s3_tier(operation) if service == "s3" else None
        if tier is not None:
            item = "PUT/COPY/POST/LIST requests" if tier == 1 else "GET and other requests"
            lines[("S3", item)] += count * _price(prices, f"s3_tier{tier}_request")
    storage = (data.get("s3_storage") or {}).values()
    byte_days = sum(p["bytes"] * (p["days"] if p["days"] is not None else 30) for p in storage)
    if byte_days:
        lines[("S3", "storage until lifecycle expiry")] = _gb_months(byte_days) * _price(prices, "s3_storage_gb_month")
    for key, units in data["ddb_wru"].items():
        kind, name = key.split(" ", 1)
        item = "writes: table" if kind == "table" else f"writes: index {name}"
        lines[("DynamoDB", item)] += units * _price(prices, "dynamodb_ondemand_wru")
    rru = sum(data["ddb_rru_by_op"].values())
    if rru:
        lines[("DynamoDB", "reads")] = rru * _price(prices, "dynamodb_ondemand_rru")
    ddb_byte_days = (data.get("ddb_storage") or {}).get("byte_days")
    if ddb_byte_days:
        gb_months = _gb_months(ddb_byte_days)
        lines[("DynamoDB", "storage until TTL")] = gb_months * _price(prices, "dynamodb_storage_gb_month")
        lines[("DynamoDB", "point-in-time recovery")] = gb_months * _price(prices, "dynamodb_pitr_gb_month")
    # Texts the model computed (cache hits cost no GPU time), where the local endpoint reports them.
    computed = data.get("endpoint", {}).get("texts", data["texts"])
    if computed:
        gpu = prices["assumptions"]["gpu_items_per_second"]
        hours = computed / float(gpu["value"]) / 3600
        lines[("SageMaker", f"{gpu['instance']} instance time")] = hours * _price(prices, "sagemaker_instance_hour")
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
            by_method = data["api"]["by_kind"].items()
            ms = sum(n * math.ceil(alone.get(f"{function} {m}", f["mean_ms"])) for m, n in by_method)
        else:
            ms = f["invocations"] * math.ceil(alone.get(function, f["mean_ms"]))
        lines.update(_lambda_duration(function, ms, f["memory_mb"], prices))
    return lines


def fixed_costs(result: dict[str, Any], prices: dict[str, Any]) -> dict[str, float]:
    """Dollars per hour that do not depend on traffic."""
    polls = float(prices["assumptions"]["esm_idle_receives_per_queue_per_hour"]["value"])
    item = f"SQS: idle event source mapping polls ({result['esm_queues']} queues)"
    hourly = {item: result["esm_queues"] * polls * _price(prices, "sqs_standard_request")}
    sweep = result.get("idle_sweep")
    if sweep:
        runs = sum(f["runs_per_hour"] for f in result["functions"].values())
        hourly[f"scheduled functions ({runs:g} runs/hour, all services)"] = runs * sum(
            cost_lines(sweep, prices).values()
        )
    return hourly


# ---------------------------------------------------------------- the report


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
    return (SERVICE_ORDER.index(key[0]) if key[0] in SERVICE_ORDER else len(SERVICE_ORDER), key[1])


def _per_prediction(data: dict[str, Any]) -> dict[str, float]:
    n = data["predictions"]
    found = {}
    for key, count in data["requests"].items():
        source, rest = key.split(" ", 1)
        found[f"{rest} ({SOURCES.get(source, source)})"] = count / n
    found["API Gateway HTTP requests (client)"] = data["api"]["requests"] / n
    return found


def _joined(values: dict[str, float], fmt: str = ".0f", suffix: str = "") -> str:
    """`name value, ...` sorted by name, function names without `Function`."""
    return ", ".join(f"{k.replace('Function', '')} {v:{fmt}}{suffix}" for k, v in sorted(values.items()))


def _measured(d: dict[str, Any]) -> dict[str, str]:
    """One run's column of the measurements table (per prediction unless the label says otherwise)."""
    n = d["predictions"]
    prefixes = (f"{p} {v['bytes'] / n:,.0f} B ({v['days']} d)" for p, v in sorted(d["s3_storage"].items()))
    return {
        "succeeded": f"{d['outcomes'].get('succeeded', 0)}/{n}",
        "endpoint invocations per 1,000 predictions": f"{1000 * d['endpoint']['invocations'] / n:.1f}",
        "Lambda invocations": f"{sum(f['invocations'] for f in d['lambda'].values()) / n:.3f}",
        "Lambda mean duration, ms": _joined({k: v["mean_ms"] for k, v in d["lambda"].items()}),
        "API mean duration by method, ms": _joined(d["api"]["server_mean_ms"]),
        "one request at a time: median duration, ms": _joined(d.get("one_at_a_time_ms", {})),
        "DynamoDB write units": f"{sum(d['ddb_wru'].values()) / n:.2f}",
        "DynamoDB read units": f"{sum(d['ddb_rru_by_op'].values()) / n:.2f}",
        "DynamoDB mean item size by kind": _joined(d["ddb_storage"]["mean_item_bytes"], ",.0f", " B"),
        "S3 bytes kept, by prefix (lifecycle days)": ", ".join(prefixes),
        "API response bytes (as sent)": f"{d['api']['response_bytes'] / n:.0f}",
        "presigned result downloads": f"{d['downloads']['requests'] / n:.2f}",
        "AWS request retries (billed, counted above)": str(d["retries"]),
        "seconds until all finished / whole run with reads": f"{d['seconds_to_finish'] or 0:.0f} / "
        f"{d['wall_seconds']:.0f}",
    }


def _render_workload(
    workload: str, shape: Workload, results: dict[str, dict[str, Any]], names: dict[str, str], prices: dict[str, Any]
) -> list[str]:
    """One workload's section: cost by line item for each configuration that ran it, drivers, measurements."""
    configs = [c for c in ("baseline", "new") if workload in results.get(c, {}).get("workloads", {})]
    if not configs:
        return []
    per, unit, last, both = shape.per, shape.unit, configs[-1], len(configs) == 2
    tables = {c: results[c]["workloads"][workload] for c in configs}

    def per_million(lines: dict[tuple[str, str], float], c: str) -> dict[tuple[str, str], float]:
        return {k: v * 1e6 / tables[c]["predictions"] for k, v in lines.items()}

    scaled = {c: per_million(cost_lines(tables[c], prices), c) for c in configs}
    alone = {c: {**scaled[c], **per_million(alone_lambda(tables[c], prices), c)} for c in configs}
    totals = [sum(scaled[c].values()) for c in configs]
    alone_totals = [sum(alone[c].values()) for c in configs]

    def cells(values: Sequence[float | None]) -> list[str]:
        return [_money(v) for v in values] + ([_ratio(values[-1], values[0])] if both else [])

    keys = sorted({k for c in configs for k in scaled[c]}, key=_order)
    rows = [[*key, *cells([scaled[c].get(key) for c in configs])] for key in keys]
    rows += [
        ["**total**", "", *(f"**{cell}**" for cell in cells(totals))],
        ["**per 1M input texts**", "", *cells([t / per for t in totals])],
        ["total with every Lambda duration timed one request at a time (see below)", "", *cells(alone_totals)],
    ]
    counted = tables[last]["predictions"]
    what = (
        f"{counted} lines of 1 text" if shape.bulk else f"{counted} predictions of {per} text{'s' if per > 1 else ''}"
    )
    header = [
        "service",
        "line item",
        *(f"{names[c]} $/1M {unit}" for c in configs),
        *(["new / baseline"] if both else []),
    ]
    lines = [f"## {workload}: {shape.description} ({what})", "", table(header, rows, "ll" + "r" * (len(header) - 2))]
    if shape.bulk:  # the target: everything a job costs within 2x of what it cannot avoid (GPU time and S3)
        gpu = sum(v for (service, item), v in alone[last].items() if service == "SageMaker" and "instance time" in item)
        s3 = sum(v for (service, _), v in alone[last].items() if service == "S3")
        ratio = alone_totals[-1] / (gpu + s3) if gpu + s3 else float("inf")
        verdict = ("met" if ratio <= 2 else "not met") if shape.bulk == "off" else "for reference (target is on B1)"
        lines += [
            "",
            f"Against the floor (one request at a time): GPU time ${_money(gpu)} + S3 ${_money(s3)} = "
            f"${_money(gpu + s3)} per 1M lines; the whole job costs ${_money(alone_totals[-1])}, **{ratio:.2f}x** "
            f"(target <= 2x with the cache off: {verdict}).",
        ]
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
    columns = {c: _measured(tables[c]) for c in configs}
    measured = [
        [label.replace("prediction", unit[:-1]) if shape.bulk else label, *(columns[c][label] for c in configs)]
        for label in columns[last]
    ]
    counts = {c: _per_prediction(tables[c]) for c in configs}
    operations = sorted({o for c in configs for o in counts[c]})
    lines += [
        "",
        f"Measured (per {unit[:-1]} unless stated):",
        "",
        table(["", *(names[c] for c in configs)], measured, "l" + "r" * len(configs)),
    ]
    lines += ["", f"AWS requests per {unit[:-1]} by operation ({workload}):", ""]
    requests = [[o, *(f"{counts[c].get(o, 0):.3f}" for c in configs)] for o in operations]
    lines += [table(["operation (source)", *(names[c] for c in configs)], requests, "l" + "r" * len(configs)), ""]
    units = {c: tables[c].get("ddb_wru_by_kind", {}) for c in configs}  # a run from before it was counted lacks it
    kinds = sorted({k for c in configs for k in units[c]})
    rows = [[k, *(f"{units[c].get(k, 0) / tables[c]['predictions']:.3f}" for c in configs)] for k in kinds]
    lines += [f"DynamoDB write units per {unit[:-1]} by item kind and operation, table and indexes ({workload}):", ""]
    lines += [table(["item kind, operation", *(names[c] for c in configs)], rows, "l" + "r" * len(configs)), ""]
    return lines


def render(results: dict[str, dict[str, Any]], prices: dict[str, Any], args: argparse.Namespace, seconds: float) -> str:
    configs = [c for c in ("baseline", "new") if c in results]
    names = {"baseline": f"baseline {args.baseline}", "new": "new"}
    gpu, idle = (prices["assumptions"][k] for k in ("gpu_items_per_second", "esm_idle_receives_per_queue_per_hour"))
    command = f"--n1 {args.n1} --n2 {args.n2} --n3 {args.n3} --lines {args.lines} --baseline {args.baseline}"
    fixed = {c: fixed_costs(results[c], prices) for c in configs}
    rows = [
        [item, *("—" if v is None else f"${v:.5f}/h = ${v * HOURS_PER_MONTH:.2f}/month" for v in values)]
        for item in sorted({i for c in configs for i in fixed[c]})
        for values in [[fixed[c].get(item) for c in configs]]
    ]
    lines = [
        "# Cost per 1 million predictions (local stack, counted; priced with bench/prices.json)",
        "",
        f"Generated by `make bench-cost` (`python -m bench.cost {command}`) in {seconds / 60:.1f} min. Prices: "
        f"{prices['region']}, public on-demand list prices (first tier, no free tier); each price's source and date "
        "are in bench/prices.json.",
        "",
        *[f"- **{c}**: {results[c]['revision']}" for c in configs],
        "",
        f"Workloads, each on both configurations' own local stacks: **W1** = {args.n1} single-text predictions, "
        f"**W2** = {args.n2} predictions of 32 texts, submitted by {SUBMIT_THREADS} threads without `Prefer: wait`, "
        "then each read once with `GET /v1/predictions/{id}` (counted; waiting used an uncounted DynamoDB client). "
        f"**W3** = {args.n3} single-text predictions with `Prefer: wait=20`: the reply holds the result (no GET) and "
        "the API function's duration includes the wait. Texts: the seeded mixed corpus of bench/corpus.py. "
        f"**B1-B3** = one bulk job of {args.lines:,} lines of one short text (at most 12 words): `POST /v1/jobs`, the "
        "file PUT to its upload link (counted as an S3 PUT), waited for (uncounted), `GET /v1/jobs/{id}` and its "
        "result file downloaded; B1 with `parameters.cache: false` on every line, B2 with the cache on (nothing "
        "cached yet), B3 the same file again. Everything is scaled linearly to 1,000,000 predictions (bulk: lines).",
        "",
        *(
            line
            for workload, shape in WORKLOADS.items()
            for line in _render_workload(workload, shape, results, names, prices)
        ),
        "## Fixed costs (no traffic), $ per hour and per month",
        "",
        table(["item", *(names[c] for c in configs)], rows, "l" + "r" * len(configs)),
        "",
        "The SageMaker endpoint scales to zero, so it has no fixed cost here; but each scale-out from zero bills at "
        "least the instance's start-up plus the template's 600 s scale-in cooldown "
        f"(about ${_price(prices, 'sagemaker_instance_hour') / 6:.2f} per burst after an idle period), not in the "
        "per-1M figures.",
        "",
        "## Assumptions and how each number is made",
        "",
        f"- **SageMaker instance time** = input texts / {gpu['value']:,} items/s on one {gpu['instance']} "
        f"(assumed, not measured: no GPU here). {gpu['derivation']} Source: {gpu['source']}. A busy instance "
        "(merged batches); idle time, start-up and cooldown are not in the per-1M figures.",
        "- **Lambda duration** = each handler call timed in the local process (the real handlers; the API's time is "
        "the FastAPI app's per HTTP request, server side, without Mangum), rounded up to 1 ms, times the template's "
        "MemorySize: an upper bound, as 2 cores shared by moto, the model server and every function's threads are "
        "slower than Lambda. No cold starts (see bench/results/coldstart.md). **total with every Lambda duration "
        "timed one request at a time** re-prices them with each function's median from a calibration after the "
        "workloads (a few predictions of each shape, each submitted alone and waited for, so the dispatcher's batches "
        "hold one): closer to what separate Lambda environments bill, and a lower estimate.",
        "- **API Gateway**: one request per HTTP call, metered in 512 KB increments of the larger of request and "
        "response body; one Lambda invocation each.",
        "- **SQS**: every request of the API, handlers and event source mappings (the local pumps), in 64 KB units "
        "of payload (a batch of up to 10 is one request). Per-prediction figures count receives that returned "
        f"messages, and deletes; empty receives are a fixed cost: {idle['derivation']} ({idle['source']}). The local "
        "pumps' 1 s polls are shown as `ReceiveMessage (empty)` but not priced.",
        "- **SNS**: the endpoint's success/error publishes in 64 KB units; deliveries to SQS are free.",
        "- **S3**: requests by operation (PUT/COPY/POST/LIST tier 1, GET and others tier 2, DELETE free), the "
        "endpoint's and presigned links' included. Storage: bytes written per prefix x the bucket's lifecycle "
        f"expiration days, GB = 2^30 bytes, {HOURS_PER_MONTH} hours a month.",
        "- **DynamoDB writes**: each written item read back from the in-process moto backend (uncounted), billed at "
        "max(old, new) size per 1 KB rounded up (transactions 2x; failed conditions the existing item's size); each "
        "GSI (from DescribeTable) charges a put when the item enters it, a delete when it leaves, delete + put when "
        "its key changes, a put when only projected attributes change. **Reads**: GetItem/BatchGetItem per item per "
        "4 KB, Query per 4 KB of the summed returned sizes (index entries for index queries), 0.5 eventually "
        "consistent. Storage: each item and index entry (+100 bytes each) until its TTL (else RecordRetentionDays); "
        "TTL deletes are free; point-in-time recovery on the same size.",
        "- **SageMaker data processed**: bytes the endpoint read (batch inputs) and wrote (batch outputs).",
        "- **Data transfer out**: API response bodies and presigned downloads as sent (gzipped where the API "
        "compressed them); headers and the first 100 GB a month free are ignored.",
        "- Not included: CloudWatch Logs and metrics, X-Ray traces, KMS (SSE-S3 and SQS-managed SSE are free), the "
        "DLQs (empty here), free tiers.",
        "",
    ]
    return "\n".join(lines)


# ---------------------------------------------------------------- orchestration


def _remove_worktree() -> None:
    if WORKTREE.exists():
        subprocess.run(["git", "worktree", "remove", "--force", str(WORKTREE)], cwd=REPO, check=False)


def _tree(config: str) -> Path:
    return WORKTREE if config == "baseline" else REPO


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=(__doc__ or "").splitlines()[0])
    parser.add_argument("--n1", type=int, default=300, help="W1: single-text predictions")
    parser.add_argument("--n2", type=int, default=60, help="W2: predictions of 32 texts")
    parser.add_argument("--n3", type=int, default=100, help="W3: single-text predictions with Prefer: wait (0: skip)")
    parser.add_argument("--lines", type=int, default=20000, help="B1-B3: lines of the bulk job (0: skip)")
    parser.add_argument("--baseline", default="3be0838", help="git revision of the baseline design")
    parser.add_argument("--only", choices=["new", "baseline"], help="run one configuration")
    parser.add_argument("--output", type=Path, default=REPO / "bench/results/cost.md")
    parser.add_argument("--prices", type=Path, default=PRICES)
    parser.add_argument("--child", choices=["new", "baseline"], help=argparse.SUPPRESS)
    parser.add_argument("--result-file", type=Path, help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.child:
        counts = {"W1": args.n1, "W2": args.n2, "W3": args.n3, **dict.fromkeys(("B1", "B2", "B3"), args.lines)}
        run_one(args.child, _tree(args.child), counts, args.result_file)
        return 0
    prices = json.loads(args.prices.read_text())
    configs = [args.only] if args.only else ["baseline", "new"]
    sizes = ["--n1", str(args.n1), "--n2", str(args.n2), "--n3", str(args.n3), "--lines", str(args.lines)]
    started = time.monotonic()
    try:
        if "baseline" in configs:
            _remove_worktree()
            git("worktree", "add", "--detach", str(WORKTREE), args.baseline)
        results = children("bench.cost", configs, sizes, quiet=True)
    finally:
        _remove_worktree()
    for config, result in results.items():
        result["revision"] = describe(config, _tree(config), args.baseline)
        for workload, data in result["workloads"].items():
            if data["meter_errors"]:
                log(f"{config} {workload} meter errors: {data['meter_errors'][:3]}")
    if os.environ.get("BENCH_COST_RAW"):
        Path(os.environ["BENCH_COST_RAW"]).write_text(json.dumps(results, indent=1))
    publish(render(results, prices, args, time.monotonic() - started), args.output)
    return 0


if __name__ == "__main__":
    sys.exit(main())
