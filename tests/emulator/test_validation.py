"""Every rule the emulator enforces, each rejected with Glacier's error."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
from botocore.exceptions import ClientError

from tests.vault_emulator import MIB

from .helpers import expect_error, random_bytes, reference_tree_hash, send_part, upload_parts

WRONG_HASH = "ab" * 32


def _start(glacier: Any, vault: str, part_size: int = MIB) -> str:
    return str(
        glacier.initiate_multipart_upload(vaultName=vault, partSize=str(part_size))["uploadId"]
    )


def _put(
    glacier: Any, vault: str, upload_id: str, content_range: str, body: bytes, **kw: Any
) -> None:
    glacier.upload_multipart_part(
        vaultName=vault, uploadId=upload_id, range=content_range, body=body, **kw
    )


@pytest.mark.parametrize("size", [MIB << n for n in range(13)])
def test_every_power_of_two_part_size_is_accepted(glacier: Any, vault: str, size: int) -> None:
    listing = glacier.list_parts(vaultName=vault, uploadId=_start(glacier, vault, size))
    assert listing["PartSizeInBytes"] == size


@pytest.mark.parametrize("size", ["0", "1000", str(3 * MIB), str(8 << 30), str(MIB // 2), "x"])
def test_other_part_sizes_are_rejected(glacier: Any, vault: str, size: str) -> None:
    with pytest.raises(ClientError) as excinfo:
        glacier.initiate_multipart_upload(vaultName=vault, partSize=size)
    expect_error(excinfo, "InvalidParameterValueException", 400, "part size")


def test_part_size_is_required(glacier: Any, vault: str) -> None:
    with pytest.raises(ClientError) as excinfo:
        glacier.initiate_multipart_upload(vaultName=vault)
    expect_error(excinfo, "MissingParameterValueException", 400, "x-amz-part-size")


@pytest.mark.parametrize("text", ["x" * 1025, "tab\there", "caf\u00e9"])
def test_bad_descriptions_are_rejected(glacier: Any, vault: str, text: str) -> None:
    with pytest.raises(ClientError) as excinfo:
        glacier.initiate_multipart_upload(
            vaultName=vault, partSize=str(MIB), archiveDescription=text
        )
    expect_error(excinfo, "InvalidParameterValueException", 400, "description")
    with pytest.raises(ClientError) as excinfo:
        glacier.upload_archive(vaultName=vault, body=b"data", archiveDescription=text)
    expect_error(excinfo, "InvalidParameterValueException", 400, "description")


def test_longest_printable_description_is_accepted(glacier: Any, vault: str) -> None:
    # Every printable character, spaces inside (HTTP drops leading and trailing ones).
    text = "".join(chr(32 + (i + 1) % 95) for i in range(1024))
    upload_id = glacier.initiate_multipart_upload(
        vaultName=vault, partSize=str(MIB), archiveDescription=text
    )["uploadId"]
    assert glacier.list_parts(vaultName=vault, uploadId=upload_id)["ArchiveDescription"] == text


@pytest.mark.parametrize(
    ("content_range", "body", "message"),
    [
        (f"bytes 1-{MIB}/*", b"x" * MIB, "not aligned"),
        (f"bytes {MIB // 2}-{MIB // 2}/*", b"x", "not aligned"),
        (f"bytes 0-{MIB}/*", b"x" * (MIB + 1), "longer than the part size"),
        (f"bytes 0-{MIB - 1}/{MIB}", b"x" * MIB, "Content-Range"),
        (f"0-{MIB - 1}", b"x" * MIB, "Content-Range"),
        ("bytes 5-4/*", b"", "Content-Range"),
        (f"bytes 0-{MIB - 1}/*", b"x" * 1000, "does not match Content-Range"),
        (f"bytes {10_000 * MIB}-{10_000 * MIB}/*", b"x", "10000-part limit"),
    ],
)
def test_bad_ranges_are_rejected(
    glacier: Any, vault: str, content_range: str, body: bytes, message: str
) -> None:
    upload_id = _start(glacier, vault)
    with pytest.raises(ClientError) as excinfo:
        _put(glacier, vault, upload_id, content_range, body)
    expect_error(excinfo, "InvalidParameterValueException", 400, message)
    assert glacier.list_parts(vaultName=vault, uploadId=upload_id)["Parts"] == []


def test_last_allowed_part_index_is_accepted(glacier: Any, vault: str) -> None:
    upload_id = _start(glacier, vault)
    _put(glacier, vault, upload_id, f"bytes {9_999 * MIB}-{9_999 * MIB}/*", b"x")
    assert len(glacier.list_parts(vaultName=vault, uploadId=upload_id)["Parts"]) == 1


def test_content_range_is_required(glacier: Any, vault: str) -> None:
    upload_id = _start(glacier, vault)
    with pytest.raises(ClientError) as excinfo:
        glacier.upload_multipart_part(vaultName=vault, uploadId=upload_id, body=b"x")
    expect_error(excinfo, "MissingParameterValueException", 400, "Content-Range")


def test_wrong_part_tree_hash_is_rejected_and_nothing_stored(
    glacier: Any, vault: str, data_dir: Path
) -> None:
    upload_id = _start(glacier, vault)
    with pytest.raises(ClientError) as excinfo:
        _put(
            glacier,
            vault,
            upload_id,
            f"bytes 0-{MIB - 1}/*",
            random_bytes(MIB),
            checksum=WRONG_HASH,
        )
    expect_error(excinfo, "InvalidParameterValueException", 400, "x-amz-sha256-tree-hash")
    assert glacier.list_parts(vaultName=vault, uploadId=upload_id)["Parts"] == []
    assert list((data_dir / "tmp").iterdir()) == []


def test_wrong_content_sha256_is_rejected(glacier: Any, vault: str) -> None:
    def spoil(params: dict[str, Any], **_: Any) -> None:
        params["headers"]["x-amz-content-sha256"] = WRONG_HASH

    glacier.meta.events.register("before-call.glacier.UploadMultipartPart", spoil)
    glacier.meta.events.register("before-call.glacier.UploadArchive", spoil)
    upload_id = _start(glacier, vault)
    with pytest.raises(ClientError) as excinfo:
        _put(glacier, vault, upload_id, f"bytes 0-{MIB - 1}/*", random_bytes(MIB))
    expect_error(excinfo, "InvalidParameterValueException", 400, "x-amz-content-sha256")
    with pytest.raises(ClientError) as excinfo:
        glacier.upload_archive(vaultName=vault, body=b"data")
    expect_error(excinfo, "InvalidParameterValueException", 400, "x-amz-content-sha256")


def test_malformed_tree_hash_is_rejected(glacier: Any, vault: str) -> None:
    upload_id = _start(glacier, vault)
    with pytest.raises(ClientError) as excinfo:
        _put(glacier, vault, upload_id, "bytes 0-0/*", b"x", checksum="not-hex")
    expect_error(excinfo, "InvalidParameterValueException", 400, "x-amz-sha256-tree-hash")


def test_upper_case_hex_is_accepted(glacier: Any, vault: str) -> None:
    upload_id = _start(glacier, vault)
    chunk = random_bytes(10)
    _put(
        glacier, vault, upload_id, "bytes 0-9/*", chunk, checksum=reference_tree_hash(chunk).upper()
    )


def _complete_error(glacier: Any, vault: str, upload_id: str, size: int, checksum: str) -> Any:
    with pytest.raises(ClientError) as excinfo:
        glacier.complete_multipart_upload(
            vaultName=vault, uploadId=upload_id, archiveSize=str(size), checksum=checksum
        )
    return excinfo


def test_complete_needs_parts(glacier: Any, vault: str) -> None:
    upload_id = _start(glacier, vault)
    excinfo = _complete_error(glacier, vault, upload_id, 0, reference_tree_hash(b""))
    expect_error(excinfo, "InvalidParameterValueException", 400, "No parts")


def test_complete_rejects_a_gap(glacier: Any, vault: str) -> None:
    data = random_bytes(3 * MIB)
    upload_id = _start(glacier, vault)
    send_part(glacier, vault, upload_id, 0, data[:MIB])
    send_part(glacier, vault, upload_id, 2 * MIB, data[2 * MIB :])
    excinfo = _complete_error(glacier, vault, upload_id, len(data), reference_tree_hash(data))
    expect_error(excinfo, "InvalidParameterValueException", 400, f"from {MIB}")


def test_complete_rejects_missing_first_part(glacier: Any, vault: str) -> None:
    data = random_bytes(2 * MIB)
    upload_id = _start(glacier, vault)
    send_part(glacier, vault, upload_id, MIB, data[MIB:])
    excinfo = _complete_error(glacier, vault, upload_id, len(data), reference_tree_hash(data))
    expect_error(excinfo, "InvalidParameterValueException", 400, "from 0")


def test_short_part_is_allowed_only_last(glacier: Any, vault: str) -> None:
    upload_id = _start(glacier, vault)
    send_part(glacier, vault, upload_id, 0, b"short")  # accepted now, fails at complete
    send_part(glacier, vault, upload_id, MIB, random_bytes(MIB))
    excinfo = _complete_error(glacier, vault, upload_id, 5 + MIB, WRONG_HASH)
    expect_error(excinfo, "InvalidParameterValueException", 400, "all parts but the last")


@pytest.mark.parametrize("delta", [-1, 1])
def test_complete_rejects_a_wrong_archive_size(glacier: Any, vault: str, delta: int) -> None:
    data = random_bytes(MIB + 10)
    upload_id = upload_parts(glacier, vault, data)
    excinfo = _complete_error(
        glacier, vault, upload_id, len(data) + delta, reference_tree_hash(data)
    )
    expect_error(excinfo, "InvalidParameterValueException", 400, "x-amz-archive-size")


def test_complete_rejects_a_wrong_tree_hash(glacier: Any, vault: str) -> None:
    data = random_bytes(2 * MIB + 10)
    upload_id = upload_parts(glacier, vault, data)
    excinfo = _complete_error(glacier, vault, upload_id, len(data), WRONG_HASH)
    expect_error(excinfo, "InvalidParameterValueException", 400, "Checksum mismatch")
    # The upload survives a failed complete, so the client can fix it and retry.
    assert len(glacier.list_parts(vaultName=vault, uploadId=upload_id)["Parts"]) == 3


def test_complete_requires_size_and_hash(glacier: Any, vault: str) -> None:
    upload_id = upload_parts(glacier, vault, b"abc")
    with pytest.raises(ClientError) as excinfo:
        glacier.complete_multipart_upload(vaultName=vault, uploadId=upload_id, checksum=WRONG_HASH)
    expect_error(excinfo, "MissingParameterValueException", 400, "x-amz-archive-size")
    with pytest.raises(ClientError) as excinfo:
        glacier.complete_multipart_upload(vaultName=vault, uploadId=upload_id, archiveSize="3")
    expect_error(excinfo, "MissingParameterValueException", 400, "x-amz-sha256-tree-hash")


def test_single_request_upload_checks(glacier: Any, vault: str) -> None:
    with pytest.raises(ClientError) as excinfo:
        glacier.upload_archive(vaultName=vault, body=b"data", checksum=WRONG_HASH)
    expect_error(excinfo, "InvalidParameterValueException", 400, "x-amz-sha256-tree-hash")
    with pytest.raises(ClientError) as excinfo:
        glacier.upload_archive(vaultName=vault, body=b"")
    expect_error(excinfo, "InvalidParameterValueException", 400, "Invalid Content-Length: 0")
