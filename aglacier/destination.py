"""Where archives go: a destination URL parsed into a typed, validated location.

``s3://BUCKET[/PREFIX]`` (S3 with a Glacier storage class), ``glacier://VAULT``
(a Glacier vault) or ``file:///ABSOLUTE/PATH`` (a local folder).
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass
from enum import StrEnum
from pathlib import Path
from typing import ClassVar, Literal, TypeAlias
from urllib.parse import quote, unquote


def _quoted(text: str) -> str:
    """A value quoted for an error message, on one line, not too long."""
    shown = json.dumps(text, ensure_ascii=False)
    return shown if len(shown) <= 60 else shown[:57] + "..."


class StorageClass(StrEnum):
    """S3 storage classes an archive may be written in (the value is what S3 expects)."""

    STANDARD = "STANDARD"
    STANDARD_IA = "STANDARD_IA"
    ONEZONE_IA = "ONEZONE_IA"
    INTELLIGENT_TIERING = "INTELLIGENT_TIERING"
    GLACIER = "GLACIER"
    GLACIER_IR = "GLACIER_IR"
    DEEP_ARCHIVE = "DEEP_ARCHIVE"


_BUCKET_RE = re.compile(r"[a-z0-9][a-z0-9.-]*[a-z0-9]")
_IPV4_RE = re.compile(r"\d+\.\d+\.\d+\.\d+")
_BUCKET_RESERVED_PREFIXES = ("xn--", "sthree-", "amzn-s3-demo-")
_BUCKET_RESERVED_SUFFIXES = ("-s3alias", "--ol-s3", ".mrap", "--x-s3", "--table-s3")
_VAULT_RE = re.compile(r"[A-Za-z0-9_.-]{1,255}")
_CONTROL_RE = re.compile(r"[\x00-\x1f\x7f]")
# Room for the archive name under the prefix: an S3 key is at most 1,024 bytes.
_MAX_PREFIX_BYTES = 512


@dataclass(frozen=True)
class S3Location:
    """``s3://BUCKET[/PREFIX]``: archives are objects under ``PREFIX/`` in ``BUCKET``."""

    bucket: str
    prefix: str = ""  # without leading or trailing slash; "" is the bucket's root
    kind: ClassVar[Literal["s3"]] = "s3"

    def __post_init__(self) -> None:
        _check_bucket(self.bucket)
        _check_prefix(self.prefix)

    def __str__(self) -> str:
        return f"s3://{self.bucket}/{self.prefix}" if self.prefix else f"s3://{self.bucket}"

    def key(self, name: str) -> str:
        """The object key of ``name`` under this location's prefix."""
        return f"{self.prefix}/{name}" if self.prefix else name


@dataclass(frozen=True)
class VaultLocation:
    """``glacier://VAULT``: a Glacier vault in the configured region and account."""

    vault: str
    kind: ClassVar[Literal["glacier"]] = "glacier"

    def __post_init__(self) -> None:
        if not _VAULT_RE.fullmatch(self.vault):
            raise ValueError(
                f"vault name {_quoted(self.vault)} must be 1 to 255 letters, digits, "
                "underscores, hyphens or dots"
            )

    def __str__(self) -> str:
        return f"glacier://{self.vault}"


@dataclass(frozen=True)
class FileLocation:
    """``file:///ABSOLUTE/PATH``: archives are files in a local folder (a disk, a mount)."""

    path: Path
    kind: ClassVar[Literal["file"]] = "file"

    def __post_init__(self) -> None:
        if not self.path.is_absolute() or "\0" in str(self.path):
            raise ValueError(f"the folder {_quoted(str(self.path))} must be an absolute path")

    def __str__(self) -> str:
        return "file://" + quote(self.path.as_posix(), safe="/")


Location: TypeAlias = S3Location | VaultLocation | FileLocation

_URL_FORMS = "s3://BUCKET[/PREFIX], glacier://VAULT or file:///ABSOLUTE/PATH"


def parse_location(text: str) -> Location:
    """Parse a destination URL; ``ValueError`` says what is wrong, fit for the user."""
    scheme, sep, rest = text.strip().partition("://")
    try:
        match scheme.lower() if sep else None:
            case "s3":
                bucket, _, prefix = rest.partition("/")
                return S3Location(bucket, prefix.strip("/"))
            case "glacier":
                return _parse_vault(rest)
            case "file":
                return _parse_file(rest)
    except ValueError as exc:
        raise ValueError(f"{_quoted(text)}: {exc}") from None
    raise ValueError(f"must be {_URL_FORMS}, not {_quoted(text)}")


def _parse_vault(rest: str) -> VaultLocation:
    vault, _, path = rest.partition("/")
    if path:
        raise ValueError("a vault URL has no path: glacier://VAULT")
    return VaultLocation(vault)


def _parse_file(rest: str) -> FileLocation:
    host, slash, path = rest.partition("/")
    if host not in ("", "localhost") or not slash:
        raise ValueError("a folder URL needs an absolute path, e.g. file:///mnt/disk/aglacier")
    return FileLocation(Path("/" + unquote(path)))


def _check_bucket(name: str) -> None:
    problem = _bucket_problem(name)
    if problem:
        raise ValueError(f"bucket name {_quoted(name)} {problem}")


def _bucket_problem(name: str) -> str | None:
    if not 3 <= len(name) <= 63:
        return "must be 3 to 63 characters long"
    if not _BUCKET_RE.fullmatch(name):
        return (
            "may use only lowercase letters, digits, dots and hyphens, "
            "and must start and end with a letter or digit"
        )
    if ".." in name:
        return "must not have two dots in a row"
    if _IPV4_RE.fullmatch(name):
        return "must not look like an IP address"
    if name.startswith(_BUCKET_RESERVED_PREFIXES) or name.endswith(_BUCKET_RESERVED_SUFFIXES):
        return "uses a prefix or suffix that AWS reserves"
    return None


def _check_prefix(prefix: str) -> None:
    if prefix != prefix.strip("/") or "//" in prefix:
        raise ValueError(f"prefix {_quoted(prefix)} must not have empty parts (//)")
    if any(part != part.strip() for part in prefix.split("/")):
        # A URL is stripped of white space when read, so such a prefix would change.
        raise ValueError(f"prefix {_quoted(prefix)} must not start or end a part with a space")
    if _CONTROL_RE.search(prefix) or "?" in prefix or "#" in prefix:
        raise ValueError(f"prefix {_quoted(prefix)} must not contain ?, # or control characters")
    if len(prefix.encode()) > _MAX_PREFIX_BYTES:
        raise ValueError(f"prefix must be at most {_MAX_PREFIX_BYTES} bytes long")
