"""Vault operations: create, describe, list with pagination, delete."""

from __future__ import annotations

import http.client
import json
from collections.abc import Callable
from typing import Any
from urllib.parse import urlsplit

import pytest
from botocore.exceptions import ClientError

from tests.vault_emulator import VaultEmulator

from .helpers import expect_error, random_bytes, upload_archive


def test_create_is_idempotent_and_describe_reports_it(glacier: Any) -> None:
    first = glacier.create_vault(vaultName="photos")
    again = glacier.create_vault(vaultName="photos")
    assert first["location"] == again["location"] == "/123456789012/vaults/photos"
    described = glacier.describe_vault(vaultName="photos")
    assert described["VaultName"] == "photos"
    assert described["VaultARN"] == "arn:aws:glacier:us-east-1:123456789012:vaults/photos"
    assert described["NumberOfArchives"] == 0
    assert described["SizeInBytes"] == 0
    assert described["CreationDate"].endswith("Z")
    assert "LastInventoryDate" not in described


@pytest.mark.parametrize("account", ["-", "111122223333"])
def test_any_account_id_reaches_the_same_vaults(glacier: Any, account: str) -> None:
    glacier.create_vault(accountId=account, vaultName="shared")
    assert glacier.describe_vault(vaultName="shared")["VaultName"] == "shared"


@pytest.mark.parametrize("name", ["bad/name", "has space", "x" * 256, "..", "ünï"])
def test_invalid_vault_names_are_rejected(glacier: Any, name: str) -> None:
    with pytest.raises(ClientError) as excinfo:
        glacier.create_vault(vaultName=name)
    assert excinfo.value.response["Error"]["Code"] in (
        "InvalidParameterValueException",
        "UnknownOperationException",  # "bad/name" splits into another path
    )


def test_list_vaults_is_sorted_and_paginated_by_arn(glacier: Any) -> None:
    names = [f"vault-{i:02d}" for i in range(23)]
    for name in reversed(names):
        glacier.create_vault(vaultName=name)
    first = glacier.list_vaults()
    assert [v["VaultName"] for v in first["VaultList"]] == names[:10]  # default page of 10
    assert first["Marker"] == "arn:aws:glacier:us-east-1:123456789012:vaults/vault-10"
    seen: list[str] = []
    marker = None
    while True:
        kwargs = {"limit": "7"} | ({"marker": marker} if marker else {})
        page = glacier.list_vaults(**kwargs)
        assert len(page["VaultList"]) <= 7
        seen += [v["VaultName"] for v in page["VaultList"]]
        marker = page.get("Marker")
        if not marker:
            break
    assert seen == names
    paginated = glacier.get_paginator("list_vaults").paginate().build_full_result()
    assert [v["VaultName"] for v in paginated["VaultList"]] == names


def test_limit_above_the_page_size_still_paginates(glacier: Any) -> None:
    for i in range(12):
        glacier.create_vault(vaultName=f"v{i:02d}")
    page = glacier.list_vaults(limit="1000")
    assert len(page["VaultList"]) == 10
    assert page["Marker"]


@pytest.mark.parametrize("limit", ["0", "-1", "ten"])
def test_bad_limit_is_rejected(glacier: Any, vault: str, limit: str) -> None:
    with pytest.raises(ClientError) as excinfo:
        glacier.list_vaults(limit=limit)
    expect_error(excinfo, "InvalidParameterValueException", 400, "limit")


def test_missing_vault_is_404_everywhere(glacier: Any) -> None:
    calls: list[Callable[[], object]] = [
        lambda: glacier.describe_vault(vaultName="ghost"),
        lambda: glacier.delete_vault(vaultName="ghost"),
        lambda: glacier.initiate_multipart_upload(vaultName="ghost", partSize=str(1 << 20)),
        lambda: glacier.list_multipart_uploads(vaultName="ghost"),
        lambda: glacier.upload_archive(vaultName="ghost", body=b"data"),
        lambda: glacier.list_jobs(vaultName="ghost"),
        lambda: glacier.initiate_job(
            vaultName="ghost", jobParameters={"Type": "inventory-retrieval"}
        ),
    ]
    for call in calls:
        with pytest.raises(ClientError) as excinfo:
            call()
        expect_error(excinfo, "ResourceNotFoundException", 404, "Vault not found for ARN")


def test_delete_only_when_empty(glacier: Any, vault: str) -> None:
    archive_id = upload_archive(glacier, vault, random_bytes(1000))
    with pytest.raises(ClientError) as excinfo:
        glacier.delete_vault(vaultName=vault)
    expect_error(excinfo, "InvalidParameterValueException", 400, "Vault not empty")
    glacier.delete_archive(vaultName=vault, archiveId=archive_id)
    glacier.delete_vault(vaultName=vault)
    assert glacier.list_vaults()["VaultList"] == []


def test_in_progress_upload_blocks_delete(glacier: Any, vault: str) -> None:
    upload_id = glacier.initiate_multipart_upload(vaultName=vault, partSize=str(1 << 20))[
        "uploadId"
    ]
    with pytest.raises(ClientError) as excinfo:
        glacier.delete_vault(vaultName=vault)
    expect_error(excinfo, "InvalidParameterValueException", 400, "Vault not empty")
    glacier.abort_multipart_upload(vaultName=vault, uploadId=upload_id)
    glacier.delete_vault(vaultName=vault)


def test_describe_counts_come_from_the_last_inventory(
    glacier: Any, vault: str, vault_emulator: VaultEmulator
) -> None:
    upload_archive(glacier, vault, random_bytes(300))
    assert glacier.describe_vault(vaultName=vault)["NumberOfArchives"] == 0  # like AWS
    glacier.initiate_job(vaultName=vault, jobParameters={"Type": "inventory-retrieval"})
    described = glacier.describe_vault(vaultName=vault)
    assert (described["NumberOfArchives"], described["SizeInBytes"]) == (1, 300)
    assert described["LastInventoryDate"].endswith("Z")


def test_unknown_path_names_no_operation(vault_emulator: VaultEmulator) -> None:
    url = urlsplit(vault_emulator.endpoint_url)
    connection = http.client.HTTPConnection(url.hostname or "", url.port, timeout=5)
    try:
        connection.request("GET", "/-/nothing-here")
        response = connection.getresponse()
        body = json.loads(response.read())
    finally:
        connection.close()
    assert response.status == 400
    assert body["code"] == "UnknownOperationException"
