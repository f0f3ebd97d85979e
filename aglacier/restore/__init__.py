"""Restores and verifications: retrieval requests, verified resumable downloads,
decryption and safe extraction.

Typical use (the ``restore`` and ``verify`` commands)::

    archive = await select_archive(store, "~/photos", on_or_before=None)
    work = Work(store, backend, reporter, spool_dir, concurrency, confirm)
    await restore_archive(work, archive, Retrieve(None, days=7),
                          Destination(to=None, archive_only=False, overwrite=False),
                          decryption=lambda: resolve_decryption(config.encryption, env))

Modules: :mod:`~aglacier.restore.select` (which archive),
:mod:`~aglacier.restore.pricing` (waits and costs), :mod:`~aglacier.restore.tracking`
(retrievals recorded, never paid twice), :mod:`~aglacier.restore.fetch` and
:mod:`~aglacier.restore.download` (verified, resumable download),
:mod:`~aglacier.restore.checks` (checksums), :mod:`~aglacier.restore.decrypt`,
:mod:`~aglacier.restore.extract` and :mod:`~aglacier.restore.place` (gpg, tar,
and putting files into place safely), :mod:`~aglacier.restore.run` (the commands).
"""

from aglacier.restore.decrypt import Decryption, resolve_decryption
from aglacier.restore.fetch import Confirm, Declined, Work
from aglacier.restore.run import Destination, Retrieve, restore_archive, verify_archive
from aglacier.restore.select import parse_date, select_archive

__all__ = [
    "Confirm",
    "Declined",
    "Decryption",
    "Destination",
    "Retrieve",
    "Work",
    "parse_date",
    "resolve_decryption",
    "restore_archive",
    "select_archive",
    "verify_archive",
]
