"""Which node paths a SecretProviderClass may name: containment in the trusted directories,
checked by the very walk that reads the file (beneath.py).

Real files and sockets are covered against OpenBao in tests/integration/test_vault_trusted_files.py.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import pytest

from agent.errors import ConfigError, InvalidSecretProviderClass
from agent.providers.common.trusted import TrustedDirs
from agent.providers.vault import VaultProvider
from agent.providers.vault.config import Defaults, Flavour, NodePath, VaultConfig, parse_config
from agent.providers.vault.nodefiles import NodeFiles, read_node_files

OBJECTS = "- {objectName: p, secretPath: secret/data/app, secretKey: p}"
PEM = "-----BEGIN CERTIFICATE-----\n{}\n-----END CERTIFICATE-----\n"


def config_of(trusted: TrustedDirs, flavour: Flavour = "vault", **attributes: str) -> VaultConfig:
    attributes = {"roleName": "r", "objects": OBJECTS, **attributes}
    return parse_config(attributes, flavour, Defaults("http://v"), trusted=trusted)


def files_of(trusted: TrustedDirs, flavour: Flavour = "vault", **attributes: str) -> NodeFiles:
    """What a mount reads: parsing, then the trust check and read (in a worker thread there)."""
    return read_node_files(config_of(trusted, flavour, **attributes), trusted)


def refusal(trusted: TrustedDirs, flavour: Flavour = "vault", **attributes: str) -> str:
    with pytest.raises(InvalidSecretProviderClass) as info:
        files_of(trusted, flavour, **attributes)
    return info.value.message


def outside_message(key: str, path: str | Path, shown: str | Path) -> str:
    return (
        f"{key}: {str(path)!r} is outside the directories the agent trusts for node files "
        f"({shown}); the operator sets them with the agent flag --trusted-file-dirs"
    )


@pytest.fixture
def tree(tmp_path: Path) -> Path:
    """``ca`` (to be trusted) and its prefix-sharing sibling ``ca-evil`` and ``outside``, each
    with a ca.pem that names its directory."""
    for name in ("ca", "ca-evil", "outside"):
        (tmp_path / name).mkdir()
        (tmp_path / name / "ca.pem").write_text(PEM.format(name))
    return tmp_path


def test_a_contained_file_is_read_through_a_linked_trusted_dir(tree: Path) -> None:
    (tree / "ca-link").symlink_to(tree / "ca")  # the trusted dir itself may be a link
    trusted = TrustedDirs([f"{tree}/ca-link/"])
    for written in (tree / "ca-link" / "ca.pem", tree / "ca" / "ca.pem"):
        assert files_of(trusted, vaultCACertPath=str(written)).tls.cadata == PEM.format("ca")


def test_component_wise_containment(tree: Path) -> None:
    trusted = TrustedDirs([str(tree / "ca")])
    (tree / "ca" / "sub").mkdir()
    for outside in ("ca-evil/ca.pem", "cab", "ca/../outside/ca.pem", "ca/sub/../../x", "."):
        path = os.path.normpath(tree / outside) if outside == "." else f"{tree}/{outside}"
        message = refusal(trusted, vaultCACertPath=path)
        assert message == outside_message("vaultCACertPath", path, tree / "ca")


def test_symlinks_are_followed_only_while_they_stay_inside(tree: Path) -> None:
    ca = tree / "ca"
    # A ConfigMap volume's layout: ca.crt -> ..data/ca.crt, ..data -> ..2024_01_01.
    (ca / "..2024_01_01").mkdir()
    (ca / "..2024_01_01" / "ca.crt").write_text(PEM.format("configmap"))
    (ca / "..data").symlink_to("..2024_01_01")
    (ca / "ca.crt").symlink_to("..data/ca.crt")
    (ca / "absolute.pem").symlink_to(ca / "..data" / "ca.crt")  # absolute, yet inside
    trusted = TrustedDirs([str(ca)])
    for name in ("ca.crt", "absolute.pem"):
        assert files_of(trusted, vaultCACertPath=str(ca / name)).tls.cadata == PEM.format(
            "configmap"
        )
    (ca / "link.pem").symlink_to(tree / "outside" / "ca.pem")
    (ca / "dotted.pem").symlink_to("../outside/ca.pem")
    (ca / "link-dir").symlink_to(tree / "outside")
    (ca / "..data" / "deep.pem").symlink_to("../../outside/ca.pem")
    for name in ("link.pem", "dotted.pem", "link-dir/ca.pem", "..data/deep.pem"):
        message = refusal(trusted, vaultCACertPath=str(ca / name))
        # The path as written is quoted; where the link leads is not disclosed.
        assert message == outside_message("vaultCACertPath", ca / name, ca)
        assert str(tree / "outside") not in message


def test_a_swap_in_the_middle_of_the_walk_is_refused(
    tree: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The check is the open: a directory swapped for a symlink just before the walk opens it
    is seen as that symlink, and refused, rather than followed outside."""
    (tree / "ca" / "sub").mkdir()
    (tree / "ca" / "sub" / "ca.pem").write_text(PEM.format("sub"))
    real_open = os.open

    def swapping_open(path: str, flags: int, *args: Any, **kwargs: Any) -> int:
        if path == "sub" and not (tree / "ca" / "sub").is_symlink():
            (tree / "ca" / "sub").rename(tree / "ca" / "sub.old")
            (tree / "ca" / "sub").symlink_to(tree / "outside")
        return real_open(path, flags, *args, **kwargs)

    monkeypatch.setattr(os, "open", swapping_open)
    path = tree / "ca" / "sub" / "ca.pem"
    message = refusal(TrustedDirs([str(tree / "ca")]), vaultCACertPath=str(path))
    assert message == outside_message("vaultCACertPath", path, tree / "ca")


def test_a_path_written_through_an_outside_link_may_land_inside(tree: Path) -> None:
    (tree / "alias").symlink_to(tree / "ca")  # e.g. /var/run/vault when /run/vault is trusted
    trusted = TrustedDirs([str(tree / "ca")])
    assert files_of(trusted, vaultCACertPath=f"{tree}/alias/ca.pem").tls.cadata == PEM.format("ca")


def test_ca_directory_entries_are_read_beneath_the_trusted_dir(tree: Path) -> None:
    ca = tree / "ca"
    (ca / "..2024_01_01").mkdir()
    (ca / "..2024_01_01" / "b.crt").write_text(PEM.format("b"))
    (ca / "..data").symlink_to("..2024_01_01")
    (ca / "b.crt").symlink_to("..data/b.crt")
    (ca / "README").write_text("not a certificate")
    (ca / "gone.pem").symlink_to("..data/gone.pem")  # a dangling link, as mid-update
    trusted = TrustedDirs([str(ca)])
    # Subdirectories (..data, ..2024_01_01) are skipped; files in name order.
    files = files_of(trusted, vaultCADirectory=str(ca))
    assert files.tls.cadata == PEM.format("b") + "\n" + PEM.format("ca")
    (ca / "evil.pem").symlink_to(tree / "outside" / "ca.pem")
    message = refusal(trusted, vaultCADirectory=f"{ca}/")
    assert message == outside_message("vaultCADirectory", ca / "evil.pem", ca)


def test_nothing_trusted_refuses_everything() -> None:
    with pytest.raises(InvalidSecretProviderClass) as info:
        config_of(TrustedDirs(), vaultCACertPath="/etc/ca/x.pem")
    assert info.value.message == (
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
def test_relative_or_invalid_paths_are_refused_when_parsing(path: str, problem: str) -> None:
    with pytest.raises(InvalidSecretProviderClass) as info:
        config_of(TrustedDirs(["/etc/ca"]), vaultCACertPath=path)
    assert info.value.message == f"vaultCACertPath: {problem}"


def test_every_file_parameter_is_checked(tree: Path) -> None:
    trusted = TrustedDirs([str(tree / "ca")])
    good = str(tree / "ca" / "ca.pem")
    pair = {"vaultTLSClientCertPath": good, "vaultTLSClientKeyPath": good}
    for key in ("vaultCACertPath", "vaultCADirectory", *pair):
        attributes = {**pair, key: str(tree / "outside")}
        assert refusal(trusted, "vault", **attributes).startswith(f"{key}: ")


def test_bao_spellings_are_checked_and_named(tree: Path) -> None:
    message = refusal(TrustedDirs([str(tree / "ca")]), "openbao", openbaoCADirectory=str(tree))
    assert message.startswith("openbaoCADirectory: ")


def test_unix_address_from_the_spc_is_checked(tree: Path) -> None:
    trusted = TrustedDirs([str(tree / "ca")])
    evil = f"unix://{tree}/ca-evil/a.sock"
    assert refusal(trusted, vaultAddress=evil) == outside_message(
        "vaultAddress", f"{tree}/ca-evil/a.sock", tree / "ca"
    )
    (tree / "alias").symlink_to(tree / "ca")
    files = files_of(trusted, vaultAddress=f"unix://{tree}/alias/a.sock")
    assert files.socket == f"{tree}/ca/a.sock"  # the real path that was checked


def test_a_socket_path_with_url_characters_is_kept_whole(tmp_path: Path) -> None:
    """'#' and '?' are path characters after unix://, as for Go's Vault client; re-parsing
    the path as a URL once cut it short, connecting to another socket than the one checked."""
    (tmp_path / "agent#1?x").mkdir()
    socket = f"{tmp_path}/agent#1?x/vault.sock"
    trusted = TrustedDirs([str(tmp_path)])
    config = config_of(trusted, vaultAddress=f"unix://{socket}")
    assert config.socket == NodePath("vaultAddress", socket)
    assert config.address == f"unix://{socket}"
    assert read_node_files(config, trusted).socket == socket


def test_unix_address_needs_an_absolute_path() -> None:
    # unix://host/path would otherwise be checked as one path and connected to as another.
    with pytest.raises(InvalidSecretProviderClass) as info:
        config_of(TrustedDirs(["/"]), vaultAddress="unix://run/vault/a.sock")
    assert info.value.message == (
        "vaultAddress: a unix socket address is unix:///absolute/path/to/socket"
    )


def test_the_operators_default_address_is_not_checked() -> None:
    attributes = {"roleName": "r", "objects": OBJECTS}
    defaults = Defaults("unix:///run/vault/agent.sock")
    config = parse_config(attributes, "vault", defaults, trusted=TrustedDirs())
    assert config.socket == NodePath("default address", "/run/vault/agent.sock", checked=False)
    assert read_node_files(config, TrustedDirs()).socket == "/run/vault/agent.sock"


def test_parsing_touches_no_file_system(monkeypatch: pytest.MonkeyPatch, tree: Path) -> None:
    """Parsing runs on the event loop: the trust check's realpath and reads come later, in a
    worker thread (see test_vault_nodefiles.py)."""
    trusted = TrustedDirs([str(tree / "ca")])

    def forbidden(*args: object, **kwargs: object) -> None:
        raise AssertionError("file system access while parsing")

    for name in ("open", "stat", "lstat", "readlink", "listdir", "scandir"):
        monkeypatch.setattr(os, name, forbidden)
    monkeypatch.setattr(os.path, "realpath", forbidden)
    path = str(tree / "ca" / "ca.pem")
    pair = {"vaultTLSClientCertPath": path, "vaultTLSClientKeyPath": path}
    config = config_of(trusted, "vault", vaultCACertPath=path, vaultCADirectory=path, **pair)
    assert config.tls.ca_cert == NodePath("vaultCACertPath", path)
    config_of(trusted, vaultAddress=f"unix://{path}")


def test_trusted_dirs_must_be_absolute() -> None:
    with pytest.raises(ConfigError, match=r"--trusted-file-dirs: .*'etc/ca'"):
        VaultProvider(version_key=b"k" * 32, trusted_dirs=["/etc/vault", "etc/ca"])
