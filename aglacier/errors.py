"""Errors that carry their exit code.

Exit codes are API: scripts and cron jobs branch on them. Every code has one
meaning, is listed in ``docs/exit-codes.md`` and is mapped to a process exit
status in one place only, :func:`aglacier.cli.main.main`. A test keeps the
table, the enum and the docs in step.
"""

from __future__ import annotations

from enum import IntEnum, unique
from typing import ClassVar


@unique
class ExitCode(IntEnum):
    """Process exit status of every ``aglacier`` command."""

    OK = 0
    WARNINGS = 1  # done, but something needs a look (a file changed while read)
    ERROR = 2  # failed for a reason without a more specific code
    USAGE = 3  # the command line is wrong
    CONFIG = 4  # the configuration file or a value in it is wrong
    STATE_LOCKED = 5  # another aglacier process holds the state
    STATE_DAMAGED = 6  # the state database is damaged, foreign or too new
    GPG = 7  # gpg is missing, a key is unknown, encryption or decryption failed
    SOURCE = 8  # an input file or folder is missing or unreadable
    CREDENTIALS = 9  # no AWS credentials, or access denied
    DESTINATION = 10  # the vault, bucket or folder does not exist
    PLAN = 11  # impossible part size, not enough spool space
    INTEGRITY = 12  # a checksum did not match
    RESUMABLE = 13  # interrupted or a transient failure: run `aglacier resume`
    NOT_READY = 14  # a retrieval is not ready yet: come back later
    INTERRUPTED = 130  # a second Ctrl-C: stopped at once


class AglacierError(Exception):
    """An error meant for the user: one line, no traceback, a fixed exit code."""

    exit_code: ClassVar[ExitCode] = ExitCode.ERROR

    def __init__(self, message: str, *, hint: str | None = None) -> None:
        super().__init__(message)
        self.message = message
        self.hint = hint

    def __str__(self) -> str:
        return self.message


class UsageError(AglacierError):
    exit_code = ExitCode.USAGE


class ConfigError(AglacierError):
    """A configuration value is wrong; the message names the file and key."""

    exit_code = ExitCode.CONFIG


class StateLockedError(AglacierError):
    exit_code = ExitCode.STATE_LOCKED


class StateDamagedError(AglacierError):
    exit_code = ExitCode.STATE_DAMAGED


class GpgError(AglacierError):
    exit_code = ExitCode.GPG


class SourceError(AglacierError):
    exit_code = ExitCode.SOURCE


class CredentialsError(AglacierError):
    exit_code = ExitCode.CREDENTIALS


class DestinationError(AglacierError):
    """The destination (vault, bucket, folder) does not exist or cannot be used."""

    exit_code = ExitCode.DESTINATION


class PlanError(AglacierError):
    """The upload cannot be planned: part size against limits, spool space."""

    exit_code = ExitCode.PLAN


class IntegrityError(AglacierError):
    exit_code = ExitCode.INTEGRITY


class ResumableError(AglacierError):
    """Work stopped part way; its state is saved and ``aglacier resume`` finishes it."""

    exit_code = ExitCode.RESUMABLE


class NotReadyError(AglacierError):
    exit_code = ExitCode.NOT_READY


# --- errors raised by backends -------------------------------------------------
# A backend raises only these (or subclasses of the user errors above), so that
# the engine can decide what to retry without knowing which service it talks to.


class BackendError(AglacierError):
    """A destination refused or failed a request."""

    #: Whether the same request may succeed if sent again later.
    transient: ClassVar[bool] = False


class TransientBackendError(BackendError):
    """Throttling, 5xx, timeouts, dropped connections: retry with backoff."""

    exit_code = ExitCode.RESUMABLE
    transient = True


class UploadNotFoundError(BackendError):
    """The server no longer knows the upload id (expired or aborted)."""

    exit_code = ExitCode.RESUMABLE


class CompletionUnknownError(BackendError):
    """The service cannot tell whether a complete took effect.

    A vault knows its archives only through an inventory job (hours, and up to
    a day behind), so once it has forgotten an upload it cannot say whether the
    upload was completed, aborted or expired. ``aglacier resume`` settles it.
    """

    exit_code = ExitCode.RESUMABLE


class ChecksumRejectedError(BackendError):
    """The server computed another checksum than the one we sent: never retried as is."""

    exit_code = ExitCode.INTEGRITY


class AccessDeniedError(CredentialsError, BackendError):
    """Credentials are missing, wrong, or lack a permission."""


class NoSuchDestinationError(DestinationError, BackendError):
    """The vault or bucket does not exist."""


class NoSuchArchiveError(BackendError):
    exit_code = ExitCode.DESTINATION


class InvalidRequestError(BackendError):
    """The server rejected a request as malformed: a bug or a limit we did not check."""


def primary_error(exc: BaseException) -> BaseException:
    """The error that matters inside task groups' exception groups.

    A user error wins over the cancellations and follow-on failures beside it.
    """
    if not isinstance(exc, BaseExceptionGroup):
        return exc
    leaves = _leaves(exc)
    for kind in (KeyboardInterrupt, AglacierError):
        for leaf in leaves:
            if isinstance(leaf, kind):
                return leaf
    return leaves[0] if leaves else exc


def _leaves(group: BaseExceptionGroup[BaseException]) -> list[BaseException]:
    found: list[BaseException] = []
    for inner in group.exceptions:
        found.extend(_leaves(inner) if isinstance(inner, BaseExceptionGroup) else [inner])
    return found
