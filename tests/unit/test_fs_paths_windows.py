"""Payload paths on a Windows node: NTFS streams, dropped trailing dots, device names, short
names and case-insensitive duplicates are refused, naming the path; Linux keeps its rules."""

from __future__ import annotations

import pytest

from agent.errors import PayloadError
from agent.fs.paths import validate_payload
from agent.model import SecretFile


def payload(*paths: str) -> list[SecretFile]:
    return [SecretFile(path, 0o644, b"x") for path in paths]


@pytest.mark.parametrize(
    ("path", "why"),
    [
        ("key:hidden", "alternate data stream"),
        ("dir/key::$DATA", "alternate data stream"),
        ("key.", "ends with a dot"),
        ("dir /key", "ends with a dot or a space"),
        ("nul", "reserved device name"),
        ("certs/CON.pem", "reserved device name"),
        ("LPT¹", "reserved device name"),
        ("SECRET~1.TXT", "8.3 short name"),
        ("a|b", "does not allow"),
        ("a?b", "does not allow"),
        ("tab\there", "does not allow"),
    ],
)
def test_windows_refuses_names_that_alias_or_hide(path: str, why: str) -> None:
    with pytest.raises(PayloadError) as info:
        validate_payload(payload(path), max_total_bytes=1024, windows=True)
    assert str(info.value).startswith(f"invalid file path {path!r}: ")
    assert why in str(info.value)
    validate_payload(payload(path), max_total_bytes=1024)  # legal on Linux


def test_windows_compares_paths_case_insensitively() -> None:
    with pytest.raises(PayloadError, match=r"duplicate file path 'Key'.*same file as 'key'"):
        validate_payload(payload("key", "Key"), max_total_bytes=1024, windows=True)
    with pytest.raises(PayloadError, match=r"'Certs' is also a directory of 'certs/tls\.crt'"):
        validate_payload(payload("Certs", "certs/tls.crt"), max_total_bytes=1024, windows=True)
    validate_payload(payload("key", "Key"), max_total_bytes=1024)  # two files on Linux


def test_ordinary_names_pass_on_windows() -> None:
    validate_payload(
        payload("username", "certs/tls.crt", "app.config.json", "db-password", "a~b", "con-x"),
        max_total_bytes=1024,
        windows=True,
    )
