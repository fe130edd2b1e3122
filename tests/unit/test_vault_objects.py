"""Parsing the ``objects`` YAML of a Vault SecretProviderClass."""

from __future__ import annotations

import pytest

from agent.errors import InvalidSecretProviderClass
from agent.providers.vault.objects import ReadKey, SecretObject, parse_objects


def one(yaml_text: str) -> SecretObject:
    objects, _ = parse_objects(yaml_text)
    assert len(objects) == 1
    return objects[0]


def error_of(yaml_text: str) -> str:
    with pytest.raises(InvalidSecretProviderClass) as info:
        parse_objects(yaml_text)
    return info.value.message


def test_all_fields() -> None:
    obj = one(
        """
- objectName: cert.pem
  secretPath: pki/issue/web
  secretKey: certificate
  method: post
  secretArgs: {common_name: web.example.com, ttl: 24h}
  filePermission: 0600
  encoding: BASE64
"""
    )
    assert obj.name == "cert.pem"
    assert obj.method == "POST"
    assert obj.mode == 0o600  # a leading 0 is octal, as gopkg.in/yaml.v3 reads it
    assert obj.encoding == "base64"
    assert obj.args_json == '{"common_name":"web.example.com","ttl":"24h"}'
    assert obj.read == ReadKey("POST", "/v1/pki/issue/web", (), obj.args_json)


@pytest.mark.parametrize(
    ("secret_path", "path"),
    [
        ("secret/data/app", "/v1/secret/data/app"),
        ("/secret/data/app", "/v1/secret/data/app"),
        ("v1/secret/data/app", "/v1/secret/data/app"),
        ("/v1/secret/data/app", "/v1/secret/data/app"),
    ],
)
def test_v1_prefix(secret_path: str, path: str) -> None:
    assert one(f"- {{objectName: a, secretPath: {secret_path}}}").read.path == path


def test_query_becomes_params() -> None:
    obj = one("- {objectName: a, secretPath: 'secret/data/app?version=3&x'}")
    assert obj.read.path == "/v1/secret/data/app"
    assert obj.read.query == (("version", "3"), ("x", ""))
    assert obj.secret_path == "secret/data/app?version=3&x"


@pytest.mark.parametrize(
    ("value", "mode"),
    [("0600", 0o600), ("0o640", 0o640), ("'0400'", 0o400), ("420", 0o644), ("0", None)],
)
def test_file_permission_forms(value: str, mode: int | None) -> None:
    assert one(f"- {{objectName: a, secretPath: p, filePermission: {value}}}").mode == mode


@pytest.mark.parametrize("value", ["01000", "-1", "'rw-r--r--'", "'600'", "true", "[1]"])
def test_bad_file_permission_names_index_and_field(value: str) -> None:
    text = "- {objectName: a, secretPath: p}\n"
    text += f"- {{objectName: b, secretPath: p, filePermission: {value}}}"
    assert error_of(text).startswith("objects[1].filePermission:")


# yaml.v3 into a string field keeps the scalar's text, whatever YAML 1.1 would type it as
# (decode.go scalar: out.SetString(n.Value)); only null leaves the field empty.
@pytest.mark.parametrize(
    "key",
    [
        "123",
        "0123",
        "0o17",
        "0x1F",
        "1_000",
        "1.50",
        "1e3",
        ".inf",
        "190:20:30",
        "on",
        "off",
        "yes",
        "no",
        "y",
        "N",
        "true",
        "False",
        "2001-12-14",
        "2001-12-14t21:59:43.10-05:00",
        "<<",
    ],
)
def test_secret_key_keeps_its_text(key: str) -> None:
    assert one(f"- {{objectName: a, secretPath: p, secretKey: {key}}}").key == key
    assert one(f"- objectName: {key}\n  secretPath: {key}").name == key


@pytest.mark.parametrize("null", ["~", "null", "Null", ""])
def test_null_secret_key_means_no_key_with_a_warning(null: str) -> None:
    objects, warnings = parse_objects(f"- {{objectName: a, secretPath: p, secretKey: {null}}}")
    assert objects[0].key == ""
    assert warnings == (
        "objects[0].secretKey: YAML null means no key (the whole response is written); "
        "quote it to name a key",
    )


@pytest.mark.parametrize(
    ("item", "field"),
    [
        ("{secretPath: p}", "objectName"),
        ("{objectName: '', secretPath: p}", "objectName"),
        ("{objectName: a}", "secretPath"),
        ("{objectName: a, secretPath: ''}", "secretPath"),
        ("{objectName: a, secretPath: /v1/}", "secretPath"),
        ("{objectName: [a], secretPath: p}", "objectName"),
        ("{objectName: /etc/passwd, secretPath: p}", "objectName"),
        ("{objectName: ../x, secretPath: p}", "objectName"),
        ("{objectName: a, secretPath: p, encoding: rot13}", "encoding"),
        ("{objectName: a, secretPath: p, method: 'GET /x'}", "method"),
        ('{objectName: a, secretPath: p, method: "GET\\n"}', "method"),
        ("{objectName: a, secretPath: p, secretArgs: [1]}", "secretArgs"),
        ("{objectName: a, secretPath: p, secretArgs: {n: .nan}}", "secretArgs"),
        ("{objectName: a, secretPath: p, secretArgs: {n: {1: x}}}", "secretArgs"),
        ("{objectName: a, secretPath: p, objectName: b}", "objectName"),
        ("{objectName: a, secretPath: p, secretKey: {x: 1}}", "secretKey"),
    ],
)
def test_errors_name_index_and_field(item: str, field: str) -> None:
    assert error_of(f"- {item}").startswith(f"objects[0].{field}:")


def test_names_must_be_unique() -> None:
    message = error_of("- {objectName: a, secretPath: p}\n- {objectName: a, secretPath: q}")
    assert message.startswith("objects[1].objectName:")
    assert "objects[0]" in message
    assert "unique" in message


@pytest.mark.parametrize("text", ["", "[]", "   "])
def test_no_objects(text: str) -> None:
    assert "no objects" in error_of(text)


@pytest.mark.parametrize(
    ("text", "problem"),
    [("a: b", "must be a list, not a mapping"), ("- just a string", "must be a mapping")],
)
def test_wrong_shapes(text: str, problem: str) -> None:
    assert problem in error_of(text)


def test_invalid_yaml_reports_position_not_content() -> None:
    message = error_of("- objectName: a\n  secretArgs: {password: hunter2\n")
    assert message.startswith("objects: invalid YAML at line")
    assert "hunter2" not in message


def test_unknown_fields_are_warnings() -> None:
    objects, warnings = parse_objects("- {objectName: a, secretPath: p, secretkey: typo}")
    assert len(objects) == 1
    assert warnings == ("objects[0]: unknown field 'secretkey' ignored",)


def test_secret_args_are_sent_as_go_marshals_them() -> None:
    # map[string]interface{} from yaml.v3: 0123 is the int 83, a date a time.Time, 1.50 a float.
    obj = one("- {objectName: a, secretPath: p, secretArgs: {n: 0123, d: 2020-01-01, f: 1.50}}")
    assert obj.args_json == '{"d":"2020-01-01T00:00:00Z","f":1.5,"n":83}'
    assert one("- {objectName: a, secretPath: p, secretArgs: {}}").args_json == "{}"
    assert one("- {objectName: a, secretPath: p, secretArgs: ~}").args_json is None


def test_canonical_config_is_stable_and_distinct() -> None:
    a = one("- {objectName: a, secretPath: p, secretArgs: {y: 1, x: 2}}")
    b = one("- {secretArgs: {x: 2, y: 1}, secretPath: p, objectName: a}")
    c = one("- {objectName: a, secretPath: p, secretKey: k}")
    assert a.canonical() == b.canonical()
    assert a.canonical() != c.canonical()


def test_encoding_without_key_is_a_warning() -> None:
    # Upstream writes the whole response and ignores encoding; say so rather than fail.
    _, warnings = parse_objects("- {objectName: a, secretPath: p, encoding: base64}")
    assert warnings == ("objects[0]: encoding is ignored without secretKey",)
