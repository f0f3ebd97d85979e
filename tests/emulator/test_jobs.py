"""Retrieval jobs: delay, describe, list, ranged output with tree hashes, inventory."""

from __future__ import annotations

import csv
import io
import json
import time
from typing import Any

import pytest
from botocore.exceptions import ClientError

from tests.vault_emulator import MIB, VaultEmulator

from .helpers import expect_error, random_bytes, reference_tree_hash, upload_archive


def _retrieve(glacier: Any, vault: str, archive_id: str, **extra: str) -> str:
    params = {"Type": "archive-retrieval", "ArchiveId": archive_id, **extra}
    return str(glacier.initiate_job(vaultName=vault, jobParameters=params)["jobId"])


def _output(glacier: Any, vault: str, job_id: str, byte_range: str | None = None) -> Any:
    kwargs = {"range": byte_range} if byte_range else {}
    response = glacier.get_job_output(vaultName=vault, jobId=job_id, **kwargs)
    response["data"] = response["body"].read()
    response["body"].close()
    return response


@pytest.fixture
def archive(glacier: Any, vault: str) -> tuple[str, bytes]:
    """An archive of 4 MiB + 100 bytes: three full leaves, one more, and a short tail."""
    data = random_bytes(4 * MIB + 100)
    return upload_archive(glacier, vault, data), data


def test_job_in_progress_has_no_output_yet(
    glacier: Any, vault: str, vault_emulator: VaultEmulator, archive: tuple[str, bytes]
) -> None:
    vault_emulator.set_job_delay(3600)
    response = glacier.initiate_job(
        vaultName=vault,
        jobParameters={"Type": "archive-retrieval", "ArchiveId": archive[0], "Tier": "Bulk"},
    )
    job_id = response["jobId"]
    assert response["location"] == f"/123456789012/vaults/{vault}/jobs/{job_id}"
    waiting = glacier.describe_job(vaultName=vault, jobId=job_id)
    assert (waiting["StatusCode"], waiting["Completed"]) == ("InProgress", False)
    assert waiting["Tier"] == "Bulk"
    assert "CompletionDate" not in waiting
    assert "SHA256TreeHash" not in waiting  # AWS leaves it null while in progress
    with pytest.raises(ClientError) as excinfo:
        glacier.get_job_output(vaultName=vault, jobId=job_id)
    expect_error(excinfo, "InvalidParameterValueException", 400, "not currently available")


def test_job_succeeds_after_its_delay(
    glacier: Any, vault: str, vault_emulator: VaultEmulator, archive: tuple[str, bytes]
) -> None:
    archive_id, data = archive
    vault_emulator.set_job_delay(0.2)
    job_id = _retrieve(glacier, vault, archive_id)
    time.sleep(0.25)
    done = glacier.describe_job(vaultName=vault, jobId=job_id)
    assert (done["StatusCode"], done["Completed"]) == ("Succeeded", True)
    assert done["CompletionDate"] >= done["CreationDate"]
    assert done["Action"] == "ArchiveRetrieval"
    assert done["Tier"] == "Standard"
    assert done["ArchiveSizeInBytes"] == len(data)
    assert done["RetrievalByteRange"] == f"0-{len(data) - 1}"
    assert done["SHA256TreeHash"] == done["ArchiveSHA256TreeHash"] == reference_tree_hash(data)
    output = _output(glacier, vault, job_id)
    assert output["status"] == 200
    assert output["data"] == data
    assert output["checksum"] == reference_tree_hash(data)
    assert output["contentType"] == "application/octet-stream"
    assert output["acceptRanges"] == "bytes"


def test_complete_jobs_finishes_waiting_jobs(
    glacier: Any, vault: str, vault_emulator: VaultEmulator, archive: tuple[str, bytes]
) -> None:
    vault_emulator.set_job_delay(3600)
    job_id = _retrieve(glacier, vault, archive[0])
    assert vault_emulator.complete_jobs() == 1
    assert glacier.describe_job(vaultName=vault, jobId=job_id)["Completed"] is True


@pytest.mark.parametrize(
    ("byte_range", "has_checksum"),
    [
        (f"bytes=0-{MIB - 1}", True),  # a leaf
        (f"bytes={2 * MIB}-{4 * MIB - 1}", True),  # a 2 MiB node
        (f"bytes={4 * MIB}-{4 * MIB + 99}", True),  # from a MiB boundary to the end
        (f"bytes={MIB}-{3 * MIB - 1}", False),  # 2 MiB, but not a node of the tree
        (f"bytes=0-{3 * MIB - 1}", False),  # 3 MiB is no power of two
        ("bytes=100-5000", False),  # not aligned at all
    ],
)
def test_ranged_output_has_tree_hash_only_when_aligned(
    glacier: Any, vault: str, archive: tuple[str, bytes], byte_range: str, has_checksum: bool
) -> None:
    archive_id, data = archive
    job_id = _retrieve(glacier, vault, archive_id)
    first, last = (int(x) for x in byte_range.removeprefix("bytes=").split("-"))
    output = _output(glacier, vault, job_id, byte_range)
    assert output["status"] == 206
    assert output["contentRange"] == f"bytes {first}-{last}/{len(data)}"
    assert output["data"] == data[first : last + 1]
    if has_checksum:
        assert output["checksum"] == reference_tree_hash(data[first : last + 1])
    else:
        assert "checksum" not in output


@pytest.mark.parametrize("byte_range", ["bytes=5-4", f"bytes=0-{5 * MIB}", "pages=1-2"])
def test_bad_output_ranges_are_rejected(
    glacier: Any, vault: str, archive: tuple[str, bytes], byte_range: str
) -> None:
    job_id = _retrieve(glacier, vault, archive[0])
    with pytest.raises(ClientError) as excinfo:
        glacier.get_job_output(vaultName=vault, jobId=job_id, range=byte_range)
    expect_error(excinfo, "InvalidParameterValueException", 400, "Range")


def test_ranged_retrieval_job(glacier: Any, vault: str, archive: tuple[str, bytes]) -> None:
    archive_id, data = archive
    job_id = _retrieve(glacier, vault, archive_id, RetrievalByteRange=f"{2 * MIB}-{4 * MIB - 1}")
    described = glacier.describe_job(vaultName=vault, jobId=job_id)
    wanted = data[2 * MIB : 4 * MIB]
    assert described["RetrievalByteRange"] == f"{2 * MIB}-{4 * MIB - 1}"
    assert described["SHA256TreeHash"] == reference_tree_hash(wanted)
    assert described["ArchiveSHA256TreeHash"] == reference_tree_hash(data)
    whole = _output(glacier, vault, job_id)
    assert (whole["data"], whole["checksum"]) == (wanted, reference_tree_hash(wanted))
    part = _output(glacier, vault, job_id, f"bytes={MIB}-{2 * MIB - 1}")  # archive MiB 3
    assert part["contentRange"] == f"bytes {MIB}-{2 * MIB - 1}/{2 * MIB}"
    assert part["checksum"] == reference_tree_hash(data[3 * MIB : 4 * MIB])


def test_unaligned_retrieval_range_gets_no_tree_hash(
    glacier: Any, vault: str, archive: tuple[str, bytes]
) -> None:
    archive_id, data = archive
    job_id = _retrieve(glacier, vault, archive_id, RetrievalByteRange=f"{MIB}-{4 * MIB - 1}")
    assert "SHA256TreeHash" not in glacier.describe_job(vaultName=vault, jobId=job_id)
    # Even a leaf of the output is not checksummed when the job's range is not a node.
    output = _output(glacier, vault, job_id, f"bytes=0-{MIB - 1}")
    assert output["data"] == data[MIB : 2 * MIB]
    assert "checksum" not in output


@pytest.mark.parametrize(
    ("params", "code", "message"),
    [
        ({"Type": "archive-retrieval"}, "MissingParameterValueException", "ArchiveId"),
        ({"ArchiveId": "x"}, "MissingParameterValueException", "Type"),
        ({"Type": "select"}, "InvalidParameterValueException", "job type"),
        (
            {"Type": "inventory-retrieval", "Format": "XML"},
            "InvalidParameterValueException",
            "Format",
        ),
        ({"Type": "archive-retrieval", "ArchiveId": "nope"}, "ResourceNotFoundException", "nope"),
    ],
)
def test_bad_job_parameters(
    glacier: Any, vault: str, params: dict[str, str], code: str, message: str
) -> None:
    with pytest.raises(ClientError) as excinfo:
        glacier.initiate_job(vaultName=vault, jobParameters=params)
    assert excinfo.value.response["Error"]["Code"] == code
    assert message in excinfo.value.response["Error"]["Message"]


@pytest.mark.parametrize(
    ("extra", "message"),
    [
        ({"Tier": "Instant"}, "Tier"),
        ({"RetrievalByteRange": "100-200"}, "megabyte aligned"),
        ({"RetrievalByteRange": f"0-{MIB}"}, "megabyte aligned"),
        ({"RetrievalByteRange": f"0-{8 * MIB - 1}"}, "RetrievalByteRange"),
        ({"RetrievalByteRange": "all"}, "RetrievalByteRange"),
        ({"Description": "x" * 1025}, "description"),
    ],
)
def test_bad_archive_job_options(
    glacier: Any, vault: str, archive: tuple[str, bytes], extra: dict[str, str], message: str
) -> None:
    with pytest.raises(ClientError) as excinfo:
        _retrieve(glacier, vault, archive[0], **extra)
    expect_error(excinfo, "InvalidParameterValueException", 400, message)


def test_range_to_the_archive_end_is_allowed(
    glacier: Any, vault: str, archive: tuple[str, bytes]
) -> None:
    archive_id, data = archive
    job_id = _retrieve(glacier, vault, archive_id, RetrievalByteRange=f"{4 * MIB}-{len(data) - 1}")
    assert _output(glacier, vault, job_id)["data"] == data[4 * MIB :]


def test_unknown_job_is_404(glacier: Any, vault: str) -> None:
    for call in (glacier.describe_job, glacier.get_job_output):
        with pytest.raises(ClientError) as excinfo:
            call(vaultName=vault, jobId="NoSuchJob")
        expect_error(excinfo, "ResourceNotFoundException", 404, "The job ID was not found")


def test_deleted_archive_cannot_be_retrieved(glacier: Any, vault: str) -> None:
    archive_id = upload_archive(glacier, vault, b"gone soon")
    job_id = _retrieve(glacier, vault, archive_id)
    glacier.delete_archive(vaultName=vault, archiveId=archive_id)
    for call in (
        lambda: _retrieve(glacier, vault, archive_id),
        lambda: glacier.get_job_output(vaultName=vault, jobId=job_id),
    ):
        with pytest.raises(ClientError) as excinfo:
            call()
        expect_error(excinfo, "ResourceNotFoundException", 404)


def test_inventory_lists_live_archives(glacier: Any, vault: str) -> None:
    kept = glacier.upload_archive(vaultName=vault, body=b"kept", archiveDescription="keep me")
    dropped = glacier.upload_archive(vaultName=vault, body=b"dropped")
    glacier.delete_archive(vaultName=vault, archiveId=dropped["archiveId"])
    job_id = glacier.initiate_job(vaultName=vault, jobParameters={"Type": "inventory-retrieval"})[
        "jobId"
    ]
    described = glacier.describe_job(vaultName=vault, jobId=job_id)
    assert described["Action"] == "InventoryRetrieval"
    assert described["InventoryRetrievalParameters"]["Format"] == "JSON"
    output = _output(glacier, vault, job_id)
    assert output["contentType"] == "application/json"
    assert "checksum" not in output
    assert described["InventorySizeInBytes"] == len(output["data"])
    inventory = json.loads(output["data"])
    assert inventory["VaultARN"].endswith(f":vaults/{vault}")
    assert inventory["InventoryDate"] == described["CreationDate"]
    [entry] = inventory["ArchiveList"]
    assert entry["ArchiveId"] == kept["archiveId"]
    assert entry["ArchiveDescription"] == "keep me"
    assert entry["Size"] == 4
    assert entry["SHA256TreeHash"] == reference_tree_hash(b"kept")
    assert entry["CreationDate"].endswith("Z")


def test_inventory_as_csv(glacier: Any, vault: str) -> None:
    glacier.upload_archive(vaultName=vault, body=b"one", archiveDescription='a, "quoted" one')
    job_id = glacier.initiate_job(
        vaultName=vault, jobParameters={"Type": "inventory-retrieval", "Format": "CSV"}
    )["jobId"]
    output = _output(glacier, vault, job_id)
    assert output["contentType"] == "text/csv"
    [row] = list(csv.DictReader(io.StringIO(output["data"].decode())))
    assert row["ArchiveDescription"] == 'a, "quoted" one'
    assert row["Size"] == "3"
    part = _output(glacier, vault, job_id, "bytes=0-8")
    assert part["data"] == b"ArchiveId"


def test_list_jobs_filters_and_pages(
    glacier: Any, vault: str, vault_emulator: VaultEmulator, archive: tuple[str, bytes]
) -> None:
    done = [_retrieve(glacier, vault, archive[0]) for _ in range(3)]
    vault_emulator.set_job_delay(3600)
    waiting = [_retrieve(glacier, vault, archive[0]) for _ in range(2)]
    listed = glacier.list_jobs(vaultName=vault)
    assert [j["JobId"] for j in listed["JobList"]] == done + waiting  # by initiation time
    assert "Marker" not in listed
    completed = glacier.list_jobs(vaultName=vault, completed="true")["JobList"]
    assert [j["JobId"] for j in completed] == done
    in_progress = glacier.list_jobs(vaultName=vault, statuscode="InProgress")["JobList"]
    assert [j["JobId"] for j in in_progress] == waiting
    pages = glacier.get_paginator("list_jobs").paginate(
        vaultName=vault, PaginationConfig={"PageSize": 2}
    )
    assert [[j["JobId"] for j in p["JobList"]] for p in pages] == [
        done[:2],
        [done[2], waiting[0]],
        waiting[1:],
    ]
    for query in ({"statuscode": "finished"}, {"completed": "yes"}):
        with pytest.raises(ClientError) as excinfo:
            glacier.list_jobs(vaultName=vault, **query)
        expect_error(excinfo, "InvalidParameterValueException", 400)
