"""Configuration: a TOML file, the environment and command-line flags, validated once.

Precedence, highest first: a command-line flag (an *override*), the configuration file,
the built-in default. The file is ``--config FILE``, else ``$AGLACIER_CONFIG``, else
``$XDG_CONFIG_HOME/aglacier/config.toml`` (``~/.config/aglacier/config.toml``).

This is the only module that reads the environment, and only from the mapping it is
given (``Context.env``), never ``os.environ``, so that tests can pass their own. Every
error is one line naming the file (or flag), the key and what is wrong; a bad value in
the file is a :class:`ConfigError`, a bad flag value a :class:`UsageError`.
"""

from __future__ import annotations

import difflib
import json
import os
import pwd
import re
import tomllib
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from datetime import timedelta
from pathlib import Path
from types import MappingProxyType
from typing import Any, Literal, NamedTuple, TypeAlias

from aglacier.destination import (
    FileLocation,
    Location,
    StorageClass,
    parse_location,
)
from aglacier.errors import AglacierError, ConfigError, UsageError
from aglacier.units import GiB, KiB, MiB, TiB, parse_duration, parse_size

MAX_CONCURRENCY = 64
MIN_PART_SIZE = MiB
_CONTROL_RE = re.compile(r"[\x00-\x1f\x7f]")

# --- the sections -----------------------------------------------------------------


@dataclass(frozen=True)
class DestinationConfig:
    """Where archives go. ``storage_class`` is used by S3 only; ``profile``,
    ``region`` and ``endpoint_url`` by S3 and vaults (None: botocore decides)."""

    url: Location
    storage_class: StorageClass = StorageClass.DEEP_ARCHIVE
    profile: str | None = None
    region: str | None = None
    endpoint_url: str | None = None

    def __post_init__(self) -> None:
        _validate(
            self,
            profile=_optional(_check_profile),
            region=_optional(_check_region),
            endpoint_url=_optional(_check_endpoint),
        )


@dataclass(frozen=True)
class EncryptionConfig:
    """gpg public-key encryption to ``recipients``, or symmetric with a passphrase
    read from ``passphrase_file``: one or the other (neither: not configured yet)."""

    recipients: tuple[str, ...] = ()
    passphrase_file: Path | None = None
    gnupghome: Path | None = None

    def __post_init__(self) -> None:
        _validate(
            self,
            recipients=_check_recipients,
            passphrase_file=_optional(_check_absolute),
            gnupghome=_optional(_check_absolute),
        )
        if self.recipients and self.passphrase_file:
            raise ValueError("recipients and passphrase_file cannot be used together")

    @property
    def mode(self) -> Literal["public-key", "symmetric"] | None:
        """Which kind of encryption is configured, if any."""
        if self.recipients:
            return "public-key"
        return "symmetric" if self.passphrase_file else None


@dataclass(frozen=True)
class UploadConfig:
    """How archives are sent. ``part_size`` None means "auto": the part-size planner
    chooses from the archive size and the backend's limits (which it also checks)."""

    part_size: int | None = None
    concurrency: int = 4

    def __post_init__(self) -> None:
        _validate(self, part_size=_optional(_check_part_size), concurrency=_check_concurrency)

    def memory_in_flight(self, part_size: int) -> int:
        """Bytes held by part uploads in flight: ``concurrency × part_size``."""
        return self.concurrency * part_size


@dataclass(frozen=True)
class BackupConfig:
    """What is backed up, how often, and where the ciphertext waits for its upload."""

    spool_dir: Path
    directories: tuple[Path, ...] = ()
    min_interval: timedelta = timedelta(0)
    exclude_tag: str = "NOBACKUP"

    def __post_init__(self) -> None:
        _validate(
            self,
            spool_dir=_check_absolute,
            directories=_check_directories,
            min_interval=_check_interval,
            exclude_tag=_check_exclude_tag,
        )


class ConfigFile(NamedTuple):
    """The configuration file in use and who chose it."""

    path: Path
    origin: str  # "default", "default ($XDG_CONFIG_HOME)", "flag --config", "env AGLACIER_CONFIG"
    explicit: bool  # named by a flag or the environment: it must exist


FileValue: TypeAlias = str | int | list[str] | None


class Setting(NamedTuple):
    """One key as it would be written in the file (None: not set) and its origin."""

    key: str
    value: FileValue
    origin: str


@dataclass(frozen=True)
class Config:
    """The effective configuration: validated at construction, immutable.

    Resources of a backup, for an archive of *A* bytes of ciphertext (about the
    size of the source), part size *P* and ``upload.concurrency`` *C*:

    - memory ≈ C × P for the parts in flight (each upload holds its part), plus a few
      MiB for tar, gpg and hashing: 4 × 8 MiB = 32 MiB, but 16 × 512 MiB = 8 GiB;
    - disk: A bytes in ``backup.spool_dir``, because the whole ciphertext stays in the
      spool until the upload completes (gpg output cannot be reproduced, so the spool
      is what makes a resume possible);
    - connections: C to the destination.

    ``origins`` maps each dotted key (``"upload.concurrency"``) to where its value
    came from: ``"default"``, the file's path, or a flag such as ``"flag --to"``.
    ``file`` is the configuration file that was read, None if there was none.
    """

    destination: DestinationConfig
    encryption: EncryptionConfig
    upload: UploadConfig
    backup: BackupConfig
    file: ConfigFile | None = None
    origins: Mapping[str, str] = field(default_factory=dict)

    def origin(self, key: str) -> str:
        """Where the value of the dotted ``key`` came from."""
        if key not in _KEYS:
            raise KeyError(key)
        return self.origins.get(key, "default")

    def settings(self) -> tuple[Setting, ...]:
        """Every key in file order, as it would be written in the file."""
        return tuple(
            Setting(dotted, spec.show(self._value(dotted)), self.origin(dotted))
            for dotted, spec in _KEYS.items()
        )

    def _value(self, dotted: str) -> Any:
        section, name = dotted.split(".")
        return getattr(getattr(self, section), name)


# --- checks shared by construction and parsing ------------------------------------


def _validate(obj: object, **checks: Callable[[Any], None]) -> None:
    for name, check in checks.items():
        try:
            check(getattr(obj, name))
        except ValueError as exc:
            raise ValueError(f"{name}: {exc}") from None


def _optional(check: Callable[[Any], None]) -> Callable[[Any], None]:
    return lambda value: None if value is None else check(value)


def _check_profile(name: str) -> None:
    if not name.strip() or _CONTROL_RE.search(name):
        raise ValueError(f"must be an AWS profile name, not {_show(name)}")


def _check_region(name: str) -> None:
    if not re.fullmatch(r"[a-z0-9]+(-[a-z0-9]+)*", name):
        raise ValueError(f"must be a region name such as us-east-1, not {_show(name)}")


_ENDPOINT_RE = re.compile(r"(https?)://(\[[0-9a-fA-F:.]+\]|[A-Za-z0-9.-]+)(?::(\d{1,5}))?")


def _check_endpoint(url: str) -> None:
    match = _ENDPOINT_RE.fullmatch(url)
    if not match or not 0 < int(match[3] or 443) < 65536:
        raise ValueError(f"must be http(s)://HOST[:PORT], not {_show(url)}")


def _check_recipients(names: tuple[str, ...]) -> None:
    for name in names:
        if not name.strip() or _CONTROL_RE.search(name):
            raise ValueError(f"must be gpg key names or fingerprints, not {_show(name)}")


def _check_absolute(path: Path) -> None:
    if not path.is_absolute():
        raise ValueError(f"must be an absolute path or start with ~/, not {_show(str(path))}")


def _check_directories(paths: tuple[Path, ...]) -> None:
    for path in paths:
        _check_absolute(path)
    for path in paths:
        if paths.count(path) > 1:
            raise ValueError(f"names {_show(str(path))} twice")


def _check_part_size(size: int) -> None:
    if size < MIN_PART_SIZE:
        raise ValueError(f"must be at least 1MiB, not {_exact_size(size)}")


def _check_concurrency(n: int) -> None:
    if not 1 <= n <= MAX_CONCURRENCY:
        raise ValueError(f"must be a whole number from 1 to {MAX_CONCURRENCY}, not {n}")


def _check_interval(delta: timedelta) -> None:
    if delta < timedelta(0):
        raise ValueError("must not be negative")


def _check_exclude_tag(name: str) -> None:
    if name in ("", ".", "..") or "/" in name or _CONTROL_RE.search(name):
        raise ValueError(f'must be a file name such as "NOBACKUP" (no slash), not {_show(name)}')


# --- parsing raw values (from TOML or flags) --------------------------------------


@dataclass(frozen=True)
class _Paths:
    """How paths from one source are read: ``~`` is HOME; a relative path is
    relative to the current directory on the command line, refused in the file."""

    home: Path
    relative_to_cwd: bool

    def path(self, raw: object) -> Path:
        text = _string(raw)
        if not text or "\0" in text:
            raise ValueError(f"must be a path, not {_show(text)}")
        path = _expand_user(text, self.home)
        if path.is_absolute():
            return path
        if self.relative_to_cwd:
            return Path.cwd() / path
        raise ValueError(f"must be an absolute path or start with ~/, not {_show(text)}")


Converter: TypeAlias = Callable[[object, _Paths], Any]


def _expand_user(text: str, home: Path) -> Path:
    if text == "~" or text.startswith("~/"):
        return home / text[2:]
    if text.startswith("~"):
        raise ValueError(f"only ~ and ~/ are expanded, not {_show(text.split('/')[0])}")
    return Path(text)


def _string(raw: object) -> str:
    if not isinstance(raw, str):
        raise ValueError(f"must be a string, not {_show(raw)}")
    return raw


def _string_list(raw: object) -> list[str]:
    if not isinstance(raw, list) or not all(isinstance(item, str) for item in raw):
        raise ValueError(f'must be a list of strings such as ["a", "b"], not {_show(raw)}')
    return raw


def _checked(check: Callable[[Any], None]) -> Converter:
    """A converter for a plain string that ``check`` validates."""

    def convert(raw: object, _paths: _Paths) -> str:
        text = _string(raw)
        check(text)
        return text

    return convert


def _convert_url(raw: object, _paths: _Paths) -> Location:
    return parse_location(_string(raw))


def _convert_storage_class(raw: object, _paths: _Paths) -> StorageClass:
    try:
        return StorageClass(_string(raw).strip().upper())
    except ValueError:
        raise ValueError(f"must be one of {', '.join(StorageClass)}, not {_show(raw)}") from None


def _convert_path(raw: object, paths: _Paths) -> Path:
    return paths.path(raw)


def _convert_recipients(raw: object, _paths: _Paths) -> tuple[str, ...]:
    names = tuple(_string_list(raw))
    _check_recipients(names)
    return tuple(name.strip() for name in names)


def _convert_directories(raw: object, paths: _Paths) -> tuple[Path, ...]:
    directories = tuple(paths.path(item) for item in _string_list(raw))
    _check_directories(directories)
    return directories


def _convert_part_size(raw: object, _paths: _Paths) -> int | None:
    if isinstance(raw, str) and raw.strip().lower() == "auto":
        return None
    problem = f'must be "auto" or a size such as "8MiB" (a bare number means MiB), not {_show(raw)}'
    if isinstance(raw, bool) or not isinstance(raw, int | str):
        raise ValueError(problem)
    try:
        size = parse_size(str(raw), bare_unit=MiB)
    except ValueError:
        raise ValueError(problem) from None
    _check_part_size(size)
    return size


def _convert_concurrency(raw: object, _paths: _Paths) -> int:
    number = _whole_number(raw)
    if number is None or not 1 <= number <= MAX_CONCURRENCY:
        raise ValueError(f"must be a whole number from 1 to {MAX_CONCURRENCY}, not {_show(raw)}")
    return number


def _whole_number(raw: object) -> int | None:
    if isinstance(raw, int) and not isinstance(raw, bool):
        return raw
    if isinstance(raw, str) and raw.strip().isdigit() and raw.strip().isascii():
        return int(raw)
    return None


def _convert_interval(raw: object, _paths: _Paths) -> timedelta:
    if raw == 0 and type(raw) is int:
        return timedelta(0)
    problem = f'must be a duration such as "7d", "12h" or "1d12h" (0: no limit), not {_show(raw)}'
    if not isinstance(raw, str):
        raise ValueError(problem)
    try:
        return parse_duration(raw)
    except (ValueError, OverflowError):
        raise ValueError(problem) from None


# --- showing values as they are written in the file -------------------------------


def _show_plain(value: Any) -> FileValue:
    if isinstance(value, tuple):
        return [str(item) for item in value]
    if value is None or isinstance(value, int):
        return value
    return str(value)


def _show_part_size(size: int | None) -> FileValue:
    return "auto" if size is None else _exact_size(size)


def _show_interval(delta: timedelta) -> FileValue:
    return _exact_duration(delta)


def _exact_size(size: int) -> str:
    """A size that parses back to the same number of bytes (a bare number is MiB)."""
    for unit, factor in (("TiB", TiB), ("GiB", GiB), ("MiB", MiB), ("KiB", KiB)):
        if size and size % factor == 0:
            return f"{size // factor}{unit}"
    return f"{size}B"


def _exact_duration(delta: timedelta) -> str:
    """A duration that parses back to the same value (format_duration rounds)."""
    days, seconds, micros = delta.days, delta.seconds, delta.microseconds
    if (days, seconds, micros) == (0, 0, 0):
        return "0"
    hours, rest = divmod(seconds, 3600)
    minutes, seconds = divmod(rest, 60)
    text = "".join(f"{n}{unit}" for n, unit in ((days, "d"), (hours, "h"), (minutes, "m")) if n)
    if micros:
        return text + f"{seconds}.{micros:06d}".rstrip("0") + "s"
    return text + (f"{seconds}s" if seconds else "")


def _show(value: object) -> str:
    """A value quoted for an error message, on one line, not too long."""
    if isinstance(value, dict):
        return "a table"
    if isinstance(value, bool):
        text = "true" if value else "false"
    elif isinstance(value, str | list):
        text = json.dumps(value, ensure_ascii=False, default=str)
    else:
        text = str(value)
    return text if len(text) <= 60 else text[:57] + "..."


# --- the keys ---------------------------------------------------------------------


class _Key(NamedTuple):
    convert: Converter
    show: Callable[[Any], FileValue] = _show_plain


_KEYS: dict[str, _Key] = {
    "destination.url": _Key(_convert_url),
    "destination.storage_class": _Key(_convert_storage_class),
    "destination.profile": _Key(_checked(_check_profile)),
    "destination.region": _Key(_checked(_check_region)),
    "destination.endpoint_url": _Key(_checked(_check_endpoint)),
    "encryption.recipients": _Key(_convert_recipients),
    "encryption.passphrase_file": _Key(_convert_path),
    "encryption.gnupghome": _Key(_convert_path),
    "upload.part_size": _Key(_convert_part_size, _show_part_size),
    "upload.concurrency": _Key(_convert_concurrency),
    "backup.directories": _Key(_convert_directories),
    "backup.min_interval": _Key(_convert_interval, _show_interval),
    "backup.exclude_tag": _Key(_checked(_check_exclude_tag)),
    "backup.spool_dir": _Key(_convert_path),
}
SECTIONS: tuple[str, ...] = ("destination", "encryption", "upload", "backup")
KEYS: tuple[str, ...] = tuple(_KEYS)


class Override(NamedTuple):
    """A value set on the command line, as typed (a string, or a list for a
    repeated flag), and its origin as shown to the user, e.g. ``"flag --to"``."""

    value: object
    origin: str


@dataclass(frozen=True)
class _Source:
    origin: str  # recorded in Config.origins
    label: str  # starts error messages: a file (~ abbreviated) or a flag
    command_line: bool

    def error(self, key: str, problem: object) -> AglacierError:
        kind = UsageError if self.command_line else ConfigError
        return kind(f"{self.label}: {key}: {problem}")


# --- locating files ---------------------------------------------------------------


def config_file_path(explicit: Path | None, env: Mapping[str, str]) -> ConfigFile:
    """The configuration file to read: ``explicit`` (``--config``), else
    ``$AGLACIER_CONFIG``, else ``$XDG_CONFIG_HOME/aglacier/config.toml``."""
    if explicit is not None:
        return ConfigFile(
            _invocation_path("flag --config", str(explicit), env), "flag --config", True
        )
    named = env.get("AGLACIER_CONFIG")
    if named:
        return ConfigFile(
            _invocation_path("env AGLACIER_CONFIG", named, env), "env AGLACIER_CONFIG", True
        )
    base, origin = _xdg_base(env, "XDG_CONFIG_HOME", ".config")
    return ConfigFile(base / "aglacier" / "config.toml", origin, False)


def state_dir(env: Mapping[str, str]) -> Path:
    """Where the state database lives: ``$AGLACIER_STATE_DIR``, else
    ``$XDG_STATE_HOME/aglacier``, else ``~/.local/state/aglacier``."""
    named = env.get("AGLACIER_STATE_DIR")
    if named:
        return _invocation_path("env AGLACIER_STATE_DIR", named, env)
    return _xdg_base(env, "XDG_STATE_HOME", ".local/state")[0] / "aglacier"


def home_dir(env: Mapping[str, str]) -> Path:
    """``$HOME``, else the home folder in the password database (cron, systemd)."""
    home = env.get("HOME", "")
    if home and Path(home).is_absolute():
        return Path(home)
    try:
        return Path(pwd.getpwuid(os.getuid()).pw_dir)
    except KeyError:
        raise ConfigError("HOME is not set, and this user has no home folder") from None


def _invocation_path(name: str, text: str, env: Mapping[str, str]) -> Path:
    """A path given for this run (flag or variable): relative to the current folder."""
    try:
        return _Paths(home_dir(env), relative_to_cwd=True).path(text)
    except ValueError as exc:
        raise ConfigError(f"{name}: {exc}") from None


def _xdg_base(env: Mapping[str, str], variable: str, fallback: str) -> tuple[Path, str]:
    # The XDG spec says to ignore a relative (or empty) value.
    value = env.get(variable, "")
    if value and Path(value).is_absolute():
        return Path(value), f"default (${variable})"
    return home_dir(env) / fallback, "default"


def _display(path: Path, home: Path) -> str:
    """``path`` with the home folder shown as ``~``, for messages."""
    if path.is_relative_to(home) and path != home:
        return "~/" + path.relative_to(home).as_posix()
    return str(path)


# --- loading ----------------------------------------------------------------------


def load_config(
    path: Path | None,
    env: Mapping[str, str],
    overrides: Mapping[str, Override] | None = None,
) -> Config:
    """Read the configuration file, apply ``overrides`` (dotted key → :class:`Override`)
    and validate everything.

    ``path`` is the ``--config`` file, None to look it up (see :func:`config_file_path`).
    A missing file is fine at the default location only. Raises :class:`ConfigError`
    for the file or the environment and :class:`UsageError` for an override.
    """
    file = config_file_path(path, env)
    home = home_dir(env)
    source = _Source(str(file.path), _display(file.path, home), command_line=False)
    table = _read_toml(file, source.label)
    chosen = _choose(_file_values(table or {}, source.label), source, overrides or {})
    values, set_origins = _convert_all(chosen, home)
    origins = _default_origins(env) | set_origins
    _one_encryption_mode(values, origins, chosen)
    kwargs = _by_section(values, env)
    return Config(
        destination=DestinationConfig(**kwargs["destination"]),
        encryption=EncryptionConfig(**kwargs["encryption"]),
        upload=UploadConfig(**kwargs["upload"]),
        backup=BackupConfig(**kwargs["backup"]),
        file=file if table is not None else None,
        origins=MappingProxyType(origins),
    )


def _read_toml(file: ConfigFile, label: str) -> dict[str, Any] | None:
    """The parsed file; None if it is missing from the default location."""
    try:
        data = file.path.read_bytes()
    except FileNotFoundError:
        if file.explicit:
            raise ConfigError(f"{label}: no such file (named by {file.origin})") from None
        return None
    except OSError as exc:
        raise ConfigError(f"{label}: cannot read: {exc.strerror}") from None
    try:
        text = data.decode("utf-8")
    except UnicodeDecodeError as exc:
        raise ConfigError(f"{label}: not UTF-8 text (byte {exc.start})") from None
    try:
        return tomllib.loads(text)
    except tomllib.TOMLDecodeError as exc:
        raise ConfigError(_toml_error(label, text, exc)) from None


_TOML_AT = re.compile(r"(.*) \(at (?:line (\d+), column (\d+)|end of document)\)", re.DOTALL)


def _toml_error(label: str, text: str, exc: tomllib.TOMLDecodeError) -> str:
    match = _TOML_AT.fullmatch(str(exc))
    if not match:
        return f"{label}: not valid TOML: {exc}"
    if match[2]:
        line, column = int(match[2]), int(match[3])
    else:
        lines = text.split("\n")
        line, column = len(lines), len(lines[-1]) + 1
    return f"{label}: line {line}, column {column}: not valid TOML: {match[1]}"


def _file_values(table: Mapping[str, Any], label: str) -> dict[str, object]:
    """The file's values by dotted key; unknown sections and keys are errors."""
    values: dict[str, object] = {}
    for section, body in table.items():
        if section not in SECTIONS:
            raise ConfigError(f"{label}: {_unknown_section(section, body)}")
        if not isinstance(body, dict):
            raise ConfigError(
                f"{label}: {section}: must be a table ([{section}]), not {_show(body)}"
            )
        for name, value in body.items():
            dotted = f"{section}.{name}"
            if dotted not in _KEYS:
                raise ConfigError(f"{label}: {dotted}: {_unknown_key(section, name)}")
            values[dotted] = value
    return values


def _unknown_section(name: str, body: object) -> str:
    if not isinstance(body, dict):
        homes = [key for key in KEYS if key.endswith(f".{name}")]
        if homes:
            return f"{name}: belongs in a section: did you mean {homes[0]}?"
    close = difflib.get_close_matches(name, SECTIONS, n=1)
    hint = f"did you mean [{close[0]}]?" if close else "valid sections: " + ", ".join(SECTIONS)
    return f"[{name}]: unknown section; {hint}"


def _unknown_key(section: str, name: str) -> str:
    names = [key.split(".")[1] for key in KEYS if key.startswith(f"{section}.")]
    close = difflib.get_close_matches(name, names, n=1)
    if close:
        return f"unknown key; did you mean {section}.{close[0]}?"
    return f"unknown key; valid keys in [{section}]: " + ", ".join(names)


def _choose(
    file_values: Mapping[str, object],
    file_source: _Source,
    overrides: Mapping[str, Override],
) -> dict[str, tuple[object, _Source]]:
    """Each set key's raw value and source: a flag wins over the file."""
    chosen = {key: (value, file_source) for key, value in file_values.items()}
    for key, override in overrides.items():
        if key not in _KEYS:
            raise ValueError(f"unknown configuration key {key!r}")  # a bug, not the user's
        chosen[key] = (override.value, _Source(override.origin, override.origin, True))
    return chosen


def _convert_all(
    chosen: Mapping[str, tuple[object, _Source]], home: Path
) -> tuple[dict[str, Any], dict[str, str]]:
    values: dict[str, Any] = {}
    origins: dict[str, str] = {}
    for key, (raw, source) in chosen.items():
        try:
            values[key] = _KEYS[key].convert(raw, _Paths(home, source.command_line))
        except ValueError as exc:
            raise source.error(key, exc) from None
        origins[key] = source.origin
    return values, origins


def _one_encryption_mode(
    values: dict[str, Any],
    origins: dict[str, str],
    chosen: Mapping[str, tuple[object, _Source]],
) -> None:
    """Refuse recipients and a passphrase file together, except that a flag for one
    replaces the other from the file (``--passphrase-file`` beats configured recipients)."""
    recipients, passphrase = "encryption.recipients", "encryption.passphrase_file"
    if not values.get(recipients) or not values.get(passphrase):
        return
    r_source, p_source = chosen[recipients][1], chosen[passphrase][1]
    if r_source.command_line == p_source.command_line:
        where = "" if r_source == p_source else f" (from {r_source.label})"
        raise p_source.error(
            passphrase,
            f"cannot be used with {recipients}{where}: "
            "encrypt to gpg keys or with a passphrase, not both",
        )
    loser, winner = (passphrase, r_source) if r_source.command_line else (recipients, p_source)
    del values[loser]
    origins[loser] = winner.origin


def _by_section(values: Mapping[str, Any], env: Mapping[str, str]) -> dict[str, dict[str, Any]]:
    """Constructor arguments per section; defaults that depend on the environment."""
    data = _xdg_base(env, "XDG_DATA_HOME", ".local/share")[0]
    cache = _xdg_base(env, "XDG_CACHE_HOME", ".cache")[0]
    kwargs: dict[str, dict[str, Any]] = {
        "destination": {"url": FileLocation(data / "aglacier" / "archives")},
        "encryption": {},
        "upload": {},
        "backup": {"spool_dir": cache / "aglacier" / "spool"},
    }
    for key, value in values.items():
        section, name = key.split(".")
        kwargs[section][name] = value
    return kwargs


def _default_origins(env: Mapping[str, str]) -> dict[str, str]:
    """Each key's origin when nothing sets it: "default", or "default ($XDG_…)"
    where an XDG variable chose the folder."""
    origins = dict.fromkeys(KEYS, "default")
    origins["destination.url"] = _xdg_base(env, "XDG_DATA_HOME", ".local/share")[1]
    origins["backup.spool_dir"] = _xdg_base(env, "XDG_CACHE_HOME", ".cache")[1]
    return origins
