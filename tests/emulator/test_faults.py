"""Fault knobs (Python API) and counters."""

from __future__ import annotations

import subprocess
import sys
import threading
import time
from pathlib import Path
from typing import Any

import pytest
from botocore.exceptions import ClientError, ConnectionClosedError, ResponseStreamingError

from tests.vault_emulator import MIB, VaultEmulator
from tests.vault_emulator.testing import glacier_client

from .helpers import (
    complete,
    expect_error,
    random_bytes,
    reference_tree_hash,
    send_part,
    upload_archive,
    upload_parts,
)


@pytest.fixture
def retrying(vault_emulator: VaultEmulator) -> Any:
    """A client that retries up to three times (botocore's standard mode)."""
    client = glacier_client(vault_emulator.endpoint_url, retries=3)
    yield client
    client.close()


def _new_upload(glacier: Any, vault: str) -> str:
    return str(glacier.initiate_multipart_upload(vaultName=vault, partSize=str(MIB))["uploadId"])


@pytest.mark.parametrize(
    ("code", "status"),
    [
        ("ServiceUnavailableException", 500),
        ("ThrottlingException", 400),
        ("RequestTimeoutException", 408),
    ],
)
def test_injected_errors_hit_the_next_n_requests(
    glacier: Any, vault: str, vault_emulator: VaultEmulator, code: str, status: int
) -> None:
    upload_id = _new_upload(glacier, vault)
    vault_emulator.faults.inject_error("UploadMultipartPart", code, count=2)
    chunk = random_bytes(MIB)
    for _ in range(2):
        with pytest.raises(ClientError) as excinfo:
            send_part(glacier, vault, upload_id, 0, chunk)
        expect_error(excinfo, code, status, "Injected fault")
    send_part(glacier, vault, upload_id, 0, chunk)
    counters = vault_emulator.counters()
    assert counters.requests["UploadMultipartPart"] == 3
    # Requests refused by a fault never reach the part handler.
    assert counters.part_uploads == {(upload_id, f"0-{MIB - 1}"): 1}
    assert counters.parts_stored == {(upload_id, f"0-{MIB - 1}"): 1}


def test_errors_only_hit_their_operation(
    glacier: Any, vault: str, vault_emulator: VaultEmulator
) -> None:
    vault_emulator.faults.inject_error("CompleteMultipartUpload")
    upload_id = _new_upload(glacier, vault)  # not affected
    with pytest.raises(ClientError) as excinfo:
        glacier.complete_multipart_upload(vaultName=vault, uploadId=upload_id)
    expect_error(excinfo, "ServiceUnavailableException", 500)


def test_a_retrying_client_gets_through(
    retrying: Any, vault: str, vault_emulator: VaultEmulator
) -> None:
    vault_emulator.faults.inject_error("InitiateMultipartUpload", "ThrottlingException")
    response = retrying.initiate_multipart_upload(vaultName=vault, partSize=str(MIB))
    assert response["ResponseMetadata"]["RetryAttempts"] == 1
    assert vault_emulator.counters().requests["InitiateMultipartUpload"] == 2


def test_dropped_connection_mid_part_stores_nothing(
    glacier: Any, retrying: Any, vault: str, vault_emulator: VaultEmulator, data_dir: Path
) -> None:
    upload_id = _new_upload(glacier, vault)
    chunk = random_bytes(MIB)
    vault_emulator.faults.drop_connection("UploadMultipartPart")
    with pytest.raises(ConnectionClosedError):
        send_part(glacier, vault, upload_id, 0, chunk)
    assert glacier.list_parts(vaultName=vault, uploadId=upload_id)["Parts"] == []
    assert list((data_dir / "tmp").iterdir()) == []
    vault_emulator.faults.drop_connection("UploadMultipartPart")
    send_part(retrying, vault, upload_id, 0, chunk)  # the retry goes through
    counters = vault_emulator.counters()
    assert counters.requests["UploadMultipartPart"] == 3
    assert counters.parts_stored == {(upload_id, f"0-{MIB - 1}"): 1}


def test_dropped_answer_to_a_part_still_stores_it(
    glacier: Any, vault: str, vault_emulator: VaultEmulator
) -> None:
    upload_id = _new_upload(glacier, vault)
    chunk = random_bytes(MIB)
    vault_emulator.faults.drop_connection("UploadMultipartPart", stage="response")
    with pytest.raises(ConnectionClosedError):
        send_part(glacier, vault, upload_id, 0, chunk)
    [part] = glacier.list_parts(vaultName=vault, uploadId=upload_id)["Parts"]
    assert part["SHA256TreeHash"] == reference_tree_hash(chunk)


def test_lost_complete_answer_then_retry_gives_one_archive(
    glacier: Any, vault: str, vault_emulator: VaultEmulator, data_dir: Path
) -> None:
    data = random_bytes(2 * MIB + 3)
    upload_id = upload_parts(glacier, vault, data)
    vault_emulator.faults.drop_connection("CompleteMultipartUpload", stage="response")
    with pytest.raises(ConnectionClosedError):
        complete(glacier, vault, upload_id, data)
    archive_id = complete(glacier, vault, upload_id, data)
    stored = [
        p for p in (data_dir / "vaults" / vault / "archives").iterdir() if p.suffix != ".json"
    ]
    assert [p.name for p in stored] == [archive_id]
    assert stored[0].read_bytes() == data


def test_cut_download(glacier: Any, vault: str, vault_emulator: VaultEmulator) -> None:
    data = random_bytes(3 * MIB)
    archive_id = upload_archive(glacier, vault, data)
    job_id = glacier.initiate_job(
        vaultName=vault, jobParameters={"Type": "archive-retrieval", "ArchiveId": archive_id}
    )["jobId"]
    vault_emulator.faults.drop_connection("GetJobOutput", stage="response")
    body = glacier.get_job_output(vaultName=vault, jobId=job_id)["body"]
    with pytest.raises(ResponseStreamingError):
        body.read()
    body.close()
    again = glacier.get_job_output(vaultName=vault, jobId=job_id)["body"]
    assert again.read() == data
    again.close()


def test_latency_delays_every_request(
    glacier: Any, vault: str, vault_emulator: VaultEmulator
) -> None:
    vault_emulator.faults.set_latency(0.3)
    started = time.monotonic()
    glacier.describe_vault(vaultName=vault)
    assert time.monotonic() - started >= 0.3
    vault_emulator.faults.set_latency(0)
    started = time.monotonic()
    glacier.describe_vault(vaultName=vault)
    assert time.monotonic() - started < 0.3


def test_forgotten_upload_is_gone(
    glacier: Any, vault: str, vault_emulator: VaultEmulator, data_dir: Path
) -> None:
    data = random_bytes(MIB + 1)
    upload_id = upload_parts(glacier, vault, data)
    assert vault_emulator.forget_upload(upload_id) is True
    assert vault_emulator.forget_upload(upload_id) is False
    for call in (
        lambda: glacier.list_parts(vaultName=vault, uploadId=upload_id),
        lambda: send_part(glacier, vault, upload_id, 0, data[:MIB]),
        lambda: complete(glacier, vault, upload_id, data),
        lambda: glacier.abort_multipart_upload(vaultName=vault, uploadId=upload_id),
    ):
        with pytest.raises(ClientError) as excinfo:
            call()
        expect_error(excinfo, "ResourceNotFoundException", 404, "upload ID was not found")
    assert list((data_dir / "vaults" / vault / "uploads").iterdir()) == []


def test_hold_parts_after_n_then_release(
    glacier: Any, vault: str, vault_emulator: VaultEmulator
) -> None:
    data = random_bytes(4 * MIB)
    upload_id = _new_upload(glacier, vault)
    vault_emulator.faults.hold_parts_after(2)
    failures: list[BaseException] = []

    def upload_all() -> None:
        try:
            for start in range(0, len(data), MIB):
                send_part(glacier, vault, upload_id, start, data[start : start + MIB])
        except BaseException as exc:  # reported by the assertion below
            failures.append(exc)

    worker = threading.Thread(target=upload_all)
    worker.start()
    vault_emulator.faults.wait_held(1)
    counters = vault_emulator.counters()
    assert (len(counters.parts_stored), counters.held) == (2, 1)
    assert worker.is_alive()
    vault_emulator.release()
    worker.join(timeout=10)
    assert not worker.is_alive() and failures == []
    assert len(glacier.list_parts(vaultName=vault, uploadId=upload_id)["Parts"]) == 4
    complete(glacier, vault, upload_id, data)


_CLIENT = """
import sys, boto3
from botocore.config import Config
endpoint, vault, upload_id = sys.argv[1:4]
client = boto3.client("glacier", region_name="us-east-1", endpoint_url=endpoint,
                      config=Config(retries={"total_max_attempts": 1}))
mib = 1024 * 1024
for i in range(4):
    client.upload_multipart_part(vaultName=vault, uploadId=upload_id,
                                 range=f"bytes {i * mib}-{(i + 1) * mib - 1}/*",
                                 body=bytes([i]) * mib)
    print("acked", i, flush=True)
"""


def test_client_killed_while_held(glacier: Any, vault: str, vault_emulator: VaultEmulator) -> None:
    upload_id = _new_upload(glacier, vault)
    vault_emulator.faults.hold_parts_after(2)
    args = [sys.executable, "-c", _CLIENT, vault_emulator.endpoint_url, vault, upload_id]
    with subprocess.Popen(args, stdout=subprocess.PIPE, text=True) as client:
        try:
            vault_emulator.faults.wait_held(1, timeout=30)
        finally:
            client.kill()
        output, _ = client.communicate(timeout=10)
    assert output.split("\n")[:2] == ["acked 0", "acked 1"]
    vault_emulator.release(drop=True)
    parts = glacier.list_parts(vaultName=vault, uploadId=upload_id)["Parts"]
    assert [p["RangeInBytes"] for p in parts] == [f"0-{MIB - 1}", f"{MIB}-{2 * MIB - 1}"]
    assert vault_emulator.counters().held == 0


def test_wait_held_times_out(vault_emulator: VaultEmulator) -> None:
    with pytest.raises(TimeoutError):
        vault_emulator.faults.wait_held(1, timeout=0.05)


def test_reset_clears_faults_and_counters(
    glacier: Any, vault: str, vault_emulator: VaultEmulator
) -> None:
    vault_emulator.faults.inject_error("DescribeVault", count=5)
    vault_emulator.faults.set_latency(5)
    vault_emulator.reset()
    glacier.describe_vault(vaultName=vault)
    assert vault_emulator.counters().requests == {"DescribeVault": 1}


def test_counters_count_every_operation(
    glacier: Any, vault: str, vault_emulator: VaultEmulator
) -> None:
    data = random_bytes(10)
    upload_archive(glacier, vault, data)
    glacier.list_vaults()
    with pytest.raises(ClientError):
        glacier.describe_vault(vaultName="missing")
    assert vault_emulator.counters().requests == {
        "CreateVault": 1,
        "InitiateMultipartUpload": 1,
        "UploadMultipartPart": 1,
        "CompleteMultipartUpload": 1,
        "ListVaults": 1,
        "DescribeVault": 1,
    }


@pytest.mark.parametrize(
    ("call", "message"),
    [
        (lambda f: f.inject_error("NoSuchOperation"), "unknown operation"),
        (lambda f: f.inject_error("ListParts", "Boom"), "unknown error code"),
        (lambda f: f.inject_error("ListParts", count=0), "count"),
        (lambda f: f.drop_connection(stage="later"), "stage"),
        (lambda f: f.set_latency(-1), "latency"),
        (lambda f: f.hold_parts_after(-1), "count"),
    ],
)
def test_fault_settings_are_validated(
    vault_emulator: VaultEmulator, call: Any, message: str
) -> None:
    with pytest.raises(ValueError, match=message):
        call(vault_emulator.faults)


def test_held_answer_takes_effect_before_release(
    glacier: Any, vault: str, vault_emulator: VaultEmulator
) -> None:
    upload_id = _new_upload(glacier, vault)
    vault_emulator.faults.hold_responses("AbortMultipartUpload")
    outcome: list[object] = []

    def abort() -> None:
        outcome.append(glacier.abort_multipart_upload(vaultName=vault, uploadId=upload_id))

    worker = threading.Thread(target=abort)
    worker.start()
    vault_emulator.faults.wait_held(1)
    # The abort took effect while its answer is parked.
    uploads = glacier.list_multipart_uploads(vaultName=vault)["UploadsList"]
    assert upload_id not in [u["MultipartUploadId"] for u in uploads]
    assert outcome == []
    vault_emulator.release()
    worker.join(timeout=10)
    assert not worker.is_alive() and len(outcome) == 1
