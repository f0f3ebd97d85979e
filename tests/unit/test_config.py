"""aglacier.config: file lookup, defaults, every key, overrides, and one-line errors."""

from __future__ import annotations

import os
import pwd
import string
from collections.abc import Callable
from datetime import timedelta
from pathlib import Path

import pytest
from hypothesis import given
from hypothesis import strategies as st

from aglacier.config import (
    KEYS,
    BackupConfig,
    Config,
    DestinationConfig,
    EncryptionConfig,
    Override,
    UploadConfig,
    config_file_path,
    load_config,
    state_dir,
)
from aglacier.destination import (
    FileLocation,
    S3Location,
    StorageClass,
    VaultLocation,
    parse_location,
)
from aglacier.errors import ConfigError, UsageError
from aglacier.units import GiB, MiB

FULL = """\
[destination]
url = "s3://my-bucket/backups"
storage_class = "glacier_ir"
profile = "corc"
region = "us-east-1"
endpoint_url = "http://127.0.0.1:9000"

[encryption]
recipients = ["Mike and Martha Backup Archive", "ABCD1234"]
gnupghome = "~/.gnupg"

[upload]
part_size = "64MiB"
concurrency = 8

[backup]
directories = ["/var/backup/notwo/disks/data0/documents/alaska", "~/photos"]
min_interval = "7d"
exclude_tag = ".nobackup"
spool_dir = "/var/spool/aglacier"
"""


@pytest.fixture
def env(home: Path) -> dict[str, str]:
    """Only HOME (the conftest's throwaway one): no XDG or AGLACIER variables."""
    return {"HOME": str(home)}


def write_config(home: Path, text: str, name: str = ".config/aglacier/config.toml") -> Path:
    path = home / name
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(text)
    return path


def config_error(home: Path, text: str) -> str:
    """The message of the ConfigError that ``text`` in the default file causes."""
    write_config(home, text)
    with pytest.raises(ConfigError) as info:
        load_config(None, {"HOME": str(home)})
    message = str(info.value)
    assert "\n" not in message
    return message


LABEL = "~/.config/aglacier/config.toml: "


# --- where the file is, and defaults ----------------------------------------------


def test_defaults_with_only_home(home: Path, env: dict[str, str]) -> None:
    config = load_config(None, env)
    assert config.destination == DestinationConfig(
        url=FileLocation(home / ".local/share/aglacier/archives")
    )
    assert config.destination.storage_class is StorageClass.DEEP_ARCHIVE
    assert config.encryption == EncryptionConfig()
    assert config.encryption.mode is None
    assert config.upload == UploadConfig(part_size=None, concurrency=4)
    assert config.backup == BackupConfig(
        spool_dir=home / ".cache/aglacier/spool",
        directories=(),
        min_interval=timedelta(0),
        exclude_tag="NOBACKUP",
    )
    assert config.file is None
    assert {config.origin(key) for key in KEYS} == {"default"}


def test_xdg_variables_choose_folders(tmp_path: Path, env: dict[str, str]) -> None:
    env |= {
        "XDG_DATA_HOME": str(tmp_path / "data"),
        "XDG_CACHE_HOME": str(tmp_path / "cache"),
        "XDG_CONFIG_HOME": str(tmp_path / "conf"),
        "XDG_STATE_HOME": str(tmp_path / "state"),
    }
    config = load_config(None, env)
    assert config.destination.url == FileLocation(tmp_path / "data/aglacier/archives")
    assert config.origin("destination.url") == "default ($XDG_DATA_HOME)"
    assert config.backup.spool_dir == tmp_path / "cache/aglacier/spool"
    assert config_file_path(None, env).path == tmp_path / "conf/aglacier/config.toml"
    assert state_dir(env) == tmp_path / "state/aglacier"


def test_relative_xdg_variables_are_ignored(home: Path, env: dict[str, str]) -> None:
    # The XDG spec: a relative path in these variables is invalid and ignored.
    env |= {"XDG_DATA_HOME": "data", "XDG_CONFIG_HOME": "", "XDG_STATE_HOME": "s"}
    assert load_config(None, env).destination.url == FileLocation(
        home / ".local/share/aglacier/archives"
    )
    assert config_file_path(None, env).path == home / ".config/aglacier/config.toml"
    assert state_dir(env) == home / ".local/state/aglacier"


def test_state_dir_variable_wins(tmp_path: Path, home: Path, env: dict[str, str]) -> None:
    env |= {"XDG_STATE_HOME": str(tmp_path / "xdg"), "AGLACIER_STATE_DIR": "~/st"}
    assert state_dir(env) == home / "st"


def test_without_home_the_password_database_is_used(tmp_path: Path) -> None:
    home = Path(pwd.getpwuid(os.getuid()).pw_dir)
    config = load_config(None, {"XDG_CONFIG_HOME": str(tmp_path)})
    assert config.backup.spool_dir == home / ".cache/aglacier/spool"
    assert state_dir({}) == home / ".local/state/aglacier"


def test_file_at_the_default_location_is_read(home: Path, env: dict[str, str]) -> None:
    path = write_config(home, "[upload]\nconcurrency = 2\n")
    config = load_config(None, env)
    assert config.upload.concurrency == 2
    assert config.origin("upload.concurrency") == str(path)
    assert config.origin("upload.part_size") == "default"
    assert config.file is not None
    assert config.file.path == path
    assert config.file.origin == "default"


def test_aglacier_config_beats_xdg_and_explicit_beats_both(home: Path, env: dict[str, str]) -> None:
    write_config(home, "[upload]\nconcurrency = 2\n")
    named = write_config(home, "[upload]\nconcurrency = 3\n", "named.toml")
    explicit = write_config(home, "[upload]\nconcurrency = 5\n", "explicit.toml")
    env["AGLACIER_CONFIG"] = str(named)
    config = load_config(None, env)
    assert config.upload.concurrency == 3
    assert config.file is not None
    assert config.file.origin == "env AGLACIER_CONFIG"
    config = load_config(explicit, env)
    assert config.upload.concurrency == 5
    assert config.file is not None
    assert config.file.origin == "flag --config"


def test_tilde_in_explicit_paths_uses_home_from_env(home: Path, env: dict[str, str]) -> None:
    write_config(home, "[upload]\nconcurrency = 7\n", "mine.toml")
    assert load_config(Path("~/mine.toml"), env).upload.concurrency == 7
    env["AGLACIER_CONFIG"] = "~/mine.toml"
    assert load_config(None, env).upload.concurrency == 7


@pytest.mark.parametrize("via", ["flag", "env"])
def test_missing_explicit_file_is_an_error(via: str, env: dict[str, str]) -> None:
    if via == "env":
        env["AGLACIER_CONFIG"] = "~/missing.toml"
    with pytest.raises(ConfigError) as info:
        load_config(Path("~/missing.toml") if via == "flag" else None, env)
    origin = "flag --config" if via == "flag" else "env AGLACIER_CONFIG"
    assert str(info.value) == f"~/missing.toml: no such file (named by {origin})"


# --- every key --------------------------------------------------------------------


def test_every_key_is_parsed(home: Path, env: dict[str, str]) -> None:
    path = write_config(home, FULL)
    config = load_config(None, env)
    assert config.destination == DestinationConfig(
        url=S3Location("my-bucket", "backups"),
        storage_class=StorageClass.GLACIER_IR,
        profile="corc",
        region="us-east-1",
        endpoint_url="http://127.0.0.1:9000",
    )
    assert config.encryption == EncryptionConfig(
        recipients=("Mike and Martha Backup Archive", "ABCD1234"),
        gnupghome=home / ".gnupg",
    )
    assert config.encryption.mode == "public-key"
    assert config.upload == UploadConfig(part_size=64 * MiB, concurrency=8)
    assert config.backup == BackupConfig(
        spool_dir=Path("/var/spool/aglacier"),
        directories=(Path("/var/backup/notwo/disks/data0/documents/alaska"), home / "photos"),
        min_interval=timedelta(days=7),
        exclude_tag=".nobackup",
    )
    unset = {"encryption.passphrase_file"}
    assert {key: config.origin(key) for key in KEYS if key not in unset} == dict.fromkeys(
        set(KEYS) - unset, str(path)
    )


def test_passphrase_file_means_symmetric(home: Path, env: dict[str, str]) -> None:
    write_config(home, '[encryption]\npassphrase_file = "~/.config/aglacier/passphrase"\n')
    encryption = load_config(None, env).encryption
    assert encryption.passphrase_file == home / ".config/aglacier/passphrase"
    assert encryption.mode == "symmetric"


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        ('"auto"', None),
        ('"AUTO"', None),
        ("8", 8 * MiB),
        ('"8"', 8 * MiB),
        ('"8MiB"', 8 * MiB),
        ('"1.5 GiB"', 3 * GiB // 2),
        ('"16MB"', 16_000_000),
        ('"1048576B"', MiB),
    ],
)
def test_part_size_forms(home: Path, env: dict[str, str], value: str, expected: int) -> None:
    write_config(home, f"[upload]\npart_size = {value}\n")
    assert load_config(None, env).upload.part_size == expected


@pytest.mark.parametrize(
    ("value", "expected"),
    [("0", timedelta(0)), ('"0"', timedelta(0)), ('"1d12h"', timedelta(hours=36))],
)
def test_min_interval_forms(
    home: Path, env: dict[str, str], value: str, expected: timedelta
) -> None:
    write_config(home, f"[backup]\nmin_interval = {value}\n")
    assert load_config(None, env).backup.min_interval == expected


def test_keys_match_the_dataclass_fields() -> None:
    import dataclasses

    sections = {
        "destination": DestinationConfig,
        "encryption": EncryptionConfig,
        "upload": UploadConfig,
        "backup": BackupConfig,
    }
    fields = {f"{name}.{f.name}" for name, cls in sections.items() for f in dataclasses.fields(cls)}
    assert fields == set(KEYS)


# --- overrides --------------------------------------------------------------------


def test_overrides_win_and_report_their_origin(home: Path, env: dict[str, str]) -> None:
    path = write_config(home, FULL)
    overrides = {
        "destination.url": Override("glacier://examplevault", "flag --to"),
        "upload.concurrency": Override("16", "flag --concurrency"),
        "upload.part_size": Override("8", "flag --part-size"),
        "encryption.recipients": Override(["other"], "flag --recipient"),
        "encryption.gnupghome": Override("gpg-home", "flag --gnupghome"),
    }
    config = load_config(None, env, overrides)
    assert config.destination.url == VaultLocation("examplevault")
    assert config.upload == UploadConfig(part_size=8 * MiB, concurrency=16)
    assert config.encryption.recipients == ("other",)
    # A relative path on the command line is relative to the current folder.
    assert config.encryption.gnupghome == Path.cwd() / "gpg-home"
    assert config.origin("destination.url") == "flag --to"
    assert config.origin("upload.concurrency") == "flag --concurrency"
    assert config.origin("destination.region") == str(path)


def test_a_bad_override_is_a_usage_error_naming_the_flag(env: dict[str, str]) -> None:
    with pytest.raises(UsageError) as info:
        load_config(None, env, {"upload.concurrency": Override("four", "flag --concurrency")})
    assert str(info.value) == (
        'flag --concurrency: upload.concurrency: must be a whole number from 1 to 64, not "four"'
    )


def test_an_unknown_override_key_is_a_bug(env: dict[str, str]) -> None:
    with pytest.raises(ValueError, match="unknown configuration key"):
        load_config(None, env, {"upload.speed": Override("1", "flag --speed")})


def test_passphrase_flag_replaces_configured_recipients(home: Path, env: dict[str, str]) -> None:
    write_config(home, FULL)
    flag = {"encryption.passphrase_file": Override("/etc/pass", "flag --passphrase-file")}
    config = load_config(None, env, flag)
    assert config.encryption.recipients == ()
    assert config.encryption.passphrase_file == Path("/etc/pass")
    assert config.origin("encryption.recipients") == "flag --passphrase-file"


def test_recipient_flag_replaces_configured_passphrase(home: Path, env: dict[str, str]) -> None:
    write_config(home, '[encryption]\npassphrase_file = "/etc/pass"\n')
    flag = {"encryption.recipients": Override(["me"], "flag --recipient")}
    config = load_config(None, env, flag)
    assert config.encryption == EncryptionConfig(recipients=("me",))
    assert config.origin("encryption.passphrase_file") == "flag --recipient"


def test_both_encryption_flags_are_a_usage_error(env: dict[str, str]) -> None:
    overrides = {
        "encryption.recipients": Override(["me"], "flag --recipient"),
        "encryption.passphrase_file": Override("/p", "flag --passphrase-file"),
    }
    with pytest.raises(UsageError, match=r"^flag --passphrase-file: encryption\.passphrase_file"):
        load_config(None, env, overrides)


# --- bad files --------------------------------------------------------------------


def test_toml_syntax_error_gives_line_and_column(home: Path) -> None:
    message = config_error(home, '[upload]\nconcurrency = 4\n\n[backup]\nspool_dir = "/x\n')
    assert message.startswith(LABEL + "line 5, column ")
    assert "not valid TOML" in message


def test_toml_error_at_end_of_document_still_has_a_line(home: Path) -> None:
    message = config_error(home, "[upload]\nconcurrency = ")
    assert message.startswith(LABEL + "line 2, column 15: not valid TOML")


def test_unknown_section_suggests_the_closest(home: Path) -> None:
    message = config_error(home, "[uplaod]\nconcurrency = 4\n")
    assert message == LABEL + "[uplaod]: unknown section; did you mean [upload]?"


def test_unknown_section_lists_the_valid_ones(home: Path) -> None:
    message = config_error(home, "[zzz]\n")
    assert message == (
        LABEL + "[zzz]: unknown section; valid sections: destination, encryption, upload, backup"
    )


def test_unknown_key_suggests_the_closest(home: Path) -> None:
    message = config_error(home, "[upload]\nconcurency = 4\n")
    assert message == LABEL + "upload.concurency: unknown key; did you mean upload.concurrency?"


def test_unknown_key_lists_the_valid_ones(home: Path) -> None:
    message = config_error(home, "[backup]\nzzz = 4\n")
    assert message == (
        LABEL + "backup.zzz: unknown key; valid keys in [backup]: "
        "directories, min_interval, exclude_tag, spool_dir"
    )


def test_key_outside_a_section(home: Path) -> None:
    message = config_error(home, 'url = "s3://my-bucket"\n')
    assert message == LABEL + "url: belongs in a section: did you mean destination.url?"


@pytest.mark.parametrize(
    ("text", "key", "problem"),
    [
        ('upload = "x"', "upload", 'must be a table ([upload]), not "x"'),
        ("[upload]\nconcurrency = 0", "upload.concurrency", "from 1 to 64, not 0"),
        ("[upload]\nconcurrency = 65", "upload.concurrency", "from 1 to 64, not 65"),
        ('[upload]\nconcurrency = "four"', "upload.concurrency", 'from 1 to 64, not "four"'),
        ("[upload]\nconcurrency = true", "upload.concurrency", "not true"),
        ("[upload]\nconcurrency = 2.5", "upload.concurrency", "not 2.5"),
        ('[upload]\npart_size = "512KiB"', "upload.part_size", "at least 1MiB, not 512KiB"),
        ("[upload]\npart_size = 0", "upload.part_size", "at least 1MiB, not 0B"),
        ("[upload]\npart_size = -1", "upload.part_size", "not -1"),
        ('[upload]\npart_size = "8 parsecs"', "upload.part_size", 'not "8 parsecs"'),
        ("[upload]\npart_size = [8]", "upload.part_size", "not [8]"),
        ('[backup]\nmin_interval = "a week"', "backup.min_interval", 'not "a week"'),
        ("[backup]\nmin_interval = 7", "backup.min_interval", "not 7"),
        ('[backup]\nmin_interval = "-1d"', "backup.min_interval", 'not "-1d"'),
        ('[backup]\nexclude_tag = "a/b"', "backup.exclude_tag", "no slash"),
        ('[backup]\nexclude_tag = ""', "backup.exclude_tag", "no slash"),
        ('[backup]\nspool_dir = "spool"', "backup.spool_dir", 'start with ~/, not "spool"'),
        ('[backup]\nspool_dir = "~bob/spool"', "backup.spool_dir", 'not "~bob"'),
        ("[backup]\nspool_dir = 3", "backup.spool_dir", "must be a string, not 3"),
        ('[backup]\ndirectories = "/home"', "backup.directories", 'not "/home"'),
        ('[backup]\ndirectories = ["/a", "/a/"]', "backup.directories", 'names "/a" twice'),
        ('[backup]\ndirectories = ["/a", 1]', "backup.directories", "list of strings"),
        ('[destination]\nurl = "s3://My_Bucket"', "destination.url", "lowercase letters"),
        ('[destination]\nurl = "s3://ab"', "destination.url", "3 to 63 characters"),
        ('[destination]\nurl = "s3://a..b"', "destination.url", "two dots in a row"),
        ('[destination]\nurl = "s3://192.168.1.1"', "destination.url", "IP address"),
        ('[destination]\nurl = "s3://xn--abc"', "destination.url", "reserves"),
        ('[destination]\nurl = "s3://bucket/a//b"', "destination.url", "empty parts"),
        ('[destination]\nurl = "s3://bucket/a?b"', "destination.url", "?, #"),
        ('[destination]\nurl = "glacier://a/b"', "destination.url", "a vault URL has no path"),
        ('[destination]\nurl = "glacier://"', "destination.url", "vault name"),
        ('[destination]\nurl = "glacier://a:b"', "destination.url", "vault name"),
        ('[destination]\nurl = "file://mnt/disk"', "destination.url", "absolute path"),
        ('[destination]\nurl = "file:"', "destination.url", "must be s3://"),
        ('[destination]\nurl = "/mnt/disk"', "destination.url", "must be s3://BUCKET[/PREFIX]"),
        ('[destination]\nurl = "ftp://host/x"', "destination.url", 'not "ftp://host/x"'),
        ("[destination]\nurl = 5", "destination.url", "must be a string, not 5"),
        ('[destination]\nstorage_class = "COLD"', "destination.storage_class", 'not "COLD"'),
        ('[destination]\nendpoint_url = "ftp://h"', "destination.endpoint_url", "http(s)://HOST"),
        ('[destination]\nendpoint_url = "http://h/p"', "destination.endpoint_url", "HOST[:PORT]"),
        ('[destination]\nendpoint_url = "http://h:0"', "destination.endpoint_url", "HOST[:PORT]"),
        ('[destination]\nendpoint_url = "http://h:65536"', "destination.endpoint_url", "[:PORT]"),
        ('[destination]\nregion = "US East"', "destination.region", "such as us-east-1"),
        ('[destination]\nprofile = ""', "destination.profile", "AWS profile name"),
        ('[encryption]\nrecipients = "me"', "encryption.recipients", "list of strings"),
        ('[encryption]\nrecipients = ["me", " "]', "encryption.recipients", 'not " "'),
        ("[encryption]\ngnupghome = false", "encryption.gnupghome", "not false"),
        (
            '[encryption]\nrecipients = ["me"]\npassphrase_file = "/p"',
            "encryption.passphrase_file",
            "cannot be used with encryption.recipients: encrypt to gpg keys or with a "
            "passphrase, not both",
        ),
    ],
)  # fmt: skip
def test_bad_values_name_file_key_and_problem(
    home: Path, text: str, key: str, problem: str
) -> None:
    message = config_error(home, text + "\n")
    assert message.startswith(f"{LABEL}{key}: ")
    assert problem in message


def test_file_outside_home_is_named_in_full(tmp_path: Path, env: dict[str, str]) -> None:
    path = tmp_path / "elsewhere.toml"
    path.write_text("[upload]\nconcurrency = 0\n")
    with pytest.raises(ConfigError, match=rf"^{path}: upload\.concurrency: "):
        load_config(path, env)


def test_unreadable_files(tmp_path: Path, env: dict[str, str]) -> None:
    binary = tmp_path / "binary.toml"
    binary.write_bytes(b"[upload]\nconcurrency = \xff\n")
    with pytest.raises(ConfigError, match=r"binary\.toml: not UTF-8 text \(byte 23\)$"):
        load_config(binary, env)
    with pytest.raises(ConfigError, match=r": cannot read: Is a directory$"):
        load_config(tmp_path, env)


def test_bad_environment_variable_paths(env: dict[str, str]) -> None:
    with pytest.raises(ConfigError, match=r"^env AGLACIER_STATE_DIR: only ~ and ~/"):
        state_dir(env | {"AGLACIER_STATE_DIR": "~bob/state"})


# --- construction validates too ---------------------------------------------------


@pytest.mark.parametrize(
    "build",
    [
        lambda: UploadConfig(concurrency=0),
        lambda: UploadConfig(part_size=MiB - 1),
        lambda: EncryptionConfig(recipients=("a",), passphrase_file=Path("/p")),
        lambda: EncryptionConfig(gnupghome=Path("relative")),
        lambda: BackupConfig(spool_dir=Path("spool")),
        lambda: BackupConfig(spool_dir=Path("/s"), exclude_tag="a/b"),
        lambda: BackupConfig(spool_dir=Path("/s"), min_interval=timedelta(-1)),
        lambda: DestinationConfig(url=VaultLocation("v"), endpoint_url="nope"),
        lambda: S3Location("B"),
        lambda: S3Location("bucket", "/a"),
        lambda: VaultLocation(""),
        lambda: FileLocation(Path("rel")),
    ],
)
def test_sections_are_validated_at_construction(build: Callable[[], object]) -> None:
    with pytest.raises(ValueError):
        build()


def test_config_can_be_built_directly(tmp_path: Path) -> None:
    config = Config(
        destination=DestinationConfig(url=FileLocation(tmp_path)),
        encryption=EncryptionConfig(recipients=("me",)),
        upload=UploadConfig(),
        backup=BackupConfig(spool_dir=tmp_path),
    )
    assert config.origin("upload.concurrency") == "default"
    assert config.upload.memory_in_flight(8 * MiB) == 32 * MiB
    with pytest.raises(KeyError):
        config.origin("upload.nope")


# --- destination URLs -------------------------------------------------------------


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("s3://my-bucket", S3Location("my-bucket", "")),
        ("S3://my-bucket/", S3Location("my-bucket", "")),
        ("s3://my.bucket.1/backups/home/", S3Location("my.bucket.1", "backups/home")),
        ("glacier://examplevault", VaultLocation("examplevault")),
        ("glacier://Example_Vault.2-x/", VaultLocation("Example_Vault.2-x")),
        ("file:///mnt/disk/aglacier", FileLocation(Path("/mnt/disk/aglacier"))),
        ("file://localhost/mnt/disk", FileLocation(Path("/mnt/disk"))),
        ("file:///mnt/my%20disk", FileLocation(Path("/mnt/my disk"))),
    ],
)
def test_destination_urls(text: str, expected: object) -> None:
    location = parse_location(text)
    assert location == expected
    assert location.kind == text.split(":")[0].lower()


def test_s3_keys_live_under_the_prefix() -> None:
    assert S3Location("bkt", "backups/home").key("a.gpg") == "backups/home/a.gpg"
    assert S3Location("bkt").key("a.gpg") == "a.gpg"


BUCKETS = st.from_regex(r"[a-z0-9][a-z0-9-]{1,40}[a-z0-9]", fullmatch=True).filter(
    lambda name: not name.startswith(("xn--", "sthree-")) and not name.endswith("-s3alias")
)
PREFIXES = st.lists(
    st.text(
        st.characters(exclude_categories=["Cc", "Cs"], exclude_characters="/?#"), min_size=1
    ).filter(lambda part: part == part.strip()),
    max_size=4,
).map("/".join)
PATHS = st.lists(
    st.text(st.characters(exclude_categories=["Cs"], exclude_characters="/\0"), min_size=1),
    min_size=1,
).map(lambda parts: Path("/", *parts))


@pytest.mark.parametrize("prefix", [" ", "backups ", "a/ b"])
def test_s3_prefix_parts_with_outer_spaces_are_refused(prefix: str) -> None:
    with pytest.raises(ValueError, match="space"):
        S3Location("bkt", prefix)


@given(BUCKETS, PREFIXES)
def test_s3_urls_round_trip(bucket: str, prefix: str) -> None:
    location = S3Location(bucket, prefix)
    assert parse_location(str(location)) == location


@given(PATHS)
def test_file_urls_round_trip(path: Path) -> None:
    location = FileLocation(path)
    assert parse_location(str(location)) == location


@given(st.text(string.ascii_letters + string.digits + "_.-", min_size=1, max_size=255))
def test_vault_urls_round_trip(vault: str) -> None:
    assert parse_location(f"glacier://{vault}") == VaultLocation(vault)


# --- values written back as in the file (config show) round-trip -----------------


def reload(env: dict[str, str], key: str, shown: object) -> object:
    config = load_config(None, env, {key: Override(shown, "flag --test")})
    section, name = key.split(".")
    return getattr(getattr(config, section), name)


@given(st.integers(min_value=MiB, max_value=1 << 45))
def test_part_sizes_round_trip(size: int) -> None:
    env = {"HOME": "/nonexistent-home"}
    config = Config(
        destination=DestinationConfig(url=VaultLocation("v")),
        encryption=EncryptionConfig(),
        upload=UploadConfig(part_size=size),
        backup=BackupConfig(spool_dir=Path("/s")),
    )
    text = dict((s.key, s.value) for s in config.settings())["upload.part_size"]
    assert reload(env, "upload.part_size", text) == size


@given(st.integers(min_value=1, max_value=1 << 20))
def test_a_bare_number_is_mebibytes(n: int) -> None:
    env = {"HOME": "/nonexistent-home"}
    assert reload(env, "upload.part_size", str(n)) == n * MiB


@given(st.timedeltas(min_value=timedelta(0), max_value=timedelta(days=10_000)))
def test_durations_round_trip(delta: timedelta) -> None:
    config = Config(
        destination=DestinationConfig(url=VaultLocation("v")),
        encryption=EncryptionConfig(),
        upload=UploadConfig(),
        backup=BackupConfig(spool_dir=Path("/s"), min_interval=delta),
    )
    text = dict((s.key, s.value) for s in config.settings())["backup.min_interval"]
    assert reload({"HOME": "/nonexistent-home"}, "backup.min_interval", text) == delta


@given(st.sampled_from(list(StorageClass)), st.booleans())
def test_storage_class_case_is_ignored(storage_class: StorageClass, lower: bool) -> None:
    text = storage_class.value.lower() if lower else storage_class.value
    env = {"HOME": "/nonexistent-home"}
    assert reload(env, "destination.storage_class", text) is storage_class
