"""`inference predictions get | list | cancel`."""

from __future__ import annotations

import argparse
from collections.abc import Awaitable
from typing import Any

from inference_client.async_client import AsyncClient
from inference_client.cli.common import EXIT_OK, Context, list_command, list_options, rows
from inference_client.models import Prediction, PredictionPage, PredictionStatus


def add_commands(commands: Any, common: argparse.ArgumentParser) -> None:
    predictions = commands.add_parser("predictions", help="get, list or cancel predictions")
    actions = predictions.add_subparsers(dest="action", required=True, metavar="ACTION")
    get = actions.add_parser("get", parents=[common], help="show one prediction")
    get.add_argument("id")
    get.add_argument("--wait", action="store_true", help="wait until it has finished")
    get.set_defaults(run=_get)
    listing = actions.add_parser("list", parents=[common], help="list predictions, newest first")
    listing.add_argument("--status", choices=[s.value for s in PredictionStatus])
    list_options(listing)
    listing.set_defaults(run=_list)
    cancel = actions.add_parser("cancel", parents=[common], help="cancel a queued or running prediction")
    cancel.add_argument("id")
    cancel.set_defaults(run=_cancel)


def _describe(prediction: Prediction) -> str:
    fields = [
        ("id", prediction.id),
        ("status", prediction.status.value),
        ("created_at", prediction.raw.get("created_at") or ""),
        ("started_at", prediction.raw.get("started_at") or "-"),
        ("completed_at", prediction.raw.get("completed_at") or "-"),
        ("inputs", str(prediction.input_count)),
    ]
    if prediction.metadata:
        fields.append(("metadata", ", ".join(f"{k}={v}" for k, v in prediction.metadata.items())))
    metrics = prediction.metrics
    if metrics.queue_ms is not None or metrics.inference_ms is not None:
        fields.append(("metrics", f"queue {metrics.queue_ms} ms, inference {metrics.inference_ms} ms"))
    if prediction.output is not None:
        output = prediction.output
        fields.append(("output", f"{output.model}: {len(output.embeddings)} x {output.dimensions} dims"))
    elif prediction.output_url:
        fields.append(("output", "too large to inline: behind output_url (use --json for the link)"))
    if prediction.error is not None:
        fields.append(("error", f"{prediction.error.code}: {prediction.error.message}"))
    return rows(fields)


async def _get(ctx: Context) -> int:
    async with ctx.client() as client:
        if ctx.args.wait:
            prediction = await client.predictions.wait(ctx.args.id, fetch_output=False)
        else:
            prediction = await client.predictions.get(ctx.args.id)
    ctx.show(prediction, _describe(prediction))
    return EXIT_OK


async def _list(ctx: Context) -> int:
    def read_page(client: AsyncClient, cursor: str | None) -> Awaitable[PredictionPage]:
        return client.predictions.list(status=ctx.args.status, limit=ctx.args.limit, cursor=cursor)

    def line(p: Prediction) -> str:
        return f"{p.id}  {p.status.value:<9}  {p.raw.get('created_at', '')}  {p.input_count:>3} inputs\n"

    return await list_command(ctx, "predictions", read_page, line)


async def _cancel(ctx: Context) -> int:
    prediction = await ctx.call(lambda client: client.predictions.cancel(ctx.args.id))
    ctx.show(prediction, f"{prediction.id} {prediction.status.value}\n")
    return EXIT_OK
