"""``goyaml`` decodes embedded YAML as each upstream provider's Go library does.

Expected values are what the Go code paths produce, read from their sources: yaml.v3 v3.0.1
``resolve.go``/``decode.go`` (vault, azure, gcp), yaml.v2 v2.4.0 (same files), and
sigs.k8s.io/yaml v1.6.0 ``yaml.go`` ``convertToJSONableObject`` (aws), which formats numbers
for string targets with ``strconv.FormatInt`` / ``FormatFloat(f, 'g', -1, 32)``.
"""

from __future__ import annotations

import pytest

from agent.errors import InvalidSecretProviderClass
from agent.providers.common.gojson import AnyKeyMap, GoTime, marshal
from agent.providers.common.goyaml import Decoder, GoYAMLError, load, load_all

V3, V2, SIGS = Decoder.YAML_V3, Decoder.YAML_V2, Decoder.SIGS_YAML


def field(text: str, decoder: Decoder, name: str = "k") -> str:
    return load(f"{name}: {text}", decoder, where="doc").struct().string(name)


# (scalar as written, yaml.v3 and v2 string field, sigs.k8s.io/yaml string field)
STRING_FIELDS = [
    ("0123", "0123", "83"),  # YAML 1.1 octal: v2/v3 keep the text, sigs formats the int
    ("0o17", "0o17", "15"),
    ("0x1F", "0x1F", "31"),
    ("0b101", "0b101", "5"),
    ("1_000", "1_000", "1000"),
    ("-0012", "-0012", "-10"),
    ("09", "09", "9"),  # not octal: ParseInt fails, the float regex takes it
    ("1.10", "1.10", "1.1"),
    ("1e3", "1e3", "1000"),
    ("123456789.0", "123456789.0", "1.2345679e+08"),  # FormatFloat(..., 32)
    ("1e400", "1e400", "1e400"),  # overflow: stays a string in all three
    (".5", ".5", "0.5"),
    (".inf", ".inf", "+Inf"),
    ("-.Inf", "-.Inf", "-Inf"),
    (".nan", ".nan", "NaN"),
    ("on", "on", "true"),
    ("Off", "Off", "false"),
    ("yes", "yes", "true"),
    ("n", "n", "false"),
    ("true", "true", "true"),
    ("FALSE", "FALSE", "false"),
    ("190:20:30", "190:20:30", "190:20:30"),  # sexagesimal: unsupported, a string
    ("2001-12-14", "2001-12-14", "2001-12-14"),  # timestamps: text for string targets
    (
        "2001-12-14t21:59:43.10-05:00",
        "2001-12-14t21:59:43.10-05:00",
        "2001-12-14t21:59:43.10-05:00",
    ),
    ("'0123'", "0123", "0123"),
    ('"on"', "on", "on"),
    ("!!str 0123", "0123", "0123"),
    ("!!int 0123", "0123", "83"),
    ("|\n  0123\n", "0123\n", "0123\n"),
    ("~", "", ""),  # null leaves Go's zero value in all three
    ("null", "", ""),
    ("", "", ""),
    ("!!binary |\n  aGVs\n  bG8=", "hello", "hello"),  # Go's base64 skips the line breaks
]


@pytest.mark.parametrize(("text", "go_yaml", "sigs"), STRING_FIELDS)
def test_string_fields(text: str, go_yaml: str, sigs: str) -> None:
    assert field(text, V3) == go_yaml
    assert field(text, V2) == go_yaml
    assert field(text, SIGS) == sigs


@pytest.mark.parametrize(
    ("text", "mode"),
    [("0440", 0o440), ("0o440", 0o440), ("0x1A4", 0o644), ("420", 420), ("0", 0), ("~", 0)],
)
def test_file_mode_reads_as_go_reads_it(text: str, mode: int) -> None:
    for decoder in Decoder:
        value = load(f"m: {text}", decoder, where="o").struct().get("m")
        assert value is not None
        assert value.integer(bits=32, signed=False) == mode


def test_float_into_int_field_truncates_in_yaml_but_fails_through_json() -> None:
    assert load("m: 420.9", V3, where="o").struct().integer("m") == 420
    assert load("m: 420.9", V2, where="o").struct().integer("m") == 420
    with pytest.raises(GoYAMLError, match=r"^o\.m: must be an integer, not a number with"):
        load("m: 420.9", SIGS, where="o").struct().integer("m")
    assert load("m: 4.2e2", SIGS, where="o").struct().integer("m") == 420


@pytest.mark.parametrize(
    ("text", "problem"),
    [
        ('"0440"', "must be an integer, not a string"),
        ("rw", "must be an integer, not a string"),
        ("true", "must be an integer, not a boolean"),
        ("{a: 1}", "must be an integer, not a mapping"),
        ("[1]", "must be an integer, not a list"),
        ("-1", "must be an integer from 0 to 4294967295"),
        ("4294967296", "must be an integer from 0 to 4294967295"),
        (".inf", "must be an integer, not an infinite or NaN number"),
        ("2024-01-01", "must be an integer, not a timestamp"),
    ],
)
def test_int_field_errors_name_the_path_not_the_value(text: str, problem: str) -> None:
    doc = load(f"- m: {text}", V3, where="objects")
    with pytest.raises(InvalidSecretProviderClass) as info:
        doc.sequence()[0].struct().integer("m", bits=32, signed=False)
    assert info.value.message == f"objects[0].m: {problem}"


@pytest.mark.parametrize(
    ("text", "v3", "v2"),
    [("true", True, True), ("on", True, True), ("NO", False, False), ('"yes"', True, None)],
)
def test_bool_fields(text: str, v3: bool, v2: bool | None) -> None:
    assert load(f"b: {text}", V3, where="o").struct().boolean("b") is v3
    if v2 is None:  # yaml.v2 only takes a resolved boolean
        with pytest.raises(GoYAMLError, match=r"^o\.b: must be a boolean, not a string$"):
            load(f"b: {text}", V2, where="o").struct().boolean("b")
    else:
        assert load(f"b: {text}", V2, where="o").struct().boolean("b") is v2


def test_absent_and_null_fields() -> None:
    fields = load("a: ~\nb:\n", V3, where="o").struct()
    assert fields.get("missing") is None
    assert fields.integer("a") is None and fields.boolean("b") is None
    assert fields.string("a") == ""
    with pytest.raises(GoYAMLError, match=r"^o\.missing: is required$"):
        fields.string("missing", required=True)


def test_sequence_paths_and_shapes() -> None:
    doc = load("- a: 1\n- 5\n", V3, where="objects")
    items = doc.sequence()
    assert [item.where for item in items] == ["objects[0]", "objects[1]"]
    with pytest.raises(GoYAMLError, match=r"^objects\[1\]: must be a mapping, not an integer$"):
        items[1].struct()
    with pytest.raises(GoYAMLError, match=r"^objects: must be a list, not a mapping$"):
        load("a: 1", V3, where="objects").sequence()
    assert load("", V3, where="objects").sequence() == []
    assert load("~", V3, where="objects").sequence() == []


def test_string_field_refuses_collections() -> None:
    with pytest.raises(GoYAMLError, match=r"^o\.k: must be a string, not a mapping$"):
        load("k: {a: b}", V3, where="o").struct().string("k")


def test_azure_array_of_strings() -> None:
    text = "array:\n  - |\n    objectName: s1\n    objectType: secret\n  - 0123\n"
    items = load(text, V3, where="objects").struct().get("array")
    assert items is not None
    assert items.strings() == ["objectName: s1\nobjectType: secret\n", "0123"]
    inner = load(items.strings()[0], V3, where="objects[0]").struct()
    assert inner.string("objectType") == "secret"


def test_field_names_exact_in_yaml_case_insensitive_through_json() -> None:
    text = "objectName: a\nObjectName: b\nOBJECTTYPE: secretsmanager\n"
    v3 = load(text, V3, where="o").struct()
    assert v3.string("objectName") == "a"
    assert v3.unknown(["objectName", "objectType"]) == ["ObjectName", "OBJECTTYPE"]
    sigs = load(text, SIGS, where="o").struct()
    # encoding/json sees the keys sorted ("OBJECTTYPE" < "ObjectName" < "objectName"): last wins.
    assert sigs.string("objectName") == "a"
    assert sigs.string("objectType") == "secretsmanager"
    assert sigs.unknown(["objectName", "objectType"]) == []


def test_duplicate_keys_fail_in_v3_last_wins_elsewhere() -> None:
    text = "k: 1\nk: 2\n"
    with pytest.raises(GoYAMLError, match=r"^o\.k: is set more than once$"):
        load(text, V3, where="o").struct().string("k")
    with pytest.raises(GoYAMLError, match=r"^o: the mapping key on line 2 is already defined$"):
        load(text, V3, where="o").string_map()
    assert load(text, V2, where="o").struct().string("k") == "2"
    assert load(text, SIGS, where="o").string_map() == {"k": "2"}


def test_merge_keys() -> None:
    text = "base: &b {a: 1, c: 3}\nother: &o {a: 9, d: 4}\nk:\n  a: 2\n  <<: [*b, *o]\n"
    v3 = load(text, V3, where="o").struct().get("k")
    assert v3 is not None
    assert v3.string_map() == {"a": "2", "c": "3", "d": "4"}  # written wins, first source next
    v2 = load(text, V2, where="o").struct().get("k")
    assert v2 is not None
    assert v2.struct().string("a") == "1"  # yaml.v2 applies the merge where it stands


def test_interface_values() -> None:
    text = "a: 0123\nb: 1.50\nc: on\nd: 2001-12-14\ne: ~\nf: [x, 2]\ng: {1: x}\n"
    v3 = load(text, V3, where="o").any()
    assert isinstance(v3, dict)
    assert v3["a"] == 83 and v3["b"] == 1.5 and v3["c"] == "on" and v3["e"] is None
    assert v3["d"] == GoTime("2001-12-14T00:00:00Z")
    assert v3["f"] == ["x", 2]
    assert isinstance(v3["g"], AnyKeyMap) and v3["g"] == {1: "x"}
    v2 = load(text, V2, where="o").any()
    assert isinstance(v2, AnyKeyMap)  # yaml.v2: every mapping is map[interface{}]interface{}
    assert v2["c"] is True and v2["d"] == "2001-12-14"
    sigs = load(text, SIGS, where="o").any()
    assert sigs == {
        "a": 83.0,
        "b": 1.5,
        "c": True,
        "d": "2001-12-14",
        "e": None,
        "f": ["x", 2.0],
        "g": {"1": "x"},
    }


def test_secret_args_marshal_as_go_would() -> None:
    args = load("ttl: 1h\nn: 0123\nf: 1.50\nt: 2024-01-01 10:00:00\n", V3, where="a").any_map()
    assert marshal(args) == b'{"f":1.5,"n":83,"t":"2024-01-01T10:00:00Z","ttl":"1h"}'


def test_kubectl_view_of_a_manifest() -> None:
    text = "spec:\n  parameters:\n    a: 0123\n    b: 1:30\n    c: 2024-01-01\n    1: x\n"
    assert load(text, SIGS, where="f").json() == {
        "spec": {"parameters": {"a": 83, "b": "1:30", "c": "2024-01-01", "1": "x"}}
    }
    with pytest.raises(GoYAMLError, match=r"^f: a null mapping key cannot be converted to JSON$"):
        load("~: x", SIGS, where="f").json()
    with pytest.raises(GoYAMLError, match=r"^f\.a: an infinite or NaN number cannot be"):
        load("a: .nan", SIGS, where="f").json()


def test_first_document_only_and_load_all() -> None:
    assert load("a: 1\n---\na: 2\n", V3, where="o").struct().string("a") == "1"
    docs = load_all("a: 1\n---\na: 2\n", SIGS, where="f.yaml")
    assert [d.where for d in docs] == ["f.yaml (document 1)", "f.yaml (document 2)"]


def test_syntax_error_reports_position_only() -> None:
    with pytest.raises(GoYAMLError) as info:
        load("- objectName: a\n  secretArgs: {password: hunter2\n", V3, where="objects")
    assert info.value.message.startswith("objects: invalid YAML at line")
    assert "hunter2" not in info.value.message


def test_tag_mismatch_is_an_error() -> None:
    with pytest.raises(GoYAMLError, match=r"^o\.k: cannot decode !!str as a !!int$"):
        load("k: !!int abc", V3, where="o").struct().string("k")


def test_alias_bomb_is_refused() -> None:
    lines = ["a0: &a0 [x, x, x, x, x, x, x, x, x, x]"]
    lines += [
        f"a{i}: &a{i} [*a{i - 1}, *a{i - 1}, *a{i - 1}, *a{i - 1}, *a{i - 1}]" for i in range(1, 9)
    ]
    with pytest.raises(GoYAMLError, match="aliases"):
        load("\n".join(lines), V3, where="o").any()
