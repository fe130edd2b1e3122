"""The AWS provider against a real moto server: Secrets Manager, SSM Parameter Store and STS
(IRSA through moto's AssumeRoleWithWebIdentity)."""

from __future__ import annotations

import json
from collections.abc import AsyncIterator

import pytest

from agent.errors import InvalidSecretProviderClass, ProviderError, ProviderUnavailable
from agent.model import MountResult, ObjectVersion
from agent.providers.aws import AwsProvider
from tests.fakes.aws_fault_proxy import FaultProxy
from tests.support.aws import ServiceAccounts, aws_provider, aws_request
from tests.support.moto import MotoServer, unique


@pytest.fixture
def accounts() -> ServiceAccounts:
    accounts = ServiceAccounts()
    accounts.add("default", "web")
    return accounts


@pytest.fixture
async def provider(moto: MotoServer, accounts: ServiceAccounts) -> AsyncIterator[AwsProvider]:
    provider = aws_provider(moto.address, accounts)
    yield provider
    await provider.close()


@pytest.fixture
async def proxy(moto: MotoServer) -> AsyncIterator[FaultProxy]:
    proxy = FaultProxy(moto.address)
    await proxy.start()
    yield proxy
    await proxy.stop()


@pytest.fixture
def secrets(moto: MotoServer) -> object:
    return moto.client("secretsmanager")


@pytest.fixture
def ssm(moto: MotoServer) -> object:
    return moto.client("ssm")


def files_of(result: MountResult) -> dict[str, bytes]:
    return {f.path: f.contents for f in result.files}


async def test_secret_with_alias_mode_and_version(provider: AwsProvider, secrets: object) -> None:
    name = unique("db")
    created = secrets.create_secret(Name=name, SecretString="hunter2")  # type: ignore[attr-defined]
    request = aws_request(
        f"""
        - objectName: {name}
          objectType: secretsmanager
          objectAlias: password
          filePermission: "0400"
        """
    )
    result = await provider.mount(request)
    (file,) = result.files
    assert (file.path, file.mode, file.contents) == ("password", 0o400, b"hunter2")
    assert result.versions == (ObjectVersion("password", created["VersionId"]),)


async def test_full_arn_needs_no_object_type_and_names_the_file(
    provider: AwsProvider, secrets: object
) -> None:
    arn = secrets.create_secret(Name=unique("arn"), SecretString="v")["ARN"]  # type: ignore[attr-defined]
    result = await provider.mount(aws_request(f"- objectName: {arn}"))
    assert files_of(result) == {arn: b"v"}


async def test_version_id_and_stage_label(provider: AwsProvider, secrets: object) -> None:
    name = unique("rotated")
    first = secrets.create_secret(Name=name, SecretString="one")["VersionId"]  # type: ignore[attr-defined]
    second = secrets.put_secret_value(SecretId=name, SecretString="two")["VersionId"]  # type: ignore[attr-defined]
    request = aws_request(
        f"""
        - {{objectName: {name}, objectType: secretsmanager, objectAlias: current}}
        - {{objectName: {name}, objectType: secretsmanager, objectAlias: pinned,
            objectVersion: {first}}}
        - {{objectName: {name}, objectType: secretsmanager, objectAlias: previous,
            objectVersionLabel: AWSPREVIOUS}}
        """
    )
    result = await provider.mount(request)
    assert files_of(result) == {"current": b"two", "pinned": b"one", "previous": b"one"}
    assert {v.id: v.version for v in result.versions} == {
        "current": second,
        "pinned": first,
        "previous": first,
    }


async def test_binary_secret_is_written_as_raw_bytes(
    provider: AwsProvider, secrets: object
) -> None:
    name = unique("bin")
    raw = bytes(range(256))
    secrets.create_secret(Name=name, SecretBinary=raw)  # type: ignore[attr-defined]
    result = await provider.mount(
        aws_request(f"- {{objectName: {name}, objectType: secretsmanager}}")
    )
    assert files_of(result) == {name: raw}


async def test_a_secret_at_the_64_kib_limit_arrives_whole(
    provider: AwsProvider, secrets: object
) -> None:
    # Control characters are JSON-escaped six-fold: a reply of about 400 KB, many reads long.
    name, text = unique("max"), "\x01" * (64 * 1024)
    secrets.create_secret(Name=name, SecretString=text)  # type: ignore[attr-defined]
    result = await provider.mount(
        aws_request(f"- {{objectName: {name}, objectType: secretsmanager}}")
    )
    assert files_of(result) == {name: text.encode()}


async def test_jmes_path_files_share_the_objects_version(
    provider: AwsProvider, secrets: object
) -> None:
    name = unique("json")
    document = {"user": "admin", "db-host": "db.local", "nested": {"port": "5432"}}
    version = secrets.create_secret(Name=name, SecretString=json.dumps(document))["VersionId"]  # type: ignore[attr-defined]
    request = aws_request(
        f"""
        - objectName: {name}
          objectType: secretsmanager
          filePermission: "0440"
          jmesPath:
            - path: user
              objectAlias: username
            - path: '"db-host"'
              objectAlias: host
              filePermission: "0400"
            - path: nested.port
              objectAlias: port
        """
    )
    result = await provider.mount(request)
    assert files_of(result) == {
        name: json.dumps(document).encode(),
        "username": b"admin",
        "host": b"db.local",
        "port": b"5432",
    }
    assert {f.path: f.mode for f in result.files} == {
        name: 0o440,
        "username": 0o440,  # a jmesPath entry inherits its object's filePermission
        "host": 0o400,
        "port": 0o440,
    }
    assert {v.version for v in result.versions} == {version}


@pytest.mark.parametrize(
    ("value", "path", "expected"),
    [
        ("plain text", "user", "objects[0].jmesPath: Invalid JSON used with jmesPath in secret"),
        ('{"user": 7}', "user", "Only string is allowed (it selects a number"),
        ('{"user": {"a": "b"}}', "user", "Only string is allowed (it selects an object"),
        ('{"user": "x"}', "missing", "does not point to a valid object"),
    ],
)
async def test_jmes_path_errors_name_the_entry_and_never_the_value(
    provider: AwsProvider, secrets: object, value: str, path: str, expected: str
) -> None:
    name = unique("jmes")
    secrets.create_secret(Name=name, SecretString=value)  # type: ignore[attr-defined]
    request = aws_request(
        f"""
        - objectName: {name}
          objectType: secretsmanager
          jmesPath: [{{path: {path}, objectAlias: out}}]
        """
    )
    with pytest.raises(ProviderError) as info:
        await provider.mount(request)
    assert expected in info.value.message
    assert name in info.value.message
    assert value not in info.value.message


async def test_parameters_decrypted_by_version_and_label(
    provider: AwsProvider, ssm: object
) -> None:
    name = f"/{unique('app')}/db/password"
    ssm.put_parameter(Name=name, Value="v1", Type="SecureString")  # type: ignore[attr-defined]
    ssm.put_parameter(Name=name, Value="v2", Type="SecureString", Overwrite=True)  # type: ignore[attr-defined]
    ssm.label_parameter_version(Name=name, ParameterVersion=1, Labels=["stable"])  # type: ignore[attr-defined]
    request = aws_request(
        f"""
        - {{objectName: "{name}", objectType: ssmparameter}}
        - {{objectName: "{name}", objectType: ssmparameter, objectAlias: first,
            objectVersion: "1"}}
        - {{objectName: "{name}", objectType: ssmparameter, objectAlias: stable,
            objectVersionLabel: stable}}
        """
    )
    result = await provider.mount(request)
    translated = name.replace("/", "_")
    assert files_of(result) == {translated: b"v2", "first": b"v1", "stable": b"v1"}
    assert {v.id: v.version for v in result.versions} == {
        translated: "2",
        "first": "1",
        "stable": "1",
    }


async def test_more_than_ten_parameters_go_in_batches_of_ten(
    moto: MotoServer, accounts: ServiceAccounts, proxy: FaultProxy, ssm: object
) -> None:
    prefix = unique("batch")
    names = [f"/{prefix}/p{i:02d}" for i in range(23)]
    for i, name in enumerate(names):
        ssm.put_parameter(Name=name, Value=f"value-{i}", Type="SecureString")  # type: ignore[attr-defined]
    objects = "\n".join(f'- {{objectName: "{n}", objectType: ssmparameter}}' for n in names)
    provider = aws_provider(proxy.address, accounts)
    try:
        result = await provider.mount(aws_request(objects))
    finally:
        await provider.close()
    assert [f.contents for f in result.files] == [f"value-{i}".encode() for i in range(23)]
    assert proxy.calls("us-east-1", "AmazonSSM.GetParameters") == 3  # 10 + 10 + 3


async def test_parameter_by_arn(provider: AwsProvider, ssm: object) -> None:
    name = f"/{unique('arn')}/key"
    ssm.put_parameter(Name=name, Value="by-arn", Type="String")  # type: ignore[attr-defined]
    arn = ssm.get_parameter(Name=name)["Parameter"]["ARN"]  # type: ignore[attr-defined]
    request = aws_request(f"- {{objectName: '{arn}', objectAlias: key}}")
    assert files_of(await provider.mount(request)) == {"key": b"by-arn"}


@pytest.mark.parametrize(
    ("translation", "expected"),
    [(None, "_{p}_a_b"), ("-", "-{p}-a-b"), ("False", "{p}/a/b"), ("false", "{p}/a/b")],
)
async def test_path_translation(
    provider: AwsProvider, ssm: object, translation: str | None, expected: str
) -> None:
    prefix = unique("tr")
    ssm.put_parameter(Name=f"/{prefix}/a/b", Value="x", Type="String")  # type: ignore[attr-defined]
    parameters = {"pathTranslation": translation} if translation is not None else {}
    request = aws_request(
        f'- {{objectName: "/{prefix}/a/b", objectType: ssmparameter}}', extra=parameters
    )
    assert files_of(await provider.mount(request)) == {expected.format(p=prefix): b"x"}


async def test_secrets_and_parameters_in_one_volume_keep_the_spc_order(
    provider: AwsProvider, secrets: object, ssm: object
) -> None:
    secret, parameter = unique("s"), unique("p")
    secrets.create_secret(Name=secret, SecretString="from-sm")  # type: ignore[attr-defined]
    ssm.put_parameter(Name=parameter, Value="from-ssm", Type="String")  # type: ignore[attr-defined]
    request = aws_request(
        f"""
        - {{objectName: {parameter}, objectType: ssmparameter}}
        - {{objectName: {secret}, objectType: secretsmanager}}
        """,
        default_mode=0o640,
    )
    result = await provider.mount(request)
    assert [(f.path, f.mode, f.contents) for f in result.files] == [
        (parameter, 0o640, b"from-ssm"),
        (secret, 0o640, b"from-sm"),
    ]


async def test_a_missing_secret_names_object_region_and_code(provider: AwsProvider) -> None:
    name = unique("absent")
    with pytest.raises(ProviderError) as info:
        await provider.mount(aws_request(f"- {{objectName: {name}, objectType: secretsmanager}}"))
    assert not isinstance(info.value, ProviderUnavailable)  # final: no failover, no retry
    message = info.value.message
    assert f"secret {name} (objects[0])" in message
    assert "GetSecretValue in us-east-1: ResourceNotFoundException" in message


async def test_a_missing_parameter_is_an_invalid_parameter(provider: AwsProvider) -> None:
    name = f"/{unique('absent')}"
    with pytest.raises(ProviderError) as info:
        await provider.mount(aws_request(f'- {{objectName: "{name}", objectType: ssmparameter}}'))
    assert not isinstance(info.value, ProviderUnavailable)
    assert f"GetParameters in us-east-1: InvalidParameters: {name}" in info.value.message


async def test_an_invalid_parameter_in_a_batch_names_its_object(
    provider: AwsProvider, ssm: object
) -> None:
    names = [f"/{unique('batch')}/p{i}" for i in range(3)]
    for name in names:
        ssm.put_parameter(Name=name, Value="v", Type="SecureString")  # type: ignore[attr-defined]
    objects = "".join(f'- {{objectName: "{n}", objectType: ssmparameter}}\n' for n in names[:2])
    objects += f'- {{objectName: "{names[2]}", objectType: ssmparameter, objectVersion: 7}}\n'
    with pytest.raises(ProviderError) as info:
        await provider.mount(aws_request(objects))
    assert (
        f"InvalidParameters: {names[2]}:7 (objects[2]): no such parameter, version or label"
        in info.value.message
    )


async def test_bad_configuration_fails_before_any_call(
    accounts: ServiceAccounts, proxy: FaultProxy
) -> None:
    provider = aws_provider(proxy.address, accounts)
    try:
        with pytest.raises(InvalidSecretProviderClass, match=r"objects\[0\]\.objectType"):
            await provider.mount(aws_request("- {objectName: x, objectType: ssm}"))
    finally:
        await provider.close()
    assert proxy.seen == []
