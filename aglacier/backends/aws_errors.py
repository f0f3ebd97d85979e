"""One mapping from botocore and aiohttp errors to aglacier's backend errors.

Backends wrap every AWS call in :func:`aws_errors`, naming what they were
doing and where, so that every error that reaches the user is one line that
names the bucket or vault, and so that the retry layer can tell transient
failures (retry with backoff) from permanent ones (never retry as is).

What a 404 means depends on the call: a missing vault, a forgotten upload, or
an archive that is gone. Vaults answer all three with the same
``ResourceNotFoundException``, so the caller says which it is.
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

import aiohttp
from botocore.exceptions import (
    BotoCoreError,
    ClientError,
    CredentialRetrievalError,
    FlexibleChecksumError,
    HTTPClientError,
    IncompleteReadError,
    NoCredentialsError,
    NoRegionError,
    ParamValidationError,
    PartialCredentialsError,
    ProfileNotFound,
    SSOError,
    TokenRetrievalError,
)
from botocore.exceptions import ConnectionError as BotocoreConnectionError

from aglacier.errors import (
    AccessDeniedError,
    AglacierError,
    BackendError,
    ChecksumRejectedError,
    ConfigError,
    CredentialsError,
    InvalidRequestError,
    NoSuchDestinationError,
    NotReadyError,
    TransientBackendError,
    UploadNotFoundError,
)

ACCESS_DENIED = frozenset(
    {
        "AccessDenied",
        "AccessDeniedException",
        "AllAccessDisabled",
        "InvalidAccessKeyId",
        "InvalidClientTokenId",
        "InvalidSecurity",
        "InvalidSignatureException",
        "InvalidToken",
        "ExpiredToken",
        "ExpiredTokenException",
        "MissingAuthenticationToken",
        "MissingAuthenticationTokenException",
        "SignatureDoesNotMatch",
        "UnrecognizedClientException",
        "403",  # HEAD requests have no body, hence no code but the status
    }
)

THROTTLING = frozenset(
    {
        "Throttling",
        "ThrottlingException",
        "ThrottledException",
        "RequestThrottled",
        "RequestThrottledException",
        "SlowDown",
        "RequestLimitExceeded",
        "TooManyRequestsException",
        "BandwidthLimitExceeded",
        "ProvisionedThroughputExceededException",
        "PriorRequestNotComplete",
    }
)

SERVER_TROUBLE = frozenset(
    {
        "InternalError",
        "InternalFailure",
        "ServiceUnavailable",
        "ServiceUnavailableException",
        "RequestTimeout",
        "RequestTimeoutException",
        "OperationAborted",  # S3: a conflicting operation is in progress on the bucket
        # A vault has no Expedited capacity right now; later (or another tier) may work.
        "InsufficientCapacityException",
    }
)

CHECKSUM_REJECTED = frozenset(
    {
        "BadDigest",
        "InvalidDigest",
        "XAmzContentSHA256Mismatch",
        "InvalidChecksum",
        # Complete: a part on the server is not the one in our list (ETag or checksum).
        "InvalidPart",
    }
)

NO_SUCH_DESTINATION = frozenset({"NoSuchBucket"})
NO_SUCH_UPLOAD = frozenset({"NoSuchUpload"})
# S3 GetObject on an archived object that has not been restored (HTTP 403).
NOT_READY = frozenset({"InvalidObjectState"})
NOT_FOUND = frozenset({"ResourceNotFoundException", "NoSuchKey", "NotFound", "404"})

# Glacier answers a wrong tree hash or SHA256 with InvalidParameterValueException,
# like any other bad parameter: only the message tells them apart.
_CHECKSUM_MESSAGE = re.compile(r"checksum|digest", re.IGNORECASE)

# A vault's LimitExceededException is about too many vaults, tags or provisioned
# capacity units: a hard account limit, not a request rate, so it is permanent
# (botocore's "standard" retry mode would retry it as throttling).
_PERMANENT_LIMITS = frozenset({"LimitExceededException", "PolicyEnforcedException"})


@contextmanager
def aws_errors(
    action: str,
    destination: str,
    *,
    not_found: type[BackendError] = NoSuchDestinationError,
    not_found_message: str | None = None,
) -> Iterator[None]:
    """Translate AWS errors raised inside the block into :class:`~aglacier.errors.BackendError`.

    ``action`` says what was attempted (``"upload part 3 to s3://b/k"``),
    ``destination`` names the bucket or vault (``"bucket 'b'"``). A 404 (vault
    ``ResourceNotFoundException``, S3 ``NoSuchKey``) becomes ``not_found``
    with ``not_found_message``, or a message built from ``action``.
    """
    try:
        yield
    except (BotoCoreError, ClientError, aiohttp.ClientError, TimeoutError, ConnectionError) as exc:
        raise translate(
            exc,
            action=action,
            destination=destination,
            not_found=not_found,
            not_found_message=not_found_message,
        ) from exc


def translate(
    exc: BaseException,
    *,
    action: str,
    destination: str,
    not_found: type[BackendError] = NoSuchDestinationError,
    not_found_message: str | None = None,
) -> AglacierError:
    """The aglacier error for ``exc`` (see :func:`aws_errors` for the arguments)."""
    if isinstance(exc, ClientError):
        return _client_error(exc, action, destination, not_found, not_found_message)
    if isinstance(exc, FlexibleChecksumError):
        return ChecksumRejectedError(f"{action}: the data does not match its checksum: {exc}")
    if isinstance(exc, _CONNECTION_ERRORS):
        return TransientBackendError(f"{action}: connection failed: {_describe(exc)}")
    if isinstance(exc, _CREDENTIAL_ERRORS):
        return credentials_error(exc, None)
    if isinstance(exc, ParamValidationError):
        return InvalidRequestError(f"{action}: invalid request (a bug in aglacier): {exc}")
    return BackendError(f"{action}: {_describe(exc)}")


_CONNECTION_ERRORS = (
    HTTPClientError,
    BotocoreConnectionError,
    IncompleteReadError,
    aiohttp.ClientError,
    TimeoutError,  # asyncio's too, since 3.11
    ConnectionError,  # the builtin: a reset or refused socket
)
_CREDENTIAL_ERRORS = (
    NoCredentialsError,
    PartialCredentialsError,
    ProfileNotFound,
    CredentialRetrievalError,
    TokenRetrievalError,
    SSOError,
)


def _client_error(
    exc: ClientError,
    action: str,
    destination: str,
    not_found: type[BackendError],
    not_found_message: str | None,
) -> AglacierError:
    code, status, message = error_details(exc)
    reason = f"{code} (HTTP {status})" if code != str(status) else f"HTTP {status}"
    if message:
        reason += f": {message}"
    detail = f"{action}: {reason}"
    if code in ACCESS_DENIED:
        return _access_denied(action, destination, reason)
    if code in NO_SUCH_DESTINATION:
        return NoSuchDestinationError(f"{destination} does not exist")
    if code in NO_SUCH_UPLOAD:
        return UploadNotFoundError(not_found_message or f"{action}: the upload no longer exists")
    if code in NOT_READY:
        return NotReadyError(f"{action}: the archive is not restored (yet): {reason}")
    if code in CHECKSUM_REJECTED or (
        code == "InvalidParameterValueException" and _CHECKSUM_MESSAGE.search(message)
    ):
        return ChecksumRejectedError(f"{action}: the server rejected our checksum: {reason}")
    if code in _PERMANENT_LIMITS:
        return InvalidRequestError(f"{action}: an account or vault limit was reached: {reason}")
    if code in NOT_FOUND or status == 404:
        return not_found(not_found_message or detail)
    if code in THROTTLING or code in SERVER_TROUBLE or status in (408, 429) or status >= 500:
        return TransientBackendError(detail)
    if status == 403:
        return _access_denied(action, destination, reason)
    return InvalidRequestError(detail)


def _access_denied(action: str, destination: str, reason: str) -> AglacierError:
    return AccessDeniedError(
        f"{action}: access denied ({reason})",
        hint=f"check the credentials, and that they may use {destination}",
    )


def error_details(exc: ClientError) -> tuple[str, int, str]:
    """The error code, HTTP status and message of a botocore ``ClientError``."""
    response: dict[str, Any] = exc.response
    error = response.get("Error", {})
    status = int(response.get("ResponseMetadata", {}).get("HTTPStatusCode", 0))
    code = str(error.get("Code") or status or "Unknown")
    message = " ".join(str(error.get("Message", "")).split())  # one line
    return code, status, message


def credentials_error(exc: BaseException, profile: str | None) -> AglacierError:
    """The user-facing error for a failure to find credentials or set up a client."""
    if isinstance(exc, ProfileNotFound):
        name = profile or exc.kwargs.get("profile")
        return CredentialsError(
            f"the AWS profile {name!r} does not exist: "
            f"add it with `aws configure --profile {name}` or name another profile"
        )
    if isinstance(exc, NoCredentialsError):
        return no_credentials_error(profile)
    if isinstance(exc, _CREDENTIAL_ERRORS):
        return CredentialsError(f"cannot use the AWS credentials: {_describe(exc)}")
    if isinstance(exc, NoRegionError):
        return ConfigError("no AWS region configured: set one in the configuration")
    return ConfigError(f"cannot set up the AWS client: {_describe(exc)}")


def no_credentials_error(profile: str | None) -> CredentialsError:
    """No credentials anywhere: say where botocore looked and how to add some."""
    name = profile or "default"
    configure = "aws configure" + (f" --profile {profile}" if profile else "")
    return CredentialsError(
        f"no AWS credentials found for profile {name!r}: run `{configure}`, "
        "or set AWS_ACCESS_KEY_ID and AWS_SECRET_ACCESS_KEY"
    )


def _describe(exc: BaseException) -> str:
    text = " ".join(str(exc).split())
    return text or type(exc).__name__
