"""The Azure ``objects`` parameter: every field, yaml.v3's scalar rules, and bad input."""

from __future__ import annotations

import json
import re
import textwrap

import pytest

from agent.errors import InvalidSecretProviderClass
from agent.providers.azure import objects
from agent.providers.azure.objects import KeyVaultObject, parse_objects

VERSION = "0123456789abcdef0123456789abcdef"


def parse(text: str) -> tuple[KeyVaultObject, ...]:
    return parse_objects(textwrap.dedent(text))


def refusal(text: str) -> str:
    with pytest.raises(InvalidSecretProviderClass) as caught:
        parse(text)
    return caught.value.message


def test_documented_example_with_every_field() -> None:
    (secret, key, cert) = parse(
        f"""
        array:
          - |
            objectName: db-password
            objectType: secret
            objectAlias: db/password.txt
            objectVersion: "{VERSION}"
            objectEncoding: base64
            filePermission: "0600"
          - |
            objectName: signing-key
            objectType: key
            objectVersionHistory: 3
          - |
            objectName: tls
            objectType: cert
            objectFormat: PEM
        """
    )
    assert secret == KeyVaultObject(
        index=0,
        name="db-password",
        object_type="secret",
        file_name="db/password.txt",
        version=VERSION,
        encoding="base64",
        mode=0o600,
    )
    assert (key.file_name, key.history, key.syncs_history, key.uid) == (
        "signing-key",
        3,
        True,
        "key/signing-key",
    )
    assert (cert.object_format, cert.encoding, cert.mode, cert.version) == (
        "pem",
        "utf-8",
        None,
        "",
    )


def test_unquoted_scalars_keep_their_text_as_yaml_v3_does() -> None:
    # PyYAML would read 0644 as the YAML 1.1 octal 420; Go's yaml.v3 hands the string field
    # its text "0644", which upstream then parses as octal.
    (obj,) = parse(
        """
        array:
          - |
            objectName: app
            objectType: secret
            filePermission: 0644
        """
    )
    assert obj.mode == 0o644


def test_whitespace_is_trimmed_and_latest_means_latest() -> None:
    (obj,) = parse(
        """
        array:
          - |
            objectName: "  app  "
            objectType: " secret "
            objectVersion: " latest "
            objectAlias: "  "
        """
    )
    assert (obj.name, obj.object_type, obj.version, obj.file_name) == ("app", "secret", "", "app")


def test_pfx_format_and_encodings_are_case_insensitive() -> None:
    (obj,) = parse(
        """
        array:
          - |
            objectName: tls
            objectType: secret
            objectFormat: PFX
            objectEncoding: Base64
        """
    )
    assert (obj.object_format, obj.encoding) == ("pfx", "base64")


def test_unknown_fields_are_ignored_like_yaml_v3() -> None:
    (obj,) = parse("array:\n  - |\n    objectName: a\n    objectType: secret\n    colour: red\n")
    assert obj.name == "a"


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        # A misspelt key: upstream decodes no objects, and the driver then fails the mount
        # with "missing object versions"; here the message says what is wrong.
        ("arry:\n  - |\n    objectName: a\n", "objects: has no 'array' list of objects"),
        ("other: 1\n", "objects: has no 'array' list of objects"),
        ("array: []\n", "objects.array: lists no objects"),
        ("array:\n", "objects.array: lists no objects"),
    ],
)
def test_no_objects_is_refused_naming_the_field(text: str, expected: str) -> None:
    with pytest.raises(InvalidSecretProviderClass, match=re.escape(expected)):
        parse(text)


def test_a_file_name_longer_than_a_file_system_allows_names_the_field() -> None:
    entry = "array:\n  - |\n    objectName: a\n    objectType: secret\n    objectAlias: d/{}\n"
    (obj,) = parse(entry.format("é" * 127))  # 254 bytes in UTF-8
    assert obj.file_name == "d/" + "é" * 127
    with pytest.raises(InvalidSecretProviderClass, match=r"objects\[0\]\.objectAlias: .*255"):
        parse(entry.format("é" * 128))


@pytest.mark.parametrize(
    ("entry", "expected"),
    [
        ("objectType: secret", "objects[0].objectName: is required"),
        ("objectName: a\nobjectType: secrets", "objects[0].objectType: invalid type"),
        ("objectName: a\nobjectType: Secret", "objects[0].objectType: invalid type"),
        ("objectName: a_b\nobjectType: secret", "objects[0].objectName: Key Vault names"),
        ("objectName: a\nobjectType: secret\nobjectVersion: v2", "objects[0].objectVersion"),
        (
            "objectName: a\nobjectType: secret\nobjectAlias: ../etc/passwd",
            "objects[0].objectAlias: file name must not contain '..'",
        ),
        (
            "objectName: a\nobjectType: secret\nobjectAlias: /etc/passwd",
            "objects[0].objectAlias: file name must be a relative path",
        ),
        (
            "objectName: a\nobjectType: secret\nobjectAlias: a/../../b",
            "objects[0].objectAlias: file name must not contain '..'",
        ),
        (
            "objectName: a\nobjectType: secret\nobjectAlias: a//b",
            "objects[0].objectAlias: file name must be a clean",
        ),
        (
            "objectName: a\nobjectType: secret\nobjectAlias: 'a\\b'",
            "objects[0].objectAlias: file name must not contain a backslash",
        ),
        (
            "objectName: a\nobjectType: key\nobjectFormat: pfx",
            "objects[0].objectFormat: PFX format only supported",
        ),
        (
            "objectName: a\nobjectType: secret\nobjectFormat: der",
            "objects[0].objectFormat: invalid objectFormat",
        ),
        (
            "objectName: a\nobjectType: cert\nobjectEncoding: hex",
            "objects[0].objectEncoding: objectEncoding only supported",
        ),
        (
            "objectName: a\nobjectType: secret\nobjectEncoding: utf-16",
            "objects[0].objectEncoding: invalid objectEncoding",
        ),
        (
            "objectName: a\nobjectType: secret\nfilePermission: rw-r--r--",
            "objects[0].filePermission",
        ),
        ("objectName: a\nobjectType: secret\nfilePermission: '01777'", "objects[0].filePermission"),
        (
            "objectName: a\nobjectType: secret\nobjectVersionHistory: '5'",
            "objects[0].objectVersionHistory: must be an integer",
        ),
        (
            "objectName: a\nobjectType: secret\nobjectVersionHistory: 99999999999",
            "objects[0].objectVersionHistory: must be an integer from",
        ),
        ("objectName: [a]\nobjectType: secret", "objects[0].objectName: must be a string"),
        ("- just a list", "objects[0]: must be a mapping, not a list"),
    ],
)
def test_bad_objects_name_the_field(entry: str, expected: str) -> None:
    text = "array:\n  - |\n" + textwrap.indent(entry, "    ") + "\n"
    assert expected in refusal(text)


def test_malformed_yaml_is_refused_without_quoting_it() -> None:
    message = refusal("array:\n  - |\n    objectName: [unclosed\n")
    assert message.startswith("objects[0]: invalid YAML at line")
    assert "unclosed" not in message
    assert refusal("array: [\n").startswith("objects: invalid YAML at line")


def test_array_must_be_a_list_of_strings() -> None:
    assert refusal("array: {a: 1}\n") == "objects.array: must be a list, not a mapping"
    assert "objects.array[0]: must be a string" in refusal("array:\n  - objectName: a\n")
    assert refusal("- a\n") == "objects: must be a mapping, not a list"
    assert "objects[0].objectName: is set more than once" in refusal(
        "array:\n  - |\n    objectName: a\n    objectName: b\n"
    )


def test_two_objects_writing_one_file_are_refused() -> None:
    message = refusal(
        """
        array:
          - |
            objectName: a
            objectType: secret
          - |
            objectName: b
            objectType: secret
            objectAlias: a
        """
    )
    assert message == "objects[1].objectAlias: file name 'a' is also used by objects[0]"


def test_an_entry_repeated_by_aliases_is_parsed_once(monkeypatch: pytest.MonkeyPatch) -> None:
    """A YAML alias repeats a long entry for three bytes: 100,000 aliases of a 60 KB entry
    would parse 6 GB. Each distinct entry is parsed once; a repeat writes the same file."""
    parsed: list[str] = []
    parse_entry = objects.parse_object

    def counting(index: int, text: str) -> KeyVaultObject:
        parsed.append(text)
        return parse_entry(index, text)

    monkeypatch.setattr(objects, "parse_object", counting)
    entry = "objectName: a\nobjectType: secret\n" + "#" * 60_000 + "\n"
    text = f"array:\n  - &a {json.dumps(entry)}\n" + "  - *a\n" * 1000
    with pytest.raises(InvalidSecretProviderClass) as caught:
        parse_objects(text)
    assert caught.value.message == "objects[1].objectName: file name 'a' is also used by objects[0]"
    assert parsed == [entry]


def test_uppercase_pfx_is_ignored_for_certificates_as_upstream() -> None:
    (obj,) = parse(
        "array:\n  - |\n    objectName: a\n    objectType: cert\n    objectFormat: PFX\n"
    )
    assert obj.object_format == "pfx"


@pytest.mark.parametrize(("written", "history"), [("2.9", 2), ("0x10", 16), ("010", 8), ("~", 0)])
def test_history_is_typed_as_yaml_v3_types_an_int32(written: str, history: int) -> None:
    entry = f"objectName: a\n    objectType: secret\n    objectVersionHistory: {written}"
    (obj,) = parse(f"array:\n  - |\n    {entry}\n")
    assert obj.history == history
