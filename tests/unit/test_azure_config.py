"""Azure SecretProviderClass parameters, the identity switches, clouds and the operator
environment: parsing and the messages for bad input."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from agent.errors import ConfigError, InvalidSecretProviderClass
from agent.providers.azure.clouds import Cloud, cloud_from_file, named_cloud
from agent.providers.azure.config import MAX_KEPT_CHARS, AzureConfig, parse_config
from agent.providers.azure.environment import AzureEnvironment, CloudResolver, read_environment
from agent.providers.common.trusted import TrustedDirs

OBJECTS = "array:\n  - |\n    objectName: a\n    objectType: secret\n"


def config(**attributes: str) -> AzureConfig:
    base = {"keyvaultName": "kv-1", "tenantID": "contoso.onmicrosoft.com", "objects": OBJECTS}
    base.update(attributes)
    return parse_config({k: v for k, v in base.items() if v is not None})


def refusal(**attributes: str) -> str:
    with pytest.raises(InvalidSecretProviderClass) as caught:
        config(**attributes)
    return caught.value.message


def test_parameters_are_trimmed_and_tenant_id_spellings_accepted() -> None:
    parsed = config(
        keyvaultName=" kv-1 ", tenantID="", tenantId=" t-1 ", cloudName=" AzureChinaCloud "
    )
    assert (parsed.keyvault_name, parsed.tenant, parsed.cloud_name) == (
        "kv-1",
        "t-1",
        "AzureChinaCloud",
    )
    assert config(tenantID="a", tenantId="b").tenant == "a"  # tenantID wins, as upstream


def test_identity_switches() -> None:
    vm = config(useVMManagedIdentity="True", userAssignedIdentityID=" 0000-1 ").identity
    assert (vm.use_vm_managed_identity, vm.user_assigned_identity_id) == (True, "0000-1")
    assert config(clientID=" abc ").identity.client_id == "abc"
    assert (
        config(usePodIdentity="false", useVMManagedIdentity="0").identity.use_vm_managed_identity
        is False
    )


@pytest.mark.parametrize(
    ("attributes", "expected"),
    [
        ({"keyvaultName": ""}, "keyvaultName is not provided"),
        ({"keyvaultName": "kv"}, "keyvaultName: invalid vault name 'kv', must be between 3 and 24"),
        ({"keyvaultName": "kv_1"}, "keyvaultName: invalid vault name 'kv_1', must match"),
        ({"keyvaultName": "kv.evil.example"}, "keyvaultName: invalid vault name"),
        ({"tenantID": ""}, "tenantID is not provided"),
        ({"tenantID": "a/../b"}, "tenantID: a tenant ID holds only"),
        ({"objects": "  "}, "objects is not set"),
        (
            {"useVMManagedIdentity": "yes"},
            "useVMManagedIdentity: failed to parse 'yes' as a boolean",
        ),
        ({"clientID": "a b"}, "clientID: not a valid client ID"),
        (
            {"useVMManagedIdentity": "true", "userAssignedIdentityID": "a?b"},
            "userAssignedIdentityID",
        ),
        (
            {"useVMManagedIdentity": "true", "usePodIdentity": "true"},
            "only one identity mode can be enabled",
        ),
        (
            {"useAzureTokenProxy": "true"},
            "useAzureTokenProxy: AKS identity binding is not supported",
        ),
    ],
)
def test_bad_parameters_name_the_parameter(attributes: dict[str, str], expected: str) -> None:
    assert expected in refusal(**attributes)


def test_pod_identity_is_refused_pointing_at_workload_identity() -> None:
    message = refusal(usePodIdentity="true")
    assert message.startswith("usePodIdentity: aad-pod-identity is retired")
    assert "use workload identity" in message
    assert "clientID" in message and "api://AzureADTokenExchange" in message


def test_named_clouds_as_go_autorest() -> None:
    assert named_cloud("azurepubliccloud").key_vault_dns_suffix == "vault.azure.net"
    assert named_cloud("AzureCloud") == named_cloud("AzurePublicCloud")
    china = named_cloud("AzureChinaCloud")
    assert (china.key_vault_dns_suffix, china.authority) == (
        "vault.azure.cn",
        "https://login.chinacloudapi.cn/",
    )
    government = named_cloud("AzureUSGovernment")
    assert government.vault_url("kv") == "https://kv.vault.usgovcloudapi.net/"
    assert government.authority == "https://login.microsoftonline.us/"
    with pytest.raises(InvalidSecretProviderClass, match="cloudName: unknown cloud 'Mars'"):
        named_cloud("Mars")


def test_custom_cloud_file() -> None:
    data = json.dumps(
        {
            "name": "Stack",
            "keyVaultDNSSuffix": "vault.local.azurestack.external",
            "activeDirectoryEndpoint": "https://adfs.local.azurestack.external/adfs",
        }
    )
    cloud = cloud_from_file(data.encode(), "AZURE_ENVIRONMENT_FILEPATH")
    assert cloud == Cloud(
        "Stack", "vault.local.azurestack.external", "https://adfs.local.azurestack.external/adfs/"
    )
    for bad, expected in [
        (b"{", "not a JSON cloud environment"),
        (b"[]", "not a JSON object"),
        (b'{"keyVaultDNSSuffix": "vault/../x"}', "keyVaultDNSSuffix must be a DNS suffix"),
        (
            b'{"keyVaultDNSSuffix": "v.x", "activeDirectoryEndpoint": "http://login"}',
            "activeDirectoryEndpoint: must be an https URL",
        ),
    ]:
        with pytest.raises(InvalidSecretProviderClass, match=expected):
            cloud_from_file(bad, "cloudEnvFileName")


@pytest.mark.parametrize(
    "suffix",
    [
        "vault.local:99999",  # no such port: the URL could not even be built
        "vault.local:0",
        "vault..local",  # an empty label
        "vault.-local",  # a label starting with '-'
        "vault." + "x" * 64,  # a label longer than 63
        "vault.local:443:443",
    ],
)
def test_cloud_file_suffix_must_be_a_host_name(suffix: str) -> None:
    data = json.dumps({"keyVaultDNSSuffix": suffix, "activeDirectoryEndpoint": "https://l/"})
    with pytest.raises(InvalidSecretProviderClass, match="keyVaultDNSSuffix must be a DNS suffix"):
        cloud_from_file(data.encode(), "AZURE_ENVIRONMENT_FILEPATH")


def test_cloud_file_nested_beyond_the_parser_is_not_json() -> None:
    nested = b"[" * 30000 + b"]" * 30000  # under 64 KiB; Python's parser recurses per level
    with pytest.raises(InvalidSecretProviderClass, match="not a JSON cloud environment"):
        cloud_from_file(nested, "AZURE_ENVIRONMENT_FILEPATH")


async def test_an_oversized_operator_cloud_file_says_so(tmp_path: Path) -> None:
    path = tmp_path / "cloud.json"
    cloud = {"keyVaultDNSSuffix": "vault.local", "activeDirectoryEndpoint": "https://login/"}
    path.write_text(json.dumps(cloud) + " " * 65536)  # valid JSON, too long to read whole
    environment = read_environment({"AZURE_ENVIRONMENT_FILEPATH": str(path)})
    with pytest.raises(InvalidSecretProviderClass, match="is larger than 65536 bytes"):
        await resolve(environment, "AzureStackCloud", "", TrustedDirs())


async def resolve(
    environment: AzureEnvironment, name: str, file: str, trusted: TrustedDirs
) -> Cloud:
    return await CloudResolver(environment, trusted).resolve(name, file)


def test_operator_environment() -> None:
    environment = read_environment({"AZURE_AUTHORITY_HOST": "https://login.example.test"})
    assert environment.authority_host == "https://login.example.test/"
    assert environment.imds_endpoint == "http://169.254.169.254"
    assert (
        read_environment({"AZURE_POD_IDENTITY_AUTHORITY_HOST": "http://127.0.0.1:9/"}).imds_endpoint
        == "http://127.0.0.1:9"
    )
    for env, expected in [
        (
            {"AZURE_AUTHORITY_HOST": "http://insecure.example"},
            "AZURE_AUTHORITY_HOST: must be an https URL",
        ),
        (
            {"AZURE_POD_IDENTITY_AUTHORITY_HOST": "169.254.169.254"},
            "AZURE_POD_IDENTITY_AUTHORITY_HOST",
        ),
    ]:
        with pytest.raises(ConfigError, match=expected):
            read_environment(env)
    with pytest.raises(ConfigError, match="default Azure cloud: cloudName: unknown cloud"):
        read_environment({}, "Mars")


async def test_authority_host_overrides_every_cloud(tmp_path: Path) -> None:
    environment = read_environment({"AZURE_AUTHORITY_HOST": "https://login.proxy.test/"})
    cloud = await resolve(environment, "AzureChinaCloud", "", TrustedDirs())
    assert (cloud.key_vault_dns_suffix, cloud.authority) == (
        "vault.azure.cn",
        "https://login.proxy.test/",
    )


async def test_stack_cloud_needs_a_file_and_a_spc_file_must_be_trusted(tmp_path: Path) -> None:
    environment = read_environment({})
    with pytest.raises(InvalidSecretProviderClass, match="needs a cloud environment file"):
        await resolve(environment, "AzureStackCloud", "", TrustedDirs())
    env_file = tmp_path / "cloud.json"
    env_file.write_text(
        '{"keyVaultDNSSuffix": "vault.stack.test", "activeDirectoryEndpoint": "https://login.stack.test/"}'
    )
    with pytest.raises(InvalidSecretProviderClass, match="cloudEnvFileName: the agent opens no"):
        await resolve(environment, "AzureStackCloud", str(env_file), TrustedDirs())
    elsewhere = TrustedDirs([str(tmp_path / "trusted")])
    with pytest.raises(InvalidSecretProviderClass, match=r"cloudEnvFileName: .* outside the dir"):
        await resolve(environment, "AzureStackCloud", str(env_file), elsewhere)
    cloud = await resolve(
        environment, "azurestackcloud", str(env_file), TrustedDirs([str(tmp_path)])
    )
    assert cloud.vault_url("kv") == "https://kv.vault.stack.test/"
    with pytest.raises(InvalidSecretProviderClass, match="cloudEnvFileName: cannot read"):
        await resolve(
            environment,
            "AzureStackCloud",
            str(tmp_path / "gone.json"),
            TrustedDirs([str(tmp_path)]),
        )
    # A named cloud ignores cloudEnvFileName, as upstream (it only sets AZURE_ENVIRONMENT_FILEPATH).
    public = await resolve(environment, "", str(env_file), TrustedDirs())
    assert public.key_vault_dns_suffix == "vault.azure.net"


async def test_stack_cloud_file_without_authority_needs_the_authority_host(tmp_path: Path) -> None:
    env_file = tmp_path / "cloud.json"
    env_file.write_text('{"keyVaultDNSSuffix": "vault.stack.test"}')
    environment = read_environment({"AZURE_ENVIRONMENT_FILEPATH": str(env_file)}, "AzureStackCloud")
    with pytest.raises(
        InvalidSecretProviderClass, match="no activeDirectoryEndpoint and AZURE_AUTHORITY_HOST"
    ):
        await resolve(environment, "", "", TrustedDirs())
    environment = read_environment(
        {
            "AZURE_ENVIRONMENT_FILEPATH": str(env_file),
            "AZURE_AUTHORITY_HOST": "https://login.stack.test",
        }
    )
    cloud = await resolve(environment, "AzureStackCloud", "", TrustedDirs())
    assert cloud.authority == "https://login.stack.test/"


async def test_custom_cloud_file_is_kept_for_a_while(tmp_path: Path) -> None:
    env_file = tmp_path / "cloud.json"
    env_file.write_text('{"keyVaultDNSSuffix": "v1.test", "activeDirectoryEndpoint": "https://l/"}')
    now = [0.0]
    environment = read_environment({"AZURE_ENVIRONMENT_FILEPATH": str(env_file)})
    clouds = CloudResolver(environment, TrustedDirs(), clock=lambda: now[0], ttl=60)
    assert (await clouds.resolve("AzureStackCloud", "")).key_vault_dns_suffix == "v1.test"
    env_file.write_text('{"keyVaultDNSSuffix": "v2.test", "activeDirectoryEndpoint": "https://l/"}')
    assert (await clouds.resolve("AzureStackCloud", "")).key_vault_dns_suffix == "v1.test"
    now[0] = 61
    assert (await clouds.resolve("AzureStackCloud", "")).key_vault_dns_suffix == "v2.test"


def test_parsed_parameters_are_kept_unless_large() -> None:
    # Republishes skip parsing; a tenant's huge SecretProviderClasses do not stay in memory.
    assert config(keyvaultName="kv-kept") is config(keyvaultName="kv-kept")
    entry = "  - |\n    objectName: n{i}\n    objectType: secret\n"
    large = "array:\n" + "".join(entry.format(i=i) for i in range(2000))
    assert len(large) > MAX_KEPT_CHARS
    first, second = config(objects=large), config(objects=large)
    assert first == second and first is not second
