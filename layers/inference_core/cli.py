"""Operator commands: create and revoke API keys.

    python -m inference_core.cli create-key --tenant acme [--name ci]
    python -m inference_core.cli revoke-key KEY_ID

Uses TABLE_NAME, AWS_REGION and (for the local stack) AWS_ENDPOINT_URL from the environment.
"""

from __future__ import annotations

import argparse
import json
import sys

from inference_core.errors import NotFoundError
from inference_core.logic.auth import create_api_key, revoke_api_key


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="inference_core.cli", description=__doc__.splitlines()[0])
    commands = parser.add_subparsers(dest="command", required=True)
    create = commands.add_parser("create-key", help="issue a new API key for a tenant (printed once)")
    create.add_argument("--tenant", required=True)
    create.add_argument("--name", help="a label to recognise the key by")
    revoke = commands.add_parser("revoke-key", help="revoke a key by its id")
    revoke.add_argument("key_id")
    args = parser.parse_args(argv)

    if args.command == "create-key":
        try:
            token, record = create_api_key(args.tenant, args.name)
        except ValueError as exc:
            parser.error(str(exc))
        print(json.dumps({"api_key": token, "key_id": record.key_id, "tenant": record.tenant_id}))
        return 0
    try:
        revoke_api_key(args.key_id)
    except NotFoundError:
        print(f"no API key with id {args.key_id}", file=sys.stderr)
        return 1
    print(json.dumps({"revoked": args.key_id}))
    return 0


if __name__ == "__main__":
    sys.exit(main())
