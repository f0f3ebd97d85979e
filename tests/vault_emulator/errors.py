"""Glacier error responses: a JSON body botocore's rest-json parser turns into ``ClientError``.

botocore takes ``Error.Code`` from the body's ``code`` and the message from ``message``; the
HTTP status must match the one in the service model or retry logic misjudges the error.
"""

from __future__ import annotations

import json
import secrets

from aiohttp import web

# Status of every error code the emulator can send, as in botocore's glacier service model
# (ThrottlingException is not modelled there; AWS sends it with 400 like other throttles).
ERROR_STATUS: dict[str, int] = {
    "InvalidParameterValueException": 400,
    "MissingParameterValueException": 400,
    "LimitExceededException": 400,
    "ThrottlingException": 400,
    "PolicyEnforcedException": 400,
    "InsufficientCapacityException": 400,
    "ResourceNotFoundException": 404,
    "RequestTimeoutException": 408,
    "ServiceUnavailableException": 500,
    # Not Glacier's: the emulator's answer to a path or method no operation has.
    "UnknownOperationException": 400,
}


class GlacierError(Exception):
    """An error the emulator answers with, in Glacier's wire format."""

    def __init__(self, code: str, message: str) -> None:
        super().__init__(f"{code}: {message}")
        self.code = code
        self.message = message
        self.status = ERROR_STATUS[code]

    def to_response(self) -> web.Response:
        """The HTTP response AWS would send for this error."""
        body = {
            "code": self.code,
            "message": self.message,
            "type": "Server" if self.status >= 500 else "Client",
        }
        return web.Response(
            status=self.status,
            body=json.dumps(body).encode(),
            content_type="application/json",
            headers={"x-amzn-RequestId": request_id()},
        )


class DropConnection(Exception):
    """Raised by a handler to close the connection without any answer (a fault)."""


def request_id() -> str:
    """A fresh request id, shaped like AWS's (only for logs; nothing checks it)."""
    return secrets.token_urlsafe(33)


def invalid(message: str) -> GlacierError:
    """400 InvalidParameterValueException."""
    return GlacierError("InvalidParameterValueException", message)


def missing(message: str) -> GlacierError:
    """400 MissingParameterValueException."""
    return GlacierError("MissingParameterValueException", message)


def not_found(message: str) -> GlacierError:
    """404 ResourceNotFoundException."""
    return GlacierError("ResourceNotFoundException", message)
