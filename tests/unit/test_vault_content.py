"""Extracting file content and versions from Vault responses."""

from __future__ import annotations

import base64
import json

import pytest

from agent.errors import ProviderError
from agent.providers.common.gojson import loads
from agent.providers.vault.content import object_content, object_version
from agent.providers.vault.objects import SecretObject, parse_objects
from agent.providers.vault.secret import VaultSecret, parse_secret


def response(text: str) -> VaultSecret:
    return parse_secret(loads(text))


KV2 = response(
    '{"request_id":"r1","data":{"data":{"user":"alice","n":3,"tags":["a"],"b64":"aGk=",'
    '"hex":"6869"}}}'
)
KV1 = response('{"request_id": "r2", "data": {"user": "bob", "data": "flat"}}')


def obj(**fields: object) -> SecretObject:
    item = {"objectName": "f", "secretPath": "p", **fields}
    objects, _ = parse_objects(json.dumps([item]))
    return objects[0]


def test_kv2_key_is_read_from_data_data() -> None:
    assert object_content(obj(secretKey="user"), KV2) == b"alice"


def test_kv1_key_is_read_from_data() -> None:
    assert object_content(obj(secretKey="user"), KV1) == b"bob"
    # `data` here is a string, not a map, so there is nothing to descend into.
    assert object_content(obj(secretKey="data"), KV1) == b"flat"


def test_non_string_values_are_json() -> None:
    assert object_content(obj(secretKey="n"), KV2) == b"3"
    assert object_content(obj(secretKey="tags"), KV2) == b'["a"]'


def test_without_key_the_whole_response_is_written_as_api_secret() -> None:
    # json.Marshal(*api.Secret) (vault api/secret.go): declaration order, omitempty fields gone.
    assert object_content(obj(), KV1) == (
        b'{"request_id":"r2","lease_id":"","lease_duration":0,"renewable":false,'
        b'"data":{"data":"flat","user":"bob"},"warnings":null}'
    )


@pytest.mark.parametrize(("key", "encoding"), [("b64", "base64"), ("hex", "hex")])
def test_encodings_decode_the_value(key: str, encoding: str) -> None:
    assert object_content(obj(secretKey=key, encoding=encoding), KV2) == b"hi"


@pytest.mark.parametrize("encoding", ["base64", "hex"])
def test_bad_encoding_does_not_echo_the_value(encoding: str) -> None:
    with pytest.raises(ProviderError) as info:
        object_content(obj(secretKey="user", encoding=encoding), KV2)
    assert "'f'" in info.value.message
    assert "'user'" in info.value.message
    assert "alice" not in info.value.message


def test_missing_key_names_object_and_key() -> None:
    with pytest.raises(ProviderError, match=r"object 'f': key 'nope' does not exist at p"):
        object_content(obj(secretKey="nope"), KV2)


def test_version_changes_exactly_with_content_or_config() -> None:
    key = b"k" * 32
    base = object_version(key, obj(secretKey="user"), b"alice")
    assert base.id == "f"
    assert base == object_version(key, obj(secretKey="user"), b"alice")
    assert base != object_version(key, obj(secretKey="user"), b"alice2")
    assert base != object_version(key, obj(secretKey="other"), b"alice")
    assert base != object_version(b"x" * 32, obj(secretKey="user"), b"alice")
    assert len(base64.urlsafe_b64decode(base.version)) == 32
