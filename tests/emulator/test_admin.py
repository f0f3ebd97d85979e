"""The HTTP admin endpoints under /_emulator/, for clients in other processes."""

from __future__ import annotations

import threading
from typing import Any

import pytest
from botocore.exceptions import ClientError, ConnectionClosedError

from tests.vault_emulator import MIB, VaultEmulator
from tests.vault_emulator.testing import admin_call

from .helpers import expect_error, random_bytes, send_part, upload_parts


def _admin(emulator: VaultEmulator, path: str, body: Any = None) -> Any:
    status, answer = admin_call(emulator.endpoint_url, path, body)
    assert status == 200, answer
    return answer


def test_counters_over_http(glacier: Any, vault: str, vault_emulator: VaultEmulator) -> None:
    upload_id = upload_parts(glacier, vault, random_bytes(MIB + 1))
    counters = _admin(vault_emulator, "counters")
    assert counters["requests"] == {
        "CreateVault": 1,
        "InitiateMultipartUpload": 1,
        "UploadMultipartPart": 2,
    }
    assert counters["part_uploads"] == {upload_id: {f"0-{MIB - 1}": 1, f"{MIB}-{MIB}": 1}}
    assert counters["parts_stored"] == counters["part_uploads"]
    assert counters["held"] == 0


def test_errors_and_drops_over_http(
    glacier: Any, vault: str, vault_emulator: VaultEmulator
) -> None:
    upload_id = glacier.initiate_multipart_upload(vaultName=vault, partSize=str(MIB))["uploadId"]
    result = _admin(
        vault_emulator,
        "faults",
        {
            "errors": [{"operation": "UploadMultipartPart", "code": "ThrottlingException"}],
            "drops": [{"operation": "UploadMultipartPart", "stage": "request"}],
        },
    )
    assert result == {"forgotten": [], "completed_jobs": 0}
    with pytest.raises(ClientError) as excinfo:
        send_part(glacier, vault, upload_id, 0, b"x")
    expect_error(excinfo, "ThrottlingException", 400)
    with pytest.raises(ConnectionClosedError):
        send_part(glacier, vault, upload_id, 0, b"x")
    send_part(glacier, vault, upload_id, 0, b"x")


def test_forget_latency_and_jobs_over_http(
    glacier: Any, vault: str, vault_emulator: VaultEmulator
) -> None:
    upload_id = upload_parts(glacier, vault, b"abc")
    result = _admin(
        vault_emulator,
        "faults",
        {"forget_uploads": [upload_id, "unknown"], "latency": 0.01, "job_delay": 3600},
    )
    assert result["forgotten"] == [upload_id]
    with pytest.raises(ClientError) as excinfo:
        glacier.list_parts(vaultName=vault, uploadId=upload_id)
    expect_error(excinfo, "ResourceNotFoundException", 404)
    job_id = glacier.initiate_job(vaultName=vault, jobParameters={"Type": "inventory-retrieval"})[
        "jobId"
    ]
    assert glacier.describe_job(vaultName=vault, jobId=job_id)["Completed"] is False
    assert _admin(vault_emulator, "faults", {"complete_jobs": True})["completed_jobs"] == 1
    assert glacier.describe_job(vaultName=vault, jobId=job_id)["Completed"] is True


def test_hold_and_release_over_http(
    glacier: Any, vault: str, vault_emulator: VaultEmulator
) -> None:
    upload_id = glacier.initiate_multipart_upload(vaultName=vault, partSize=str(MIB))["uploadId"]
    _admin(vault_emulator, "faults", {"hold_parts_after": 0})
    worker = threading.Thread(target=send_part, args=(glacier, vault, upload_id, 0, b"held"))
    worker.start()
    vault_emulator.faults.wait_held(1)
    assert _admin(vault_emulator, "counters")["held"] == 1
    _admin(vault_emulator, "release", {})
    worker.join(timeout=10)
    assert not worker.is_alive()
    assert len(glacier.list_parts(vaultName=vault, uploadId=upload_id)["Parts"]) == 1


def test_reset_over_http(glacier: Any, vault: str, vault_emulator: VaultEmulator) -> None:
    _admin(vault_emulator, "faults", {"errors": [{"operation": "DescribeVault", "count": 3}]})
    _admin(vault_emulator, "reset", {})
    glacier.describe_vault(vaultName=vault)
    assert _admin(vault_emulator, "counters")["requests"] == {"DescribeVault": 1}


@pytest.mark.parametrize(
    ("path", "raw", "message"),
    [
        ("faults", b"not json", "Expecting value"),
        ("faults", b"[1]", "JSON object"),
        ("faults", b'{"explode": 1}', "unknown keys"),
        ("faults", b'{"errors": [{"operation": "Nope"}]}', "unknown operation"),
        ("faults", b'{"latency": -3}', "latency"),
        ("release", b"{", "Expecting"),
    ],
)
def test_bad_admin_requests_are_400(
    vault_emulator: VaultEmulator, path: str, raw: bytes, message: str
) -> None:
    status, body = admin_call(vault_emulator.endpoint_url, path, raw)
    assert status == 400
    assert isinstance(body, dict)
    assert message in body["error"]
