"""Every validation rule of ASCP's SecretProviderClass format (provider/secret_descriptor.go and
server/server.go, read for their rules and wording): each error names the field at fault and
keeps ASCP's message, so users find it; nothing is fetched before all of it passes."""

from __future__ import annotations

import textwrap

import pytest

from agent.errors import InvalidSecretProviderClass
from agent.providers.aws.config import AwsConfig, parse_config

SM_ARN = "arn:aws:secretsmanager:us-east-1:123456789012:secret:db-AbCdEf"
SSM_ARN = "arn:aws:ssm:us-east-1:123456789012:parameter/app/key"
WEST_ARN = "arn:aws:secretsmanager:us-west-2:123456789012:secret:db-AbCdEf"


def parse(objects: str, env: dict[str, str] | None = None, **parameters: str) -> AwsConfig:
    attributes = {"objects": textwrap.dedent(objects), "region": "us-east-1", **parameters}
    return parse_config(attributes, env or {})


def error_of(objects: str, **parameters: str) -> str:
    with pytest.raises(InvalidSecretProviderClass) as info:
        parse(objects, None, **parameters)
    return info.value.message


def test_a_valid_configuration() -> None:
    config = parse(
        f"""
        - objectName: /app/db
          objectType: ssmparameter
          objectVersion: "3"
        - objectName: {SM_ARN}
          objectAlias: db
          filePermission: "0400"
          jmesPath: [{{path: user, objectAlias: user}}]
          failoverObject: {{objectName: {WEST_ARN}}}
        - objectName: {SSM_ARN}
        """,
        failoverRegion="us-west-2",
        usePodIdentity="True",
        preferredAddressType="IPv6",
    )
    assert config.regions == ("us-east-1", "us-west-2")
    assert config.use_pod_identity
    assert config.address_type == "ipv6"
    ssm, secret, by_arn = config.objects
    assert (ssm.service, ssm.file_name, ssm.primary.version) == ("ssmparameter", "_app_db", "3")
    assert (secret.service, secret.file_name, secret.mode) == ("secretsmanager", "db", 0o400)
    assert secret.failover.name == WEST_ARN
    assert secret.jmes[0].mode == 0o400  # inherits the object's filePermission
    assert by_arn.service == "ssmparameter"  # an SSM ARN's service is "ssm"


def test_field_names_match_case_insensitively_as_in_go() -> None:
    (obj,) = parse("- {objectname: db, OBJECTTYPE: secretsmanager, objectalias: x}").objects
    assert (obj.name, obj.alias) == ("db", "x")


def test_unquoted_scalars_become_text_as_sigs_yaml_makes_them() -> None:
    # ASCP's decoder types the scalar first (YAML 1.1), then writes the typed value as text.
    (obj,) = parse(
        "- {objectName: p, objectType: ssmparameter, objectVersion: 3, objectAlias: on}"
    ).objects
    assert (obj.primary.version, obj.alias) == ("3", "true")


def test_an_unquoted_octal_permission_fails_as_in_ascp() -> None:
    # YAML 1.1 reads 0400 as the octal number 256, which becomes the text "256".
    message = error_of("- {objectName: p, objectType: ssmparameter, filePermission: 0400}")
    assert message.startswith("objects[0].filePermission: Invalid File Permission: 256")


def test_a_failover_object_falls_back_to_the_primary_fields() -> None:
    (obj,) = parse(
        f"""
        - objectName: {SM_ARN}
          objectAlias: db
          objectVersionLabel: AWSPREVIOUS
          failoverObject: {{objectName: {WEST_ARN}}}
        """,
        failoverRegion="us-west-2",
    ).objects
    assert obj.target(True).label == "AWSPREVIOUS"


def test_special_permission_bits_are_dropped_as_upstream_does() -> None:
    (obj,) = parse('- {objectName: a, objectType: ssmparameter, filePermission: "4755"}').objects
    assert obj.mode == 0o755


def test_the_region_defaults_to_aws_region() -> None:
    attributes = {"objects": "- {objectName: a, objectType: ssmparameter}"}
    config = parse_config(attributes, {"AWS_REGION": "eu-west-1"})
    assert config.regions == ("eu-west-1",)


def test_an_unknown_address_type_warns_and_uses_auto() -> None:
    config = parse("- {objectName: a, objectType: ssmparameter}", preferredAddressType="ipv5")
    assert config.address_type == "auto"
    assert config.warnings == ("preferredAddressType: unknown value 'ipv5', using auto",)


PARAMETER_ERRORS = [
    (
        {"pathTranslation": "ab"},
        "pathTranslation: pathTranslation must be either 'False' or a single character string",
    ),
    ({"pathTranslation": "é"}, "pathTranslation: pathTranslation must be either"),
    (
        {"region": "us-east-1", "failoverRegion": "us-east-1"},
        "failoverRegion: us-east-1: failover region cannot be the same as the primary region",
    ),
    ({"region": "us east 1"}, "region: 'us east 1' is not an AWS region name"),
    ({"failoverRegion": "../x"}, "failoverRegion: '../x' is not an AWS region name"),
    # Before: accepted (Python's "$" matches before a final newline, Go's does not), and the
    # fetch failed with "unexpected error reading from AWS: ValueError".
    ({"region": "us-east-1\n"}, "region: 'us-east-1\\n' is not an AWS region name"),
    ({"failoverRegion": "us-west-2\n"}, "failoverRegion: 'us-west-2\\n' is not an AWS region"),
    ({"usePodIdentity": "maybe"}, "usePodIdentity: failed to parse usePodIdentity value"),
]


@pytest.mark.parametrize(("parameters", "expected"), PARAMETER_ERRORS)
def test_parameter_errors(parameters: dict[str, str], expected: str) -> None:
    assert expected in error_of("- {objectName: a, objectType: ssmparameter}", **parameters)


def test_no_region_anywhere() -> None:
    attributes = {"objects": "- {objectName: a, objectType: ssmparameter}"}
    with pytest.raises(InvalidSecretProviderClass, match=r"^region: not set.*AWS_REGION"):
        parse_config(attributes, {})


OBJECT_ERRORS = [
    # The objects text itself.
    ("- [unclosed", "objects: invalid YAML at line"),
    ("objectName: a", "objects: must be a list, not a mapping"),
    ("[]", "objects: no objects configured"),
    ("- ~", "objects[0]: Empty descriptor entry in SecretProviderClass"),
    ("- just-a-string", "objects[0]: must be a mapping, not a string"),
    ("- {objectName: [a], objectType: ssmparameter}", "objects[0].objectName: must be a string"),
    # objectName and objectType (ASCP's validateObjectName).
    ("- {objectType: ssmparameter}", "objects[0].objectName: Object name must be specified"),
    (
        "- {objectName: 'arn:aws:secretsmanager'}",
        "objects[0].objectName: Invalid ARN format in object name: arn:aws:secretsmanager",
    ),
    (
        f"- {{objectName: '{WEST_ARN}'}}",
        f"objects[0].objectName: ARN region must match region us-east-1: {WEST_ARN}",
    ),
    (
        "- {objectName: db}",
        "objects[0].objectType: Must use objectType when a full ARN is not specified: db",
    ),
    (
        "- {objectName: 'arn:aws:s3:us-east-1:1:bucket'}",
        "objects[0].objectName: Invalid service in ARN: s3",
    ),
    ("- {objectName: db, objectType: ssm}", "objects[0].objectType: Invalid objectType: ssm"),
    ("- {objectName: db, objectType: vault}", "objects[0].objectType: Invalid objectType: vault"),
    (
        f"- {{objectName: '{SM_ARN}', objectType: ssmparameter}}",
        f"objects[0].objectType: objectType does not match ARN: {SM_ARN}",
    ),
    # Versions.
    (
        "- {objectName: p, objectType: ssmparameter, objectVersion: '1', objectVersionLabel: l}",
        "objects[0].objectVersionLabel: ssm parameters can not specify both objectVersion and "
        "objectVersionLabel: p",
    ),
    # File names and permissions.
    (
        "- {objectName: a, objectType: ssmparameter, objectAlias: ../x}",
        "objects[0].objectAlias: path can not contain ../: a",
        {"pathTranslation": "False"},
    ),
    (
        "- {objectName: a, objectType: ssmparameter, objectAlias: ../x}",
        "objects[0].objectAlias: invalid file path '.._x': must not start with '..'",
    ),
    (
        "- {objectName: /a/../b, objectType: ssmparameter}",
        "objects[0].objectName: path can not contain ../: /a/../b",
        {"pathTranslation": "False"},
    ),
    (
        "- {objectName: a, objectType: ssmparameter, objectAlias: ..data}",
        "objects[0].objectAlias: invalid file path '..data': must not start with '..'",
    ),
    (
        "- {objectName: a, objectType: ssmparameter, filePermission: '644'}",
        "objects[0].filePermission: Invalid File Permission: 644",
    ),
    (
        "- {objectName: a, objectType: ssmparameter, filePermission: '0o644'}",
        "objects[0].filePermission: Invalid File Permission: 0o644",
    ),
    (  # ASCP's ^[0-7]{4}$ in Go refuses a final newline
        '- {objectName: a, objectType: ssmparameter, filePermission: "0640\\n"}',
        "objects[0].filePermission: Invalid File Permission: 0640\n",
    ),
    # jmesPath entries.
    (
        "- {objectName: a, objectType: secretsmanager, jmesPath: user}",
        "objects[0].jmesPath: must be a list",
    ),
    (
        "- {objectName: a, objectType: secretsmanager, jmesPath: [{objectAlias: u}]}",
        "objects[0].jmesPath[0].path: Path must be specified for JMES object",
    ),
    (
        "- {objectName: a, objectType: secretsmanager, jmesPath: [{path: u}]}",
        "objects[0].jmesPath[0].objectAlias: Object alias must be specified for JMES object",
    ),
    (
        "- {objectName: a, objectType: secretsmanager,"
        " jmesPath: [{path: u, objectAlias: u, filePermission: rw}]}",
        "objects[0].jmesPath[0].filePermission: Invalid File Permission: rw",
    ),
    (
        "- {objectName: a, objectType: secretsmanager, jmesPath: [{path: 'a-b', objectAlias: u}]}",
        "objects[0].jmesPath[0].path: Invalid JMES Path: a-b.",
    ),
    (
        "- {objectName: a, objectType: secretsmanager, jmesPath: [{path: u, objectAlias: ../u}]}",
        "objects[0].jmesPath[0].objectAlias: invalid file path '.._u'",
    ),
    # failoverObject.
    (
        f"- {{objectName: '{SM_ARN}', failoverObject: {{objectName: '{WEST_ARN}'}}}}",
        f"objects[0].objectAlias: object alias must be specified for objects with failover "
        f"entries: {WEST_ARN}",
        {"failoverRegion": "us-west-2"},
    ),
    (
        f"- {{objectName: '{SM_ARN}', objectAlias: db,"
        f" failoverObject: {{objectName: '{WEST_ARN}'}}}}",
        "objects[0].failoverObject.objectName: failover object allowed only when failover region "
        "is defined",
    ),
    (
        f"- {{objectName: '{SM_ARN}', objectAlias: db,"
        f" failoverObject: {{objectName: '{SM_ARN}'}}}}",
        "objects[0].failoverObject.objectName: ARN region must match region us-west-2",
        {"failoverRegion": "us-west-2"},
    ),
    (
        "- {objectName: p, objectType: ssmparameter, objectAlias: p, objectVersion: '1',"
        " failoverObject: {objectName: q, objectVersion: '1', objectVersionLabel: l}}",
        "objects[0].failoverObject.objectVersionLabel: ssm parameters can not specify both",
        {"failoverRegion": "us-west-2"},
    ),
    (
        "- {objectName: p, objectType: ssmparameter, objectAlias: p, objectVersion: '1',"
        " failoverObject: {objectName: q, objectVersion: '2'}}",
        "objects[0].failoverObject.objectVersion: object versions must match between primary and "
        "failover regions: p",
        {"failoverRegion": "us-west-2"},
    ),
    # Duplicates: ASCP's four cases for one name, then aliases across objects and jmesPath.
    (
        "- {objectName: a, objectType: ssmparameter, objectAlias: x}\n"
        "- {objectName: a, objectType: ssmparameter, objectAlias: x}",
        "objects[1].objectAlias: found descriptor with duplicate object name a (also objects[0]), "
        "duplicate object alias x, and no version label",
    ),
    (
        "- {objectName: a, objectType: ssmparameter, objectVersionLabel: l}\n"
        "- {objectName: a, objectType: ssmparameter, objectVersionLabel: l}",
        "objects[1].objectVersionLabel: found descriptor with duplicate object name a (also "
        "objects[0]), no object alias, and duplicate version label l",
    ),
    (
        "- {objectName: a, objectType: ssmparameter, objectAlias: x, objectVersionLabel: l}\n"
        "- {objectName: a, objectType: ssmparameter, objectAlias: x, objectVersionLabel: l}",
        "objects[1].objectAlias: found descriptor with duplicate object name a (also objects[0]), "
        "duplicate object alias x, and duplicate version label l",
    ),
    (
        "- {objectName: a, objectType: ssmparameter}\n- {objectName: a, objectType: ssmparameter}",
        "objects[1].objectName: found descriptor with duplicate object name a (also objects[0]), "
        "no object alias, and no version label",
    ),
    (
        "- {objectName: a, objectType: ssmparameter, objectAlias: x}\n"
        "- {objectName: b, objectType: ssmparameter, objectAlias: x}",
        "objects[1].objectAlias: found duplicate object alias x (also objects[0].objectAlias)",
    ),
    (
        "- {objectName: a, objectType: secretsmanager, objectAlias: x}\n"
        "- {objectName: b, objectType: secretsmanager, jmesPath: [{path: u, objectAlias: x}]}",
        "objects[1].jmesPath[0].objectAlias: Name already in use for objectAlias: found duplicate "
        "object alias x in JMES path entry u",
    ),
    # Beyond ASCP: two entries that would write one file.
    (
        "- {objectName: a/b, objectType: ssmparameter}\n"
        "- {objectName: a_b, objectType: ssmparameter}",
        "objects[1].objectName: writes file 'a_b', as objects[0].objectName does",
    ),
]


@pytest.mark.parametrize("case", OBJECT_ERRORS, ids=lambda case: case[1][:60])
def test_object_errors(case: tuple[str, str] | tuple[str, str, dict[str, str]]) -> None:
    objects, expected = case[0], case[1]
    parameters = case[2] if len(case) > 2 else {}
    assert expected in error_of(objects, **parameters)


def test_yaml_errors_never_quote_the_text() -> None:
    message = error_of("- {objectName: hunter2-secret-name\n  bad: [")
    assert "hunter2" not in message
