"""Shared request plumbing: the server context, header parsing, validation, pagination."""

from __future__ import annotations

import base64
import binascii
import json
import re
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any, TypeVar

from aiohttp import web

from .errors import invalid, missing, request_id
from .faults import Faults
from .store import Store

T = TypeVar("T")

MAX_DESCRIPTION = 1024
_VAULT_NAME = re.compile(r"[A-Za-z0-9_.\-]{1,255}")
_HEX_SHA256 = re.compile(r"[0-9a-fA-F]{64}")


@dataclass
class Context:
    """Everything a handler needs; lives in the aiohttp app under ``CTX``."""

    store: Store
    faults: Faults
    job_delay: float
    busy_uploads: set[str] = field(default_factory=set)
    aborted_uploads: set[str] = field(default_factory=set)


CTX = web.AppKey("vault_emulator_context", Context)


def context(request: web.Request) -> Context:
    """The server context of a request."""
    return request.app[CTX]


def vault_name(request: web.Request) -> str:
    """The vault name from the path, validated like CreateVault's naming rules."""
    name = request.match_info["vault"]
    # "." and ".." are legal on AWS but would escape the data folder here.
    if not _VAULT_NAME.fullmatch(name) or name in (".", ".."):
        raise invalid(f"Invalid vault name: {name!r}")
    return name


def account_prefix(request: web.Request) -> str:
    """The path prefix AWS puts in Location headers: the real account id, never "-"."""
    return f"/{context(request).store.account_id}/vaults/{vault_name(request)}"


def required_header(request: web.Request, name: str) -> str:
    """A header that must be present (MissingParameterValueException otherwise)."""
    value = request.headers.get(name)
    if value is None:
        raise missing(f"Required parameter missing: {name}")
    return value


def hash_header(request: web.Request, name: str) -> str:
    """A required SHA256 header (64 hex digits), lowercased."""
    value = required_header(request, name)
    if not _HEX_SHA256.fullmatch(value):
        raise invalid(f"Invalid {name}: {value!r} is not a hex SHA256")
    return value.lower()


def description(value: str | None) -> str:
    """An archive or job description: at most 1,024 printable ASCII characters."""
    if value is None:
        return ""
    if len(value) > MAX_DESCRIPTION:
        raise invalid(f"Invalid description: longer than {MAX_DESCRIPTION} characters")
    if any(not " " <= c <= "~" for c in value):
        raise invalid("Invalid description: only printable ASCII (0x20-0x7E) is allowed")
    return value


def content_length(request: web.Request) -> int:
    """The declared body length; Glacier needs it on uploads (no chunked bodies)."""
    if request.content_length is None:
        raise missing("Required parameter missing: Content-Length")
    return request.content_length


def parse_int(value: str, what: str) -> int:
    """A non-negative decimal integer parameter."""
    if not value.isdigit():
        raise invalid(f"Invalid {what}: {value!r}")
    return int(value)


def json_response(data: dict[str, Any], status: int = 200) -> web.Response:
    """A JSON body like Glacier's (nulls kept: botocore skips them)."""
    return web.Response(
        status=status,
        body=json.dumps(data).encode(),
        content_type="application/json",
        headers={"x-amzn-RequestId": request_id()},
    )


def empty_response(status: int, headers: dict[str, str] | None = None) -> web.Response:
    """A bodiless response with the given headers."""
    all_headers = {"x-amzn-RequestId": request_id(), **(headers or {})}
    return web.Response(status=status, headers=all_headers)


def paginate(
    request: web.Request,
    items: Sequence[T],
    key: Callable[[T], str],
    page_size: int,
    *,
    opaque: bool = True,
) -> tuple[list[T], str | None]:
    """One page of ``items`` (sorted by ``key``) and the marker of the next page, if any.

    A marker names the first item of the next page, so items vanishing between calls do not
    break the listing. ``limit`` may ask for fewer items than ``page_size`` but never more:
    AWS may return fewer than asked, so clients must follow markers anyway.
    """
    limit = min(_limit(request.query.get("limit"), page_size), page_size)
    marker = request.query.get("marker")
    rest = list(items)
    if marker is not None:
        start = _decode_marker(marker) if opaque else marker
        rest = [item for item in rest if key(item) >= start]
    if len(rest) <= limit:
        return rest, None
    next_key = key(rest[limit])
    return rest[:limit], (_encode_marker(next_key) if opaque else next_key)


def _limit(value: str | None, default: int) -> int:
    if value is None:
        return default
    if not value.isdigit() or int(value) < 1:
        raise invalid(f"Invalid limit: {value!r}")
    return int(value)


def _encode_marker(key: str) -> str:
    return base64.urlsafe_b64encode(f"m1:{key}".encode()).decode()


def _decode_marker(marker: str) -> str:
    try:
        text = base64.urlsafe_b64decode(marker.encode()).decode()
    except (binascii.Error, UnicodeDecodeError, ValueError):
        text = ""
    if not text.startswith("m1:"):
        raise invalid(f"Invalid marker: {marker!r}")
    return text[3:]
