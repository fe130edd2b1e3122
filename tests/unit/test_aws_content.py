"""jmesPath extraction decodes a secret's JSON as ASCP's ``json.Unmarshal`` does
(aws/secrets-store-csi-driver-provider-aws ``provider/secret_value.go``)."""

from __future__ import annotations

import pytest

from agent.errors import ProviderError
from agent.providers.aws.config import parse_config
from agent.providers.aws.content import extract
from agent.providers.aws.objects import AwsObject


def secret_with_path(path: str) -> AwsObject:
    objects = (
        "- {objectName: s, objectType: secretsmanager, jmesPath: "
        f"[{{path: '{path}', objectAlias: out}}]}}\n"
    )
    return parse_config({"objects": objects, "region": "us-east-1"}, {}).objects[0]


def extracted(path: str, value: bytes) -> bytes:
    [(_, contents)] = extract(secret_with_path(path), value)
    return contents


def test_a_lone_surrogate_escape_becomes_the_replacement_character() -> None:
    # Go's decoder turns "\ud800" into U+FFFD; it must never fail to become the file's bytes.
    assert extracted("a", b'{"a": "\\ud800x"}') == "\ufffdx".encode()


def test_invalid_utf8_in_a_string_becomes_the_replacement_character() -> None:
    assert extracted("a", b'{"a": "\xff\xfe"}') == "\ufffd\ufffd".encode()


@pytest.mark.parametrize("constant", ["NaN", "Infinity", "-Infinity"])
def test_json_go_refuses_is_invalid_json(constant: str) -> None:
    with pytest.raises(ProviderError) as info:
        extracted("a", f'{{"a": "x", "b": {constant}}}'.encode())
    assert info.value.message == (
        "objects[0].jmesPath: Invalid JSON used with jmesPath in secret: s."
    )


def test_numbers_stay_numbers_for_jmespath_functions() -> None:
    assert extracted("to_string(port)", b'{"port": 5432}') == b"5432"
    assert extracted("to_string(ratio)", b'{"ratio": 1.5}') == b"1.5"
