"""Small helpers shared by the emulator tests."""

from __future__ import annotations

import io
import os
from typing import Any

import pytest
from botocore.exceptions import ClientError
from botocore.utils import calculate_tree_hash

from tests.vault_emulator import MIB


def reference_tree_hash(data: bytes) -> str:
    """botocore's tree hash: the oracle independent of both aglacier and the emulator."""
    return str(calculate_tree_hash(io.BytesIO(data)))


def random_bytes(size: int) -> bytes:
    """Incompressible test data."""
    return os.urandom(size)


def upload_parts(client: Any, vault: str, data: bytes, part_size: int = MIB) -> str:
    """Initiate an upload and send ``data`` in parts; return the upload id."""
    upload_id = str(
        client.initiate_multipart_upload(vaultName=vault, partSize=str(part_size))["uploadId"]
    )
    for start in range(0, len(data), part_size):
        send_part(client, vault, upload_id, start, data[start : start + part_size])
    return upload_id


def send_part(client: Any, vault: str, upload_id: str, start: int, chunk: bytes) -> None:
    """Upload one part at ``start``; boto3 computes both checksums."""
    client.upload_multipart_part(
        vaultName=vault,
        uploadId=upload_id,
        range=f"bytes {start}-{start + len(chunk) - 1}/*",
        body=chunk,
    )


def complete(client: Any, vault: str, upload_id: str, data: bytes) -> str:
    """Complete an upload of ``data``; return the archive id."""
    response = client.complete_multipart_upload(
        vaultName=vault,
        uploadId=upload_id,
        archiveSize=str(len(data)),
        checksum=reference_tree_hash(data),
    )
    return str(response["archiveId"])


def upload_archive(client: Any, vault: str, data: bytes) -> str:
    """Multipart-upload ``data`` in 1 MiB parts and complete it; return the archive id."""
    upload_id = upload_parts(client, vault, data)
    return complete(client, vault, upload_id, data)


def expect_error(
    excinfo: pytest.ExceptionInfo[ClientError], code: str, status: int, text: str = ""
) -> None:
    """Assert a ClientError's code, HTTP status and that ``text`` is in its message."""
    error = excinfo.value.response["Error"]
    assert error["Code"] == code, error
    assert excinfo.value.response["ResponseMetadata"]["HTTPStatusCode"] == status
    assert text in error["Message"], error["Message"]
