"""The aiohttp application: routes, the fault/counter middleware, start and stop."""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from pathlib import Path

from aiohttp import web

from . import admin, jobs, uploads, vault_ops
from .body import skip_body
from .common import CTX, Context, context
from .errors import DropConnection, GlacierError, invalid, missing
from .faults import Faults
from .store import Store

Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]

DEFAULT_ACCOUNT_ID = "123456789012"
DEFAULT_REGION = "us-east-1"
API_VERSION = "2012-06-01"
_VAULT = "/{account}/vaults/{vault}"
_UPLOAD = _VAULT + "/multipart-uploads/{upload}"

# (method, path, operation name, handler); the name keys counters and faults.
ROUTES: list[tuple[str, str, str, Handler]] = [
    ("GET", "/{account}/vaults", "ListVaults", vault_ops.list_vaults),
    ("PUT", _VAULT, "CreateVault", vault_ops.create_vault),
    ("GET", _VAULT, "DescribeVault", vault_ops.describe_vault),
    ("DELETE", _VAULT, "DeleteVault", vault_ops.delete_vault),
    ("POST", _VAULT + "/archives", "UploadArchive", vault_ops.upload_archive),
    ("DELETE", _VAULT + "/archives/{archive}", "DeleteArchive", vault_ops.delete_archive),
    ("POST", _VAULT + "/multipart-uploads", "InitiateMultipartUpload", uploads.initiate),
    ("GET", _VAULT + "/multipart-uploads", "ListMultipartUploads", uploads.list_uploads),
    ("PUT", _UPLOAD, "UploadMultipartPart", uploads.upload_part),
    ("GET", _UPLOAD, "ListParts", uploads.list_parts),
    ("POST", _UPLOAD, "CompleteMultipartUpload", uploads.complete),
    ("DELETE", _UPLOAD, "AbortMultipartUpload", uploads.abort),
    ("POST", _VAULT + "/jobs", "InitiateJob", jobs.initiate_job),
    ("GET", _VAULT + "/jobs", "ListJobs", jobs.list_jobs),
    ("GET", _VAULT + "/jobs/{job}", "DescribeJob", jobs.describe_job),
    ("GET", _VAULT + "/jobs/{job}/output", "GetJobOutput", jobs.get_job_output),
]

ADMIN_ROUTES: list[tuple[str, str, Handler]] = [
    ("GET", "/_emulator/counters", admin.counters),
    ("POST", "/_emulator/faults", admin.faults),
    ("POST", "/_emulator/release", admin.release),
    ("POST", "/_emulator/reset", admin.reset),
]


@web.middleware
async def _glacier_middleware(request: web.Request, handler: Handler) -> web.StreamResponse:
    operation = request.match_info.route.name
    try:
        if operation is None or operation.startswith("admin-"):
            return await _plain(request, handler)
        return await _operation(request, handler, operation)
    except GlacierError as error:
        return error.to_response()
    except DropConnection:
        if request.transport is not None:
            request.transport.abort()
        return web.Response()
    except ConnectionError:
        # The client went away (e.g. killed while its upload was held): nobody to answer.
        return web.Response()


async def _plain(request: web.Request, handler: Handler) -> web.StreamResponse:
    try:
        return await handler(request)
    except web.HTTPNotFound:
        raise GlacierError(
            "UnknownOperationException", f"No such resource: {request.path}"
        ) from None
    except web.HTTPMethodNotAllowed:
        raise GlacierError(
            "UnknownOperationException", f"No {request.method} operation on {request.path}"
        ) from None


async def _operation(request: web.Request, handler: Handler, operation: str) -> web.StreamResponse:
    faults = context(request).faults
    faults.count_request(operation)
    if faults.latency:
        await asyncio.sleep(faults.latency)
    _check_version(request)
    code = faults.take_error(operation)
    if code is not None:
        raise GlacierError(code, f"Injected fault: {code} for {operation}")
    if faults.take_drop(operation, "request"):
        await skip_body(request, (request.content_length or 0) // 2)
        raise DropConnection
    response = await handler(request)
    if not response.prepared and await faults.gate_response(operation):
        raise DropConnection
    if not response.prepared and faults.take_drop(operation, "response"):
        raise DropConnection
    return response


def _check_version(request: web.Request) -> None:
    # AWS requires the API version header on every request; SDKs always send it.
    version = request.headers.get("x-amz-glacier-version")
    if version is None:
        raise missing("Required header missing: x-amz-glacier-version")
    if version != API_VERSION:
        raise invalid(f"Invalid x-amz-glacier-version: {version!r}; expected {API_VERSION}")


def build_app(store: Store, faults: Faults, job_delay: float) -> web.Application:
    """The emulator's aiohttp application over ``store``."""
    app = web.Application(middlewares=[_glacier_middleware])
    app[CTX] = Context(store=store, faults=faults, job_delay=job_delay)
    for method, path, handler in ADMIN_ROUTES:
        app.router.add_route(method, path, handler, name=f"admin-{handler.__name__}")
    for method, path, operation, handler in ROUTES:
        app.router.add_route(method, path, handler, name=operation)
    return app


class EmulatorServer:
    """One emulator listening on a TCP port; start and stop on the loop that serves it."""

    def __init__(
        self,
        data_dir: Path,
        *,
        job_delay: float = 0.0,
        faults: Faults | None = None,
        account_id: str = DEFAULT_ACCOUNT_ID,
        region: str = DEFAULT_REGION,
    ) -> None:
        self.faults = faults or Faults()
        self.store = Store(Path(data_dir), account_id, region)
        self.app = build_app(self.store, self.faults, job_delay)
        # Parked uploads are released before shutdown, so a short grace period suffices.
        self._runner = web.AppRunner(self.app, access_log=None, shutdown_timeout=2.0)
        self.port = 0

    @property
    def context(self) -> Context:
        """The state handlers share (touch it only on the serving loop)."""
        return self.app[CTX]

    async def start(self, host: str = "127.0.0.1", port: int = 0) -> str:
        """Start listening; return the endpoint URL (the real port when ``port`` is 0)."""
        await self._runner.setup()
        site = web.TCPSite(self._runner, host, port)
        await site.start()
        self.port = self._runner.addresses[0][1]
        return f"http://{host}:{self.port}"

    async def stop(self) -> None:
        """Drop parked uploads and shut down, closing every connection."""
        self.faults.release(drop=True)
        await self._runner.cleanup()
