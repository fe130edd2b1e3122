"""Payload validation rules (upstream fileutil.Validate plus the agent's stricter checks)."""

from __future__ import annotations

import pytest

from agent.errors import PayloadError
from agent.fs.paths import (
    DEFAULT_MAX_TOTAL_BYTES,
    first_component,
    validate_payload,
)
from agent.model import SecretFile


def _files(*paths: str, mode: int = 0o644, contents: bytes = b"x") -> list[SecretFile]:
    return [SecretFile(path=p, mode=mode, contents=contents) for p in paths]


@pytest.mark.parametrize(
    "path",
    [
        "i/am/well/behaved.txt",
        "keepyourheaddownandfollowtherules.txt",
        ".dotfile",
        ".dotfile.file",
        "1/2/3/4/5/6/7/8/9/10/.dotfile.lib",
        "a" * 255,
        "/".join(["a" * 255] * 16),  # exactly 4095 bytes
        "a.b/c..d/e...f",
        "key with spaces",
        "ünïcode/fïle",
        "key:name",
    ],
)
def test_good_paths(path: str) -> None:
    validate_payload(_files(path), max_total_bytes=DEFAULT_MAX_TOTAL_BYTES)


@pytest.mark.parametrize(
    ("path", "why"),
    [
        ("", "empty"),
        ("/dev/null", "relative"),
        ("//server/share", "relative"),
        ("C:\\Windows", "backslash"),
        ("C:foo", "relative"),
        ("a:b", "relative"),
        ("c:/foo", "relative"),
        ("\\\\server\\share", "backslash"),
        ("foo\\..\\..\\etc", "backslash"),
        ("a" * 4097, "4096"),
        ("ä" * 2049, "4096"),  # 4098 bytes in UTF-8
        ("a" * 256, "255"),
        ("dir/" + "b" * 256, "255"),
        ("..sneaky.txt", "'..'"),
        ("..data", "'..'"),
        ("..", "'..'"),
        ("hello/there/../../../../../../etc/passwd", "'..'"),
        ("hello/../etc/somethingbad", "'..'"),
        ("foo/..", "'..'"),
        # Upstream's Validate refuses what filepath.Clean changes; the message says the fix.
        ("foo//bar", "clean form (no '.' elements, '//' or trailing '/'); use 'foo/bar'"),
        ("foo////bar", "use 'foo/bar'"),
        ("./x", "use 'x'"),
        ("a/./b", "use 'a/b'"),
        (".", "clean form"),
        ("x/", "use 'x'"),
        ("x/.", "use 'x'"),
        ("nul\x00byte", "NUL"),
    ],
)
def test_bad_paths_name_the_path(path: str, why: str) -> None:
    with pytest.raises(PayloadError) as caught:
        validate_payload(_files(path), max_total_bytes=DEFAULT_MAX_TOTAL_BYTES)
    message = caught.value.message
    assert why in message
    assert repr(path[:120]) in message
    assert caught.value.reason == "FileWriteError"


def test_long_path_is_shortened_in_message() -> None:
    path = "a" * 5000
    with pytest.raises(PayloadError) as caught:
        validate_payload(_files(path), max_total_bytes=DEFAULT_MAX_TOTAL_BYTES)
    assert len(caught.value.message) < 300


@pytest.mark.parametrize("mode", [0, 0o400, 0o600, 0o644, 0o755, 0o777])
def test_good_modes(mode: int) -> None:
    validate_payload(_files("f", mode=mode), max_total_bytes=DEFAULT_MAX_TOTAL_BYTES)


@pytest.mark.parametrize(
    ("mode", "shown"), [(-1, "-0o1"), (0o1000, "0o1000"), (0o4755, "0o4755"), (0o2777, "0o2777")]
)
def test_bad_modes_name_path_and_octal_mode(mode: int, shown: str) -> None:
    with pytest.raises(PayloadError) as caught:
        validate_payload(_files("dir/secret", mode=mode), max_total_bytes=DEFAULT_MAX_TOTAL_BYTES)
    assert "'dir/secret'" in caught.value.message
    assert shown in caught.value.message


def test_bool_mode_rejected() -> None:
    with pytest.raises(PayloadError, match="'f'"):
        validate_payload(_files("f", mode=True), max_total_bytes=DEFAULT_MAX_TOTAL_BYTES)


def test_duplicate_paths_rejected() -> None:
    with pytest.raises(PayloadError, match="duplicate file path 'a/b'"):
        validate_payload(_files("x", "a/b", "a/b"), max_total_bytes=DEFAULT_MAX_TOTAL_BYTES)


@pytest.mark.parametrize(
    ("paths", "file_path"),
    [
        (("a", "a/b"), "'a'"),
        (("a/b/c", "a"), "'a'"),
        (("x/y", "x/y/z/w"), "'x/y'"),
    ],
)
def test_file_that_is_also_a_directory_rejected(paths: tuple[str, ...], file_path: str) -> None:
    with pytest.raises(PayloadError) as caught:
        validate_payload(_files(*paths), max_total_bytes=DEFAULT_MAX_TOTAL_BYTES)
    assert f"file path {file_path} is also a directory" in caught.value.message


def test_siblings_sharing_a_directory_are_fine() -> None:
    validate_payload(_files("a/b", "a/c", "ab", "a/d/e"), max_total_bytes=DEFAULT_MAX_TOTAL_BYTES)


def test_total_size_limit() -> None:
    files = [
        SecretFile("one", 0o644, b"a" * 60),
        SecretFile("two", 0o644, b"b" * 40),
    ]
    validate_payload(files, max_total_bytes=100)
    files.append(SecretFile("three", 0o644, b"c"))
    with pytest.raises(PayloadError) as caught:
        validate_payload(files, max_total_bytes=100)
    assert "'three'" in caught.value.message
    assert "100 bytes" in caught.value.message


def test_messages_never_contain_contents() -> None:
    secret = b"s3cr3t-value"
    cases = [
        [SecretFile("../x", 0o644, secret)],
        [SecretFile("x", 0o7777, secret)],
        [SecretFile("x", 0o644, secret), SecretFile("x", 0o644, secret)],
        [SecretFile("x", 0o644, secret * 10)],
    ]
    for files in cases:
        with pytest.raises(PayloadError) as caught:
            validate_payload(files, max_total_bytes=50)
        assert "s3cr3t" not in str(caught.value)


def test_empty_payload_is_valid() -> None:
    validate_payload([], max_total_bytes=0)


def test_first_component() -> None:
    assert first_component("a/b/c") == "a"
    assert first_component("file") == "file"
