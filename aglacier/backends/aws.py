"""The one place aiobotocore clients are made, with a deliberate configuration.

Every choice here exists because botocore's default is wrong for this program:

- **No retries in botocore** (``total_max_attempts=1``): :mod:`aglacier.backends.retry`
  is the one retrying layer, so that two layers never multiply their attempts.
- **A connection pool at least as large as the part concurrency**: beyond
  ``max_pool_connections`` botocore silently queues requests, which would make
  a concurrency setting a lie (and read timeouts fire on queued requests).
- **No hashing of bodies on the event loop**: S3 payload signing is off
  (over plain HTTP botocore would otherwise SHA256 every part to sign it), and
  request checksums are computed only when an operation requires one
  (every part comes with its precomputed ``ChecksumSHA256``).
- **Credentials resolved up front**, so that a missing key fails before
  staging starts, with a message that says how to configure one.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import AsyncExitStack, asynccontextmanager
from dataclasses import dataclass
from types import TracebackType
from typing import Any, Literal, Self

from aiobotocore.config import AioConfig
from aiobotocore.session import AioSession
from botocore.exceptions import BotoCoreError

from aglacier import __version__
from aglacier.backends.aws_errors import credentials_error, no_credentials_error
from aglacier.errors import ConfigError

#: Used when neither the settings, the environment nor the profile names a region.
DEFAULT_REGION = "us-east-1"

#: Connections beyond the part uploads: listing, HEAD, complete, the manifest.
SPARE_CONNECTIONS = 4

Service = Literal["s3", "glacier"]


@dataclass(frozen=True)
class AwsSettings:
    """How to reach AWS (or an S3-compatible endpoint, or an emulator).

    ``profile``, ``region`` and ``endpoint_url`` default to what botocore finds
    in the environment and ``~/.aws/config``; the region to ``us-east-1`` when
    nothing names one. ``access_key_id`` / ``secret_access_key`` are meant for
    tests and local emulators: normally botocore's credential chain is used.
    ``concurrency`` is the number of part uploads in flight; the connection
    pool holds that many plus :data:`SPARE_CONNECTIONS`.
    """

    profile: str | None = None
    region: str | None = None
    endpoint_url: str | None = None
    concurrency: int = 4
    connect_timeout: float = 10.0
    #: Seconds without a byte from the server once a request is sent; S3 may
    #: take a while to answer a large part or a CompleteMultipartUpload.
    read_timeout: float = 120.0
    access_key_id: str | None = None
    secret_access_key: str | None = None

    def __post_init__(self) -> None:
        if self.concurrency < 1:
            raise ConfigError(f"concurrency must be at least 1, not {self.concurrency}")
        if self.connect_timeout <= 0 or self.read_timeout <= 0:
            raise ConfigError("connect and read timeouts must be positive")
        if (self.access_key_id is None) != (self.secret_access_key is None):
            raise ConfigError("give both an access key id and a secret access key, or neither")

    @property
    def max_connections(self) -> int:
        """Connections in the pool: the part uploads plus a few for everything else."""
        return self.concurrency + SPARE_CONNECTIONS


def client_config(settings: AwsSettings) -> AioConfig:
    """The botocore configuration every aglacier client uses (see the module docstring)."""
    return AioConfig(
        retries={"total_max_attempts": 1, "mode": "standard"},
        max_pool_connections=settings.max_connections,
        connect_timeout=settings.connect_timeout,
        read_timeout=settings.read_timeout,
        tcp_keepalive=True,
        s3={"payload_signing_enabled": False},
        request_checksum_calculation="when_required",
        # GetObject with ChecksumMode=ENABLED still validates; see S3Backend.read_part.
        response_checksum_validation="when_required",
        user_agent_extra=f"aglacier/{__version__}",
        # warm_up_loader_caches would load the service model in a thread, but loads
        # more files: ~0.15 s instead of ~0.09 s on the loop, once, before any upload.
    )


@asynccontextmanager
async def aws_client(service: Service, settings: AwsSettings) -> AsyncIterator[Any]:
    """An aiobotocore client for ``service``, closed on exit.

    Raises :class:`~aglacier.errors.CredentialsError` at once when no
    credentials can be found (or the profile does not exist).
    """
    try:
        session = AioSession(profile=settings.profile)
        region = settings.region or session.get_config_variable("region") or DEFAULT_REGION
        if settings.access_key_id is None:
            await _require_credentials(session, settings.profile)
        creator = session.create_client(
            service,
            region_name=region,
            endpoint_url=settings.endpoint_url,
            aws_access_key_id=settings.access_key_id,
            aws_secret_access_key=settings.secret_access_key,
            config=client_config(settings),
        )
        client = await creator.__aenter__()
    except BotoCoreError as exc:
        raise credentials_error(exc, settings.profile) from exc
    except ValueError as exc:  # botocore's answer to a malformed endpoint URL
        raise ConfigError(f"cannot use endpoint {settings.endpoint_url!r}: {exc}") from exc
    try:
        yield client
    finally:
        await creator.__aexit__(None, None, None)


async def _require_credentials(session: AioSession, profile: str | None) -> None:
    if await session.get_credentials() is None:
        raise no_credentials_error(profile or session.profile)


class ClientBackend:
    """What the S3 and vault backends share: an aiobotocore client (see :func:`aws_client`).

    ``on_close`` releases the client; a backend's ``open`` sets it, so that a
    backend that opened its client closes it in :meth:`aclose`, and one given
    a client leaves it to its owner.
    """

    def __init__(
        self, client: Any, *, max_connections: int, on_close: AsyncExitStack | None
    ) -> None:
        self._client = client
        self._max_connections = max_connections
        self._exit_stack = on_close

    @property
    def max_connections(self) -> int:
        return self._max_connections

    async def __aenter__(self) -> Self:
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        await self.aclose()

    async def aclose(self) -> None:
        """Close the client if this backend opened it."""
        stack, self._exit_stack = self._exit_stack, None
        if stack is not None:
            await stack.aclose()
