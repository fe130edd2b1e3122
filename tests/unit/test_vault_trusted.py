"""Which node paths a SecretProviderClass may name: containment in the trusted directories.

Real files and sockets are covered against OpenBao in tests/integration/test_vault_trusted_files.py.
"""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from agent.errors import ConfigError, InvalidSecretProviderClass
from agent.providers.vault import VaultProvider
from agent.providers.vault.config import Defaults, parse_config
from agent.providers.vault.trusted import TrustedDirs

OBJECTS = "- {objectName: p, secretPath: secret/data/app, secretKey: p}"


def parse(trusted: TrustedDirs, **attributes: str) -> str:
    """The CA path the parsed configuration will open."""
    attributes = {"roleName": "r", "objects": OBJECTS, **attributes}
    config = parse_config(attributes, "vault", Defaults("http://v"), trusted=trusted)
    return config.tls.ca_cert_path


def refusal(trusted: TrustedDirs, **attributes: str) -> str:
    with pytest.raises(InvalidSecretProviderClass) as info:
        parse(trusted, **attributes)
    return info.value.message


def test_contained_path_resolves_to_its_real_path(tmp_path: Path) -> None:
    (tmp_path / "real").mkdir()
    (tmp_path / "real" / "ca.pem").write_text("x")
    (tmp_path / "ca").symlink_to(tmp_path / "real")  # the trusted dir itself may be a link
    trusted = TrustedDirs([str(tmp_path / "ca") + "/"])
    # What gets opened is the path that was checked, not one a symlink swap could redirect.
    assert parse(trusted, vaultCACertPath=f"{tmp_path}/ca/ca.pem") == f"{tmp_path}/real/ca.pem"


def test_component_wise_containment() -> None:
    trusted = TrustedDirs(["/etc/ca"])
    assert parse(trusted, vaultCACertPath="/etc/ca/sub/x.pem") == "/etc/ca/sub/x.pem"
    assert parse(trusted, vaultCACertPath="/etc/ca/") == "/etc/ca"
    for outside in ("/etc/ca-evil/x.pem", "/etc/cab", "/etc/ca/../shadow", "/etc"):
        message = refusal(trusted, vaultCACertPath=outside)
        assert message == (
            f"vaultCACertPath: {outside!r} is outside the directories the agent trusts for "
            "node files (/etc/ca); the operator sets them with the agent flag "
            "--trusted-file-dirs"
        )


def test_nothing_trusted_refuses_everything() -> None:
    message = refusal(TrustedDirs(), vaultCACertPath="/etc/ca/x.pem")
    assert message == (
        "vaultCACertPath: the agent opens no node file or socket a SecretProviderClass names, "
        "as no directory is trusted; the operator sets trusted directories with the agent "
        "flag --trusted-file-dirs"
    )


@pytest.mark.parametrize(
    ("path", "problem"),
    [
        ("ca.pem", "must be an absolute path"),
        ("./etc/ca/x.pem", "must be an absolute path"),
        ("/etc/ca/\0x", "is not a valid path (NUL byte)"),
    ],
)
def test_relative_or_invalid_paths_are_refused(path: str, problem: str) -> None:
    assert refusal(TrustedDirs(["/etc/ca"]), vaultCACertPath=path) == f"vaultCACertPath: {problem}"


def test_every_file_parameter_is_checked() -> None:
    trusted = TrustedDirs(["/etc/ca"])
    good = "/etc/ca/x.pem"
    pair = {"vaultTLSClientCertPath": good, "vaultTLSClientKeyPath": good}
    for key in ("vaultCACertPath", "vaultCADirectory", *pair):
        attributes = {**pair, key: "/root/.ssh/id_rsa"}
        assert refusal(trusted, **attributes).startswith(f"{key}: ")


def test_bao_spellings_are_checked_and_named() -> None:
    attributes = {"roleName": "r", "objects": OBJECTS, "openbaoCADirectory": "/var/lib/kubelet"}
    with pytest.raises(InvalidSecretProviderClass, match=r"^openbaoCADirectory: "):
        parse_config(attributes, "openbao", Defaults("http://v"), trusted=TrustedDirs(["/etc"]))


def test_unix_address_from_the_spc_is_checked() -> None:
    trusted = TrustedDirs(["/run/vault"])
    assert refusal(trusted, vaultAddress="unix:///run/containerd/containerd.sock").startswith(
        "vaultAddress: '/run/containerd/containerd.sock' is outside"
    )
    attributes = {"roleName": "r", "objects": OBJECTS, "vaultAddress": "unix:///run/vault/a.sock"}
    config = parse_config(attributes, "vault", Defaults(), trusted=trusted)
    assert config.address == "unix://" + os.path.realpath("/run/vault/a.sock")


def test_unix_address_needs_an_absolute_path() -> None:
    # unix://host/path would otherwise be checked as one path and connected to as another.
    message = refusal(TrustedDirs(["/"]), vaultAddress="unix://run/vault/a.sock")
    assert message == "vaultAddress: a unix socket address is unix:///absolute/path/to/socket"


def test_the_operators_default_address_is_not_checked() -> None:
    attributes = {"roleName": "r", "objects": OBJECTS}
    defaults = Defaults("unix:///run/vault/agent.sock")
    config = parse_config(attributes, "vault", defaults, trusted=TrustedDirs())
    assert config.address == "unix:///run/vault/agent.sock"


def test_trusted_dirs_must_be_absolute() -> None:
    with pytest.raises(ConfigError, match=r"--trusted-file-dirs: .*'etc/ca'"):
        VaultProvider(version_key=b"k" * 32, trusted_dirs=["/etc/vault", "etc/ca"])
