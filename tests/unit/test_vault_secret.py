"""A Vault response decoded and re-encoded as hashicorp's provider does (``api.Secret``).

Expected bytes follow vault ``api/secret.go`` (Secret, SecretAuth, SecretWrapInfo: field order
and ``omitempty`` tags; ParseSecret: UseNumber, raw-data fallback) marshalled by Go's
encoding/json (declaration order for structs, sorted maps, numbers as json.Number text).
"""

from __future__ import annotations

import pytest

from agent.errors import ProviderError
from agent.providers.common.gojson import loads
from agent.providers.vault.secret import parse_secret


def written(body: str) -> bytes:
    return parse_secret(loads(body)).to_json()


def test_kv2_read_as_openbao_sends_it() -> None:
    body = (
        '{"request_id":"r","lease_id":"","renewable":false,"lease_duration":0,"data":{"data":'
        '{"b":1.50,"a":"<x>"},"metadata":{"version":1}},"wrap_info":null,"warnings":null,'
        '"auth":null}'
    )
    assert written(body) == (
        b'{"request_id":"r","lease_id":"","lease_duration":0,"renewable":false,'
        b'"data":{"data":{"a":"\\u003cx\\u003e","b":1.50},"metadata":{"version":1}},'
        b'"warnings":null}'
    )


def test_set_optional_fields_are_written() -> None:
    body = (
        '{"request_id":"r","lease_duration":60,"renewable":true,"data":{},"warnings":["w"],'
        '"mount_type":"kv","wrap_info":{"token":"t","ttl":30,'
        '"creation_time":"2024-05-01T12:00:00.120000000+00:00","creation_path":"p"},'
        '"auth":{"client_token":"c","policies":["a"],"metadata":{"z":"1","a":"2"},'
        '"lease_duration":5}}'
    )
    assert written(body) == (
        b'{"request_id":"r","lease_id":"","lease_duration":60,"renewable":true,"data":{},'
        b'"warnings":["w"],"auth":{"client_token":"c","accessor":"","policies":["a"],'
        b'"token_policies":null,"identity_policies":null,"metadata":{"a":"2","z":"1"},'
        b'"orphan":false,"entity_id":"","lease_duration":5,"renewable":false,'
        b'"mfa_requirement":null},"wrap_info":{"token":"t","accessor":"","ttl":30,'
        b'"creation_time":"2024-05-01T12:00:00.12Z","creation_path":"p",'
        b'"wrapped_accessor":""},"mount_type":"kv"}'
    )


def test_field_names_match_case_insensitively() -> None:
    assert written('{"Request_ID":"r","DATA":{"k":"v"}}').startswith(b'{"request_id":"r"')


def test_body_without_secret_fields_is_the_data() -> None:
    secret = parse_secret(loads('{"k":"v","n":2}'))
    assert secret.data == loads('{"k":"v","n":2}')


def test_raw_fallback_with_vault_errors() -> None:
    # ParseSecret: errors alone mean no secret; errors beside other keys fail the read.
    assert parse_secret(loads('{"errors":["nope"]}')).data is None
    with pytest.raises(ProviderError, match=r"^Vault response holds errors: nope$"):
        parse_secret(loads('{"errors":["nope"],"k":"v"}'))


def test_present_but_empty_data_is_not_the_raw_fallback() -> None:
    assert parse_secret(loads('{"data":{},"other":1}')).data == {}


@pytest.mark.parametrize(
    ("body", "field"),
    [
        ('{"lease_duration":"60","data":{}}', "lease_duration"),
        ('{"lease_duration":1.5,"data":{}}', "lease_duration"),
        ('{"renewable":"yes","data":{}}', "renewable"),
        ('{"data":[1]}', "data"),
        ('{"warnings":[1],"data":{}}', "warnings"),
        ('{"auth":{"policies":"a"},"data":{}}', "auth.policies"),
    ],
)
def test_wrong_types_fail_as_go_decoding_does(body: str, field: str) -> None:
    with pytest.raises(ProviderError, match=rf"^Vault response\.{field}: expected "):
        parse_secret(loads(body))
