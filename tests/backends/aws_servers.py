"""Servers and backends for tests of the AWS backends; the conformance suite uses them too.

moto's in-process ``mock_aws`` does not work with aiobotocore, so S3 runs as a
moto server on 127.0.0.1 in a thread; vaults run on our own strict emulator
(moto has no multipart upload for vaults).
"""

from __future__ import annotations

import os
from collections.abc import AsyncIterator, Iterator
from contextlib import asynccontextmanager
from typing import Any

import anyio
import boto3
import pytest
from botocore.exceptions import ClientError

from aglacier.backends.aws import AwsSettings
from aglacier.backends.glacier import VaultBackend
from aglacier.backends.s3 import S3Backend
from aglacier.backends.s3_bucket import PAGE_SIZE

#: moto's S3 enforces the real 5 MiB minimum part size at complete. It reads
#: this variable once, when ``moto.settings`` is imported, so it is set here,
#: before anything imports moto.
TEST_MIN_PART_SIZE = 1
os.environ["S3_UPLOAD_PART_MIN_SIZE"] = str(TEST_MIN_PART_SIZE)

REGION = "us-east-1"
ACCESS_KEY_ID = "testing"
SECRET_ACCESS_KEY = "testing"  # moto and the emulator accept any key


def local_settings(endpoint_url: str, *, concurrency: int = 4) -> AwsSettings:
    """Settings for a local server with dummy credentials."""
    return AwsSettings(
        region=REGION,
        endpoint_url=endpoint_url,
        concurrency=concurrency,
        connect_timeout=5,
        read_timeout=30,
        access_key_id=ACCESS_KEY_ID,
        secret_access_key=SECRET_ACCESS_KEY,
    )


@pytest.fixture(scope="session")
def moto_s3_endpoint() -> Iterator[str]:
    """A moto S3 server on 127.0.0.1 (any free port), for the whole session."""
    from moto import settings as moto_settings
    from moto.s3 import models as moto_s3_models
    from moto.server import ThreadedMotoServer

    # moto copies the setting into moto.s3.models when that is imported: if something
    # imported moto before this module set the variable, set the copies too.
    for module in (moto_settings, moto_s3_models):
        setattr(module, "S3_UPLOAD_PART_MIN_SIZE", TEST_MIN_PART_SIZE)  # noqa: B010
    server = ThreadedMotoServer(ip_address="127.0.0.1", port=0, verbose=False)
    server.start()
    try:
        host, port = server.get_host_and_port()
        yield f"http://{host}:{port}"
    finally:
        server.stop()


def boto3_client(service: str, endpoint_url: str) -> Any:
    """A plain boto3 client for setting things up (or tampering) behind a backend's back."""
    return boto3.client(
        service,
        region_name=REGION,
        endpoint_url=endpoint_url,
        aws_access_key_id=ACCESS_KEY_ID,
        aws_secret_access_key=SECRET_ACCESS_KEY,
    )


def create_bucket(endpoint_url: str, bucket: str) -> None:
    """Create ``bucket`` unless it exists."""
    client = boto3_client("s3", endpoint_url)
    try:
        client.create_bucket(Bucket=bucket)
    except ClientError as exc:
        if exc.response["Error"]["Code"] not in ("BucketAlreadyOwnedByYou", "BucketAlreadyExists"):
            raise
    finally:
        client.close()


def create_vault(endpoint_url: str, vault: str) -> None:
    """Create ``vault`` (creating an existing vault is not an error on Glacier)."""
    client = boto3_client("glacier", endpoint_url)
    try:
        client.create_vault(accountId="-", vaultName=vault)
    finally:
        client.close()


@asynccontextmanager
async def open_s3_backend(
    endpoint_url: str,
    bucket: str,
    *,
    storage_class: str = "DEEP_ARCHIVE",
    prefix: str = "backups",
    concurrency: int = 4,
    page_size: int = PAGE_SIZE,
) -> AsyncIterator[S3Backend]:
    """An :class:`S3Backend` on ``bucket`` (created if missing), closed on exit.

    A small ``page_size`` makes listings cross pages with a few parts or uploads.
    """
    await anyio.to_thread.run_sync(create_bucket, endpoint_url, bucket)
    backend = await S3Backend.open(
        local_settings(endpoint_url, concurrency=concurrency),
        bucket=bucket,
        prefix=prefix,
        storage_class=storage_class,
        page_size=page_size,
    )
    async with backend:
        yield backend


@asynccontextmanager
async def open_vault_backend(
    endpoint_url: str, vault: str, *, concurrency: int = 4
) -> AsyncIterator[VaultBackend]:
    """A :class:`VaultBackend` on ``vault`` (created if missing), closed on exit."""
    await anyio.to_thread.run_sync(create_vault, endpoint_url, vault)
    backend = await VaultBackend.open(
        local_settings(endpoint_url, concurrency=concurrency), vault=vault
    )
    async with backend:
        yield backend
