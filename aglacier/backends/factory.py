"""Open the backend a configuration names, wrapped in the one retrying layer."""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import TYPE_CHECKING

from aglacier.backends.base import Backend

if TYPE_CHECKING:
    from aglacier.backends.aws import AwsSettings
from aglacier.backends.retry import RetryCallback, RetryingBackend
from aglacier.config import DestinationConfig
from aglacier.destination import FileLocation, S3Location, VaultLocation


def aws_settings(destination: DestinationConfig, *, concurrency: int) -> AwsSettings:
    """The AWS connection settings of a destination."""
    # Imported here: aiobotocore takes ~0.35 s to import, which a local folder never needs.
    from aglacier.backends.aws import AwsSettings

    return AwsSettings(
        profile=destination.profile,
        region=destination.region,
        endpoint_url=destination.endpoint_url,
        concurrency=concurrency,
    )


@asynccontextmanager
async def open_backend(
    destination: DestinationConfig,
    *,
    concurrency: int,
    on_retry: RetryCallback | None = None,
    retry_attempts: int = 8,
    retry_base_delay: float = 1.0,
) -> AsyncIterator[Backend]:
    """The destination's backend behind :class:`RetryingBackend`, closed on exit.

    Opening checks nothing remote; call :meth:`Backend.check` for that.
    """
    location = destination.url
    inner: Backend
    if isinstance(location, FileLocation):
        from aglacier.backends.local import LocalBackend

        inner = LocalBackend(location.path)
    elif isinstance(location, S3Location):
        from aglacier.backends.s3 import S3Backend

        inner = await S3Backend.open(
            aws_settings(destination, concurrency=concurrency),
            bucket=location.bucket,
            prefix=location.prefix,
            storage_class=str(destination.storage_class),
        )
    elif isinstance(location, VaultLocation):
        from aglacier.backends.glacier import VaultBackend

        inner = await VaultBackend.open(
            aws_settings(destination, concurrency=concurrency), vault=location.vault
        )
    else:  # pragma: no cover - Location is a closed union
        raise AssertionError(f"unknown destination {location!r}")
    try:
        yield RetryingBackend(
            inner, attempts=retry_attempts, base_delay=retry_base_delay, on_retry=on_retry
        )
    finally:
        await inner.aclose()
