"""Operator commands: create, list and revoke API keys; read and set a tenant's limits.

    python -m inference_core.cli create-key --tenant acme [--name ci]
    python -m inference_core.cli list-keys [--tenant acme] [--json]
    python -m inference_core.cli revoke-key KEY_ID
    python -m inference_core.cli set-limits --tenant acme [--requests-per-minute N] [--inputs-per-minute N]
                                            [--open-jobs N] [--interactive-inputs-per-minute N]
                                            [--queued-inputs N] [--reset NAME ...]
    python -m inference_core.cli usage --tenant acme [--start 2026-12-01] [--end 2026-12-06]

Uses TABLE_NAME, AWS_REGION and (for the local stack) AWS_ENDPOINT_URL from the environment: `source .local/env`
first. A failure prints one line to stderr and exits 1 (2 for a bad command line).
"""

from __future__ import annotations

import argparse
import json
import os
import sys
from dataclasses import asdict
from datetime import date
from typing import Any

from botocore.exceptions import BotoCoreError, ClientError

from inference_core.domain.api_keys import ApiKey
from inference_core.domain.clock import utc_now
from inference_core.domain.limits import LIMIT_NAMES
from inference_core.errors import ConfigurationError, DependencyError, NotFoundError, ValidationFailedError
from inference_core.logic.auth import create_api_key, list_api_keys, revoke_api_key
from inference_core.logic.limits import set_limits
from inference_core.logic.usage import report as usage_report

_SOURCE_HINT = "did you `source .local/env`?"


def _key_summary(record: ApiKey) -> dict[str, Any]:
    """What an operator may see of a key: never its secret nor the secret's hash."""
    return {
        "key_id": record.key_id,
        "tenant": record.tenant_id,
        "name": record.name,
        "created_at": record.created_at.isoformat(),
        "revoked_at": record.revoked_at.isoformat() if record.revoked_at else None,
    }


def _print_table(rows: list[dict[str, Any]]) -> None:
    columns = ["key_id", "tenant", "name", "created_at", "revoked_at"]
    cells = [[str(row[c]) if row[c] is not None else "-" for c in columns] for row in rows]
    widths = [max([len(c)] + [len(line[i]) for line in cells]) for i, c in enumerate(columns)]
    for line in [[c.upper().replace("_", " ") for c in columns], *cells]:
        print("  ".join(cell.ljust(width) for cell, width in zip(line, widths, strict=True)).rstrip())


def _dependency_hint() -> str:
    endpoint = os.environ.get("AWS_ENDPOINT_URL")
    if endpoint:
        return (
            f"is the local stack at {endpoint} running? after `make run` restarts, `source .local/env` again "
            "(its ports change)"
        )
    return f"check AWS credentials and AWS_REGION; for the local stack, {_SOURCE_HINT}"


def _describe(exc: DependencyError) -> str:
    cause = exc.__cause__
    detail = f"{type(cause).__name__}: {cause}" if cause is not None else exc.reason
    return f"{exc.message} ({detail})"


def _set_limits(args: argparse.Namespace, parser: argparse.ArgumentParser) -> int:
    overrides: dict[str, int | None] = {name: getattr(args, name) for name in LIMIT_NAMES}
    overrides = {name: value for name, value in overrides.items() if value is not None}
    for name in args.reset or []:
        overrides[name.replace("-", "_")] = None
    try:
        now = set_limits(args.tenant, overrides)
    except ValueError as exc:
        parser.error(str(exc))
    print(json.dumps({"tenant": args.tenant, **asdict(now)}))
    return 0


def _usage(args: argparse.Namespace, parser: argparse.ArgumentParser) -> int:
    first = args.start or utc_now().date()
    try:
        days = usage_report(args.tenant, first, args.end or first)
    except ValidationFailedError as exc:
        parser.error(exc.message)
    rows = [
        {
            "date": d.day.isoformat(),
            **d.counts.as_dict(),
            "endpoint_seconds": d.endpoint_seconds,
            "cost_usd": d.cost_usd,
        }
        for d in days
    ]
    print(json.dumps({"tenant": args.tenant, "granularity": "day", "data": rows}))
    return 0


def _run(args: argparse.Namespace, parser: argparse.ArgumentParser) -> int:
    if args.command == "set-limits":
        return _set_limits(args, parser)
    if args.command == "usage":
        return _usage(args, parser)
    if args.command == "create-key":
        try:
            token, record = create_api_key(args.tenant, args.name)
        except ValueError as exc:
            parser.error(str(exc))
        print(json.dumps({"api_key": token, "key_id": record.key_id, "tenant": record.tenant_id}))
        return 0
    if args.command == "list-keys":
        rows = [_key_summary(k) for k in list_api_keys() if args.tenant is None or k.tenant_id == args.tenant]
        if args.json:
            print(json.dumps(rows))
        elif rows:
            _print_table(rows)
        else:
            print("no API keys" + (f" for tenant {args.tenant}" if args.tenant else ""), file=sys.stderr)
        return 0
    try:
        revoke_api_key(args.key_id)
    except NotFoundError:
        print(f"error: no API key with id {args.key_id}", file=sys.stderr)
        return 1
    print(json.dumps({"revoked": args.key_id}))
    return 0


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="inference_core.cli", description=__doc__.splitlines()[0])
    commands = parser.add_subparsers(dest="command", required=True)
    create = commands.add_parser("create-key", help="issue a new API key for a tenant (printed once)")
    create.add_argument("--tenant", required=True)
    create.add_argument("--name", help="a label to recognise the key by")
    listing = commands.add_parser("list-keys", help="list keys (id, tenant, name, created, revoked; no secrets)")
    listing.add_argument("--tenant", help="only this tenant's keys")
    listing.add_argument("--json", action="store_true", help="a JSON array instead of a table")
    revoke = commands.add_parser("revoke-key", help="revoke a key by its id")
    revoke.add_argument("key_id")
    limits = commands.add_parser(
        "set-limits", help="set a tenant's limits (the others keep theirs); prints them all (within 30 s in force)"
    )
    limits.add_argument("--tenant", required=True)
    for name in LIMIT_NAMES:
        limits.add_argument(f"--{name.replace('_', '-')}", dest=name, type=int, metavar="N")
    limits.add_argument(
        "--reset",
        action="append",
        choices=[name.replace("_", "-") for name in LIMIT_NAMES],
        help="back to the template's default (repeatable)",
    )
    report = commands.add_parser("usage", help="a tenant's usage per UTC day (JSON), as GET /v1/usage shows it")
    report.add_argument("--tenant", required=True)
    report.add_argument("--start", type=date.fromisoformat, help="first day, YYYY-MM-DD (default: today)")
    report.add_argument("--end", type=date.fromisoformat, help="last day, inclusive (default: --start)")
    args = parser.parse_args(argv)

    try:
        return _run(args, parser)
    except ConfigurationError as exc:
        print(f"error: {exc} ({_SOURCE_HINT})", file=sys.stderr)
    except DependencyError as exc:
        print(f"error: {_describe(exc)}: {_dependency_hint()}", file=sys.stderr)
    except (BotoCoreError, ClientError) as exc:  # raised outside the data access layer, e.g. building a client
        print(f"error: {type(exc).__name__}: {exc}: {_dependency_hint()}", file=sys.stderr)
    return 1


if __name__ == "__main__":
    sys.exit(main())
