"""/v1/usage: what the caller's tenant used per UTC day, counted once however often work was delivered."""

from __future__ import annotations

from datetime import date
from typing import Annotated, Literal

from fastapi import APIRouter, Query
from pydantic import BaseModel

from inference_api.auth import Tenant
from inference_api.openapi import replies
from inference_api.schemas import ErrorResponse
from inference_core.domain.clock import utc_now
from inference_core.logic import usage

router = APIRouter(
    prefix="/v1/usage",
    tags=["usage"],
    responses=replies(ErrorResponse, 400, 401, 422, 429),
)


class UsageFigures(BaseModel):
    predictions: int
    inputs: int
    tokens: int
    cache_hits: int
    bulk_lines: int
    endpoint_seconds: float
    cost_usd: float


class UsageDay(UsageFigures):
    date: date


class UsageReport(BaseModel):
    granularity: Literal["day"] = "day"
    start: date
    end: date
    data: list[UsageDay]
    total: UsageFigures


def _figures(counts: dict[str, int], seconds: float, cost: float) -> dict[str, float | int]:
    return {
        "predictions": counts["predictions"],
        "inputs": counts["inputs"],
        "tokens": counts["tokens"],
        "cache_hits": counts["cache_hits"],
        "bulk_lines": counts["bulk_lines"],
        "endpoint_seconds": seconds,
        "cost_usd": cost,
    }


@router.get("", response_model=UsageReport)
def get_usage(
    tenant: Tenant,
    start: Annotated[date | None, Query(description="First UTC day (YYYY-MM-DD); default: today.")] = None,
    end: Annotated[date | None, Query(description="Last UTC day, inclusive; default: `start`.")] = None,
    granularity: Annotated[Literal["day"], Query()] = "day",
) -> UsageReport:
    """Succeeded predictions, their inputs and estimated tokens, texts answered by the result cache, completed bulk
    lines, and the endpoint time they took at its configured throughput, priced at `InstancePricePerHour`."""
    first = start or utc_now().date()
    last = end or first
    days = usage.report(tenant, first, last)
    data = [UsageDay(date=d.day, **_figures(d.counts.as_dict(), d.endpoint_seconds, d.cost_usd)) for d in days]
    totals = {name: sum(int(getattr(d.counts, name)) for d in days) for name in days[0].counts.as_dict()}
    total = UsageFigures(
        **_figures(
            totals,
            round(sum(d.endpoint_seconds for d in days), 6),
            round(sum(d.cost_usd for d in days), 9),
        )
    )
    return UsageReport(start=first, end=last, data=data, total=total)
