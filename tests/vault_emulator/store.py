"""Persistent state of the emulator in a data folder (layout in docs/vault-emulator.md).

All metadata lives in memory and is written through as small JSON files; every method runs on
the server's event loop thread, so there are no races between requests. Bulk data moves
(receiving bodies, joining parts) happen in worker threads before the store is told.

    DATA/tmp/                                   bodies being received (emptied at start)
    DATA/vaults/<vault>/vault.json
    DATA/vaults/<vault>/archives/<archive-id>   the archive's bytes, exactly
    DATA/vaults/<vault>/archives/<archive-id>.json
    DATA/vaults/<vault>/uploads/<upload-id>/upload.json, <start>.<sha256> (part bytes)
    DATA/vaults/<vault>/completed/<upload-id>.json
    DATA/vaults/<vault>/jobs/<job-id>.json, <job-id>.inventory
"""

from __future__ import annotations

import shutil
from dataclasses import asdict, dataclass, field
from pathlib import Path

from .errors import GlacierError, invalid, not_found
from .records import Archive, Completion, Job, Part, Upload, Vault, iso_time, new_id, read_json
from .records import write_json as _write

MAX_VAULTS = 1000


@dataclass
class _VaultState:
    vault: Vault
    archives: dict[str, Archive] = field(default_factory=dict)
    uploads: dict[str, Upload] = field(default_factory=dict)
    completions: dict[str, Completion] = field(default_factory=dict)
    jobs: dict[str, Job] = field(default_factory=dict)


class Store:
    """Vaults, archives, uploads and jobs under one data folder."""

    def __init__(self, root: Path, account_id: str, region: str) -> None:
        self.root = root
        self.account_id = account_id
        self.region = region
        self.tmp_dir = root / "tmp"
        self._vaults_dir = root / "vaults"
        shutil.rmtree(self.tmp_dir, ignore_errors=True)
        self.tmp_dir.mkdir(parents=True)
        self._vaults_dir.mkdir(exist_ok=True)
        self._state: dict[str, _VaultState] = {}
        for vault_dir in sorted(self._vaults_dir.iterdir()):
            if (vault_dir / "vault.json").is_file():
                self._state[vault_dir.name] = _load_vault(vault_dir)

    # -- paths ----------------------------------------------------------------------------

    def vault_arn(self, name: str) -> str:
        """The vault's ARN, as AWS spells it."""
        return f"arn:aws:glacier:{self.region}:{self.account_id}:vaults/{name}"

    def archive_path(self, vault: str, archive_id: str) -> Path:
        """Where a finished archive's bytes are (whether or not it exists)."""
        return self._vaults_dir / vault / "archives" / archive_id

    def part_path(self, vault: str, upload_id: str, part: Part) -> Path:
        """Where a stored part's bytes are."""
        return self._vaults_dir / vault / "uploads" / upload_id / part.file_name

    def inventory_path(self, vault: str, job_id: str) -> Path:
        """Where an inventory job's output is."""
        return self._vaults_dir / vault / "jobs" / f"{job_id}.inventory"

    def tmp_path(self) -> Path:
        """A fresh name for a file being received."""
        return self.tmp_dir / new_id(16)

    # -- vaults ---------------------------------------------------------------------------

    def create_vault(self, name: str) -> Vault:
        """Create a vault, or return the existing one (CreateVault is idempotent)."""
        if name in self._state:
            return self._state[name].vault
        if len(self._state) >= MAX_VAULTS:
            raise GlacierError("LimitExceededException", f"At most {MAX_VAULTS} vaults")
        vault = Vault(name=name, created=iso_time())
        vault_dir = self._vaults_dir / name
        for sub in ("archives", "uploads", "completed", "jobs"):
            (vault_dir / sub).mkdir(parents=True, exist_ok=True)
        _write(vault_dir / "vault.json", asdict(vault))
        self._state[name] = _VaultState(vault)
        return vault

    def vault(self, name: str) -> Vault:
        """The vault, or 404."""
        return self._vault_state(name).vault

    def vaults(self) -> list[Vault]:
        """All vaults, ASCII-sorted by name like ListVaults."""
        return [self._state[n].vault for n in sorted(self._state)]

    def delete_vault(self, name: str) -> None:
        """Delete an empty vault (no archives, no uploads in progress)."""
        state = self._vault_state(name)
        if self.archives(name) or state.uploads:
            raise invalid(f"Vault not empty or recently written to: {self.vault_arn(name)}")
        del self._state[name]
        shutil.rmtree(self._vaults_dir / name)

    def note_inventory(self, name: str, when: str, archives: list[Archive]) -> None:
        """Record the vault's latest inventory (DescribeVault reports from it)."""
        state = self._vault_state(name)
        state.vault.last_inventory = when
        state.vault.inventory_archives = len(archives)
        state.vault.inventory_size = sum(a.size for a in archives)
        _write(self._vaults_dir / name / "vault.json", asdict(state.vault))

    # -- archives -------------------------------------------------------------------------

    def add_archive(self, vault: str, data_file: Path, archive: Archive) -> None:
        """Move a fully received, verified file in as a new archive."""
        state = self._vault_state(vault)
        data_file.replace(self.archive_path(vault, archive.archive_id))
        self._write_archive(vault, archive)
        state.archives[archive.archive_id] = archive

    def archive(self, vault: str, archive_id: str) -> Archive:
        """A live archive, or 404."""
        found = self._vault_state(vault).archives.get(archive_id)
        if found is None or found.deleted:
            raise not_found(f"Archive not found: {archive_id}")
        return found

    def archives(self, vault: str) -> list[Archive]:
        """Live archives, oldest first."""
        found = self._vault_state(vault).archives.values()
        return sorted((a for a in found if not a.deleted), key=lambda a: a.created)

    def delete_archive(self, vault: str, archive_id: str) -> None:
        """Delete an archive; deleting a deleted one again succeeds, like AWS."""
        archive = self._vault_state(vault).archives.get(archive_id)
        if archive is None:
            raise not_found(f"Archive not found: {archive_id}")
        if archive.deleted:
            return
        archive.deleted = iso_time()
        self._write_archive(vault, archive)
        self.archive_path(vault, archive_id).unlink(missing_ok=True)

    def _write_archive(self, vault: str, archive: Archive) -> None:
        path = self.archive_path(vault, archive.archive_id)
        _write(path.with_name(path.name + ".json"), asdict(archive))

    # -- uploads --------------------------------------------------------------------------

    def create_upload(self, vault: str, part_size: int, description: str) -> Upload:
        """Start a multipart upload."""
        self._vault_state(vault)
        upload = Upload(new_id(92), part_size, description, iso_time())
        (self._vaults_dir / vault / "uploads" / upload.upload_id).mkdir()
        self._write_upload(vault, upload)
        self._state[vault].uploads[upload.upload_id] = upload
        return upload

    def upload(self, vault: str, upload_id: str) -> Upload:
        """An in-progress upload, or 404."""
        found = self._vault_state(vault).uploads.get(upload_id)
        if found is None:
            raise not_found(f"The upload ID was not found: {upload_id}")
        return found

    def uploads(self, vault: str) -> list[Upload]:
        """In-progress uploads, by id (ListMultipartUploads promises no order)."""
        state = self._vault_state(vault)
        return [state.uploads[u] for u in sorted(state.uploads)]

    def store_part(self, vault: str, upload_id: str, part: Part, data_file: Path) -> None:
        """Move a received, verified part in, replacing any earlier part at that offset."""
        upload = self.upload(vault, upload_id)
        data_file.replace(self.part_path(vault, upload_id, part))
        old = upload.parts.get(part.start)
        upload.parts[part.start] = part
        self._write_upload(vault, upload)
        if old is not None and old.file_name != part.file_name:
            self.part_path(vault, upload_id, old).unlink(missing_ok=True)

    def finish_upload(self, vault: str, upload_id: str, data_file: Path, archive: Archive) -> None:
        """Turn an upload into an archive: the joined parts in ``data_file`` become it."""
        self.upload(vault, upload_id)
        self.add_archive(vault, data_file, archive)
        done = Completion(upload_id, archive.archive_id, archive.size, archive.tree_hash)
        _write(self._vaults_dir / vault / "completed" / f"{upload_id}.json", asdict(done))
        self._vault_state(vault).completions[upload_id] = done
        self.remove_upload(vault, upload_id)

    def completion(self, vault: str, upload_id: str) -> Completion | None:
        """What an already completed upload produced, if it did."""
        return self._vault_state(vault).completions.get(upload_id)

    def remove_upload(self, vault: str, upload_id: str) -> None:
        """Drop an in-progress upload and its parts (abort, completion, expiry)."""
        self._vault_state(vault).uploads.pop(upload_id, None)
        shutil.rmtree(self._vaults_dir / vault / "uploads" / upload_id, ignore_errors=True)

    def forget_upload(self, upload_id: str) -> bool:
        """Forget an upload id everywhere, as if it had expired; False if it was unknown."""
        found = False
        for name, state in self._state.items():
            if upload_id in state.uploads:
                self.remove_upload(name, upload_id)
                found = True
            if state.completions.pop(upload_id, None) is not None:
                (self._vaults_dir / name / "completed" / f"{upload_id}.json").unlink()
                found = True
        return found

    def _write_upload(self, vault: str, upload: Upload) -> None:
        path = self._vaults_dir / vault / "uploads" / upload.upload_id / "upload.json"
        _write(path, upload.to_json())

    # -- jobs -----------------------------------------------------------------------------

    def add_job(self, vault: str, job: Job) -> None:
        """Record a new job, numbering it after every earlier one."""
        jobs = self._vault_state(vault).jobs
        job.seq = 1 + max((j.seq for j in jobs.values()), default=0)
        jobs[job.job_id] = job
        self.save_job(vault, job)

    def save_job(self, vault: str, job: Job) -> None:
        """Write a changed job back."""
        _write(self._vaults_dir / vault / "jobs" / f"{job.job_id}.json", asdict(job))

    def job(self, vault: str, job_id: str) -> Job:
        """A job, or 404."""
        found = self._vault_state(vault).jobs.get(job_id)
        if found is None:
            raise not_found(f"The job ID was not found: {job_id}")
        return found

    def jobs(self, vault: str) -> list[Job]:
        """Jobs sorted by initiation time, as ListJobs returns them."""
        return sorted(self._vault_state(vault).jobs.values(), key=lambda j: j.seq)

    def all_jobs(self) -> list[tuple[str, Job]]:
        """Every job of every vault, with its vault name."""
        return [(name, job) for name, state in self._state.items() for job in state.jobs.values()]

    # -- helpers --------------------------------------------------------------------------

    def _vault_state(self, name: str) -> _VaultState:
        state = self._state.get(name)
        if state is None:
            raise not_found(f"Vault not found for ARN: {self.vault_arn(name)}")
        return state


def _load_vault(vault_dir: Path) -> _VaultState:
    state = _VaultState(Vault(**read_json(vault_dir / "vault.json")))
    for meta in (vault_dir / "archives").glob("*.json"):
        archive = Archive(**read_json(meta))
        state.archives[archive.archive_id] = archive
    for upload_dir in (vault_dir / "uploads").iterdir():
        upload = Upload.from_json(read_json(upload_dir / "upload.json"))
        state.uploads[upload.upload_id] = upload
        _drop_stray_files(upload_dir, upload)
    for meta in (vault_dir / "completed").glob("*.json"):
        done = Completion(**read_json(meta))
        state.completions[done.upload_id] = done
    for meta in (vault_dir / "jobs").glob("*.json"):
        job = Job(**read_json(meta))
        state.jobs[job.job_id] = job
    return state


def _drop_stray_files(upload_dir: Path, upload: Upload) -> None:
    # A crash between storing a part's bytes and its metadata leaves an unreferenced file.
    wanted = {p.file_name for p in upload.parts.values()} | {"upload.json"}
    for path in upload_dir.iterdir():
        if path.name not in wanted:
            path.unlink()
