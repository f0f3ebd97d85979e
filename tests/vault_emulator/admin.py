"""Admin endpoints under /_emulator/, for tests whose client runs in another process.

- ``GET /_emulator/counters``: counters (see ``CounterSnapshot.to_json``);
- ``POST /_emulator/faults``: a JSON object of fault settings, every key optional;
- ``POST /_emulator/release``: let parked part uploads proceed and stop holding;
- ``POST /_emulator/reset``: clear faults and counters (stored data stays).
"""

from __future__ import annotations

import json
import time
from typing import Any

from aiohttp import web

from .common import Context, context

FAULT_KEYS = frozenset(
    {
        "errors",
        "drops",
        "latency",
        "hold_parts_after",
        "forget_uploads",
        "job_delay",
        "complete_jobs",
    }
)


def forget_upload(ctx: Context, upload_id: str) -> bool:
    """Forget an upload id as if it expired; True if it was known. Event-loop thread only."""
    ctx.aborted_uploads.discard(upload_id)
    return ctx.store.forget_upload(upload_id)


def complete_jobs(ctx: Context) -> int:
    """Finish every job still in progress now; return how many. Event-loop thread only."""
    now = time.time()
    finished = 0
    for vault, job in ctx.store.all_jobs():
        if not job.done(now):
            job.ready_at = now
            ctx.store.save_job(vault, job)
            finished += 1
    return finished


def set_job_delay(ctx: Context, seconds: float) -> None:
    """Delay of jobs initiated from now on. Event-loop thread only."""
    if seconds < 0:
        raise ValueError("job_delay must be >= 0")
    ctx.job_delay = seconds


async def counters(request: web.Request) -> web.Response:
    """GET /_emulator/counters."""
    return web.json_response(context(request).faults.counters().to_json())


async def _settings(request: web.Request) -> dict[str, Any]:
    settings = json.loads(await request.read() or b"{}")
    if not isinstance(settings, dict):
        raise ValueError("the body must be a JSON object")
    return settings


async def faults(request: web.Request) -> web.Response:
    """POST /_emulator/faults: apply the settings given, in a fixed order."""
    try:
        settings = await _settings(request)
        unknown = set(settings) - FAULT_KEYS
        if unknown:
            raise ValueError(f"unknown keys {sorted(unknown)}; known: {sorted(FAULT_KEYS)}")
        result = _apply(context(request), settings)
    except (ValueError, TypeError, KeyError) as exc:
        return web.json_response({"error": str(exc)}, status=400)
    return web.json_response(result)


def _apply(ctx: Context, settings: dict[str, Any]) -> dict[str, Any]:
    for item in settings.get("errors", []):
        ctx.faults.inject_error(
            item["operation"], item.get("code", "ServiceUnavailableException"), item.get("count", 1)
        )
    for item in settings.get("drops", []):
        ctx.faults.drop_connection(
            item.get("operation", "UploadMultipartPart"),
            item.get("count", 1),
            item.get("stage", "request"),
        )
    if "latency" in settings:
        ctx.faults.set_latency(float(settings["latency"]))
    if "hold_parts_after" in settings:
        ctx.faults.hold_parts_after(settings["hold_parts_after"])
    if "job_delay" in settings:
        set_job_delay(ctx, float(settings["job_delay"]))
    forgotten = [u for u in settings.get("forget_uploads", []) if forget_upload(ctx, u)]
    finished = complete_jobs(ctx) if settings.get("complete_jobs") else 0
    return {"forgotten": forgotten, "completed_jobs": finished}


async def release(request: web.Request) -> web.Response:
    """POST /_emulator/release, optionally with ``{"drop": true}`` (see ``Faults.release``)."""
    try:
        drop = (await _settings(request)).get("drop") is True
    except ValueError as exc:
        return web.json_response({"error": str(exc)}, status=400)
    context(request).faults.release(drop=drop)
    return web.json_response({})


async def reset(request: web.Request) -> web.Response:
    """POST /_emulator/reset."""
    context(request).faults.reset()
    return web.json_response({})
