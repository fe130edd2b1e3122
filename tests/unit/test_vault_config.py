"""Parsing the Vault/OpenBao SecretProviderClass parameters."""

from __future__ import annotations

import pytest

from agent.errors import AgentError, InvalidSecretProviderClass
from agent.providers.common.trusted import NOTHING_TRUSTED, TrustedDirs
from agent.providers.vault.config import Defaults, Flavour, NodePath, VaultConfig, parse_config
from agent.providers.vault.objects import ReadKey

DEFAULTS = Defaults(address="http://vault.default:8200", audience="vault")
OBJECTS = """
- objectName: password
  secretPath: secret/data/app
  secretKey: password
"""


def parse(
    extra: dict[str, str] | None = None,
    *,
    flavour: Flavour = "vault",
    trusted: TrustedDirs = NOTHING_TRUSTED,
    **kw: str,
) -> VaultConfig:
    attributes = {"roleName": "app", "objects": OBJECTS, **(extra or {}), **kw}
    defaults = DEFAULTS if flavour == "vault" else Defaults("http://bao:8200", audience="openbao")
    return parse_config(attributes, flavour, defaults, trusted=trusted)


def error_of(**kw: str) -> str:
    with pytest.raises(InvalidSecretProviderClass) as info:
        parse(kw)
    assert isinstance(info.value, AgentError)
    return info.value.message


def test_minimal_parameters_take_defaults() -> None:
    config = parse()
    assert config.role == "app"
    assert config.address == "http://vault.default:8200"
    assert config.auth_mount == "kubernetes"
    assert config.audience == "vault"
    assert config.namespace == ""
    assert not config.tls.skip_verify
    [obj] = config.objects
    assert obj.name == "password"
    assert obj.key == "password"
    assert obj.method == "GET"
    assert obj.mode is None
    assert obj.encoding == "utf-8"
    assert obj.read == ReadKey("GET", "/v1/secret/data/app", (), None)


def test_spc_values_override_defaults() -> None:
    trusted = TrustedDirs(["/etc/vault-tls"])
    config = parse(
        {
            "vaultAddress": "https://vault.example:8200/",
            "vaultNamespace": "team-a",
            "vaultAuthMountPath": "/auth/jwt-k8s/",
            "audience": "custom",
            "vaultSkipTLSVerify": "true",
            "vaultCACertPath": "/etc/vault-tls/ca.pem",
            "vaultCADirectory": "/etc/vault-tls/cas",
            "vaultTLSServerName": "vault.internal",
            "vaultTLSClientCertPath": "/etc/vault-tls/c.pem",
            "vaultTLSClientKeyPath": "/etc/vault-tls/k.pem",
        },
        trusted=trusted,
    )
    assert config.address == "https://vault.example:8200"
    assert config.namespace == "team-a"
    assert config.auth_mount == "jwt-k8s"
    assert config.audience == "custom"
    assert config.tls.skip_verify
    # Paths as written, with the parameter that named them: checked and read per mount.
    assert config.tls.ca_cert == NodePath("vaultCACertPath", "/etc/vault-tls/ca.pem")
    assert config.tls.ca_directory == NodePath("vaultCADirectory", "/etc/vault-tls/cas")
    assert config.tls.server_name == "vault.internal"
    assert config.tls.client_cert == NodePath("vaultTLSClientCertPath", "/etc/vault-tls/c.pem")
    assert config.tls.client_key == NodePath("vaultTLSClientKeyPath", "/etc/vault-tls/k.pem")


def test_kubernetes_mount_path_is_accepted() -> None:
    assert parse(vaultKubernetesMountPath="k8s-east").auth_mount == "k8s-east"


def test_mount_paths_are_mutually_exclusive() -> None:
    message = error_of(vaultKubernetesMountPath="a", vaultAuthMountPath="b")
    assert "vaultKubernetesMountPath" in message
    assert "vaultAuthMountPath" in message
    assert "mutually exclusive" in message


def test_role_is_required() -> None:
    with pytest.raises(InvalidSecretProviderClass, match="roleName"):
        parse_config({"objects": OBJECTS}, "vault", DEFAULTS)


def test_address_is_required_without_a_default() -> None:
    with pytest.raises(InvalidSecretProviderClass, match="vaultAddress"):
        parse_config({"roleName": "r", "objects": OBJECTS}, "vault", Defaults())


@pytest.mark.parametrize("address", ["vault:8200", "ftp://vault", "http://", "https:///x"])
def test_address_must_be_a_url(address: str) -> None:
    assert "vaultAddress" in error_of(vaultAddress=address)


@pytest.mark.parametrize(
    "address",
    [
        "http://vault:8200\n",
        "http://vault:8200\r\n",
        "https://vault:8200\t",
        "http://vault :8200",
        "http://vault:8200 ",
        "unix:///var/run/vault/agent.sock\n",
    ],
)
def test_an_address_with_a_control_character_or_a_space_is_refused_quoted(address: str) -> None:
    """Go's url.Parse refuses control characters (hashicorp's provider fails such a class).
    Before: Python's urlsplit drops tabs and newlines, so a block scalar's final newline went
    through, and the raw address, newline and all, ended up in kubelet's event."""
    assert error_of(vaultAddress=address) == (
        f"vaultAddress: {address!r} holds a space or a control character (a block scalar's "
        "final newline? use vaultAddress: URL, or |- to drop it)"
    )


def test_unix_socket_address_for_the_vault_agent_sidecar() -> None:
    address = "unix:///var/run/vault/agent.sock"
    config = parse(vaultAddress=address, trusted=TrustedDirs(["/var/run/vault"]))
    # The socket's path travels on its own; its real path is resolved when a mount uses it.
    assert config.address == address
    assert config.socket == NodePath("vaultAddress", "/var/run/vault/agent.sock")


def test_skip_tls_verify_must_be_a_bool() -> None:
    assert "vaultSkipTLSVerify" in error_of(vaultSkipTLSVerify="yes please")
    assert parse(vaultSkipTLSVerify="F").tls.skip_verify is False


def test_client_cert_needs_its_key() -> None:
    message = error_of(vaultTLSClientCertPath="/c.pem")
    assert "vaultTLSClientCertPath" in message
    assert "vaultTLSClientKeyPath" in message


def test_openbao_flavour_accepts_every_prefix() -> None:
    config = parse(
        {
            "baoAddress": "http://bao:8200",
            "openbaoNamespace": "ns1",
            "vaultAuthMountPath": "jwt",
            "baoSkipTLSVerify": "1",
            "openbaoTLSServerName": "bao.internal",
        },
        flavour="openbao",
    )
    assert config.address == "http://bao:8200"
    assert config.namespace == "ns1"
    assert config.auth_mount == "jwt"
    assert config.audience == "openbao"
    assert config.tls.skip_verify
    assert config.tls.server_name == "bao.internal"


@pytest.mark.parametrize("key", ["roleName", "vaultRoleName", "baoRoleName", "openbaoRoleName"])
def test_openbao_role_spellings(key: str) -> None:
    attributes = {key: "r", "objects": OBJECTS, "baoAddress": "http://bao"}
    assert parse_config(attributes, "openbao", Defaults()).role == "r"


def test_vault_flavour_ignores_bao_spellings() -> None:
    assert parse(baoAddress="http://other").address == DEFAULTS.address


def test_conflicting_spellings_are_an_error() -> None:
    attributes = {"roleName": "r", "objects": OBJECTS}
    attributes |= {"baoAddress": "http://a", "vaultAddress": "http://b"}
    with pytest.raises(InvalidSecretProviderClass, match=r"baoAddress and vaultAddress"):
        parse_config(attributes, "openbao", Defaults())
    attributes["vaultAddress"] = "http://a"  # the same value twice is harmless
    assert parse_config(attributes, "openbao", Defaults()).address == "http://a"


def test_openbao_mount_paths_are_mutually_exclusive_across_prefixes() -> None:
    with pytest.raises(InvalidSecretProviderClass, match="mutually exclusive"):
        parse({"baoKubernetesMountPath": "a", "vaultAuthMountPath": "b"}, flavour="openbao")
