"""The flags that configure providers (built-in and plugin) → Settings fields.

Which providers are served in-process or by an installed plugin socket, the defaults the
built-in providers take for classes that leave a parameter out (Vault address, Azure cloud and
PEM handling, the EKS Pod Identity Agent URL), and the directories whose files a
SecretProviderClass may name. Each value is checked here without loading a provider's module
(that waits until a class uses the provider).
"""

from __future__ import annotations

import argparse
import ntpath
import posixpath
from typing import Any

from agent.errors import ConfigError
from agent.flag_types import DEFAULTS, boolean, go_bool


def add_provider_flags(p: argparse.ArgumentParser) -> None:
    add = p.add_argument
    add("--vault-address", default="", help="default Vault/OpenBao address for SPCs without one")
    add(
        "--azure-cloud-name",
        default=DEFAULTS.azure_cloud_name,
        help="Azure cloud for SecretProviderClasses without cloudName (upstream -cloud-name)",
    )
    add(
        "--azure-construct-pem-chain",
        nargs="?",
        const=True,
        default=True,
        type=boolean,
        metavar="BOOL",
        help="order PEM certificate chains leaf to root (upstream -construct-pem-chain)",
    )
    go_bool("--azure-write-cert-and-key-in-separate-files", p)
    add(
        "--trusted-file-dirs",
        default="",
        help="comma-separated directories whose files a SecretProviderClass may name "
        "(CA bundles, client certificates, Vault Agent sockets); none by default",
    )
    add(
        "--prefer-plugin-providers",
        default="",
        help="comma-separated provider names (e.g. aws,vault) served by an installed plugin "
        "socket instead of the built-in while the socket exists (migrating off a DaemonSet)",
    )
    add(
        "--builtin-providers",
        default=",".join(DEFAULTS.builtin_providers),
        help="comma-separated built-in providers served in-process (vault, openbao, aws, azure, "
        "gcp); any other provider name is looked up as a plugin socket",
    )
    add(
        "--aws-pod-identity-endpoint",
        default="",
        help="EKS Pod Identity Agent credentials URL (default: http://169.254.170.23 then "
        "http://[fd00:ec2::23], per the SecretProviderClass preferredAddressType)",
    )


def provider_options(ns: argparse.Namespace, *, windows: bool) -> dict[str, Any]:
    """The Settings fields of these flags, checked (in this order); ConfigError names the flag
    at fault. ``--vault-address``'s unix-socket form is checked by ``flags.parse_settings``."""
    return {
        "vault_address": ns.vault_address,
        "azure_cloud_name": _azure_cloud(ns.azure_cloud_name),
        "azure_construct_pem_chain": bool(ns.azure_construct_pem_chain),
        "azure_write_cert_and_key_in_separate_files": bool(
            ns.azure_write_cert_and_key_in_separate_files
        ),
        "trusted_file_dirs": _trusted_dirs(ns.trusted_file_dirs, windows=windows),
        "prefer_plugin_providers": _provider_names(ns.prefer_plugin_providers),
        "builtin_providers": _builtin_names(ns.builtin_providers),
        "aws_pod_identity_endpoint": _http_url(
            "--aws-pod-identity-endpoint", ns.aws_pod_identity_endpoint
        ),
    }


def _provider_names(value: str) -> tuple[str, ...]:
    from agent.providers.discovery import PLUGIN_NAME

    names = tuple(name for name in value.split(",") if name)
    bad = [name for name in names if not PLUGIN_NAME.fullmatch(name)]
    if bad:
        shown = ", ".join(repr(name) for name in bad)  # a stray space must be visible
        raise ConfigError(
            f"--prefer-plugin-providers: not provider names: {shown} (comma-separated, no "
            "spaces; each must match ^[a-zA-Z0-9_-]{0,30}$)"
        )
    return names


def _builtin_names(value: str) -> tuple[str, ...]:
    known = DEFAULTS.builtin_providers
    names = tuple(name for name in value.split(",") if name)
    unknown = [name for name in names if name not in known]
    if unknown:
        raise ConfigError(
            f"--builtin-providers: not built-in providers: {', '.join(map(repr, unknown))} "
            f"(choose from {', '.join(known)}; plugins need no flag, only their socket)"
        )
    return names


def _http_url(flag: str, value: str) -> str:
    from urllib.parse import urlsplit

    if value and (urlsplit(value).scheme not in ("http", "https") or not urlsplit(value).netloc):
        raise ConfigError(f"{flag}: {value!r} is not an http:// or https:// URL")
    return value


def _trusted_dirs(value: str, *, windows: bool) -> tuple[str, ...]:
    paths = ntpath if windows else posixpath
    dirs = tuple(d for d in value.split(",") if d)
    # On Windows a path without a drive (``\etc``) is relative to the current drive.
    relative = [d for d in dirs if not paths.isabs(d) or (windows and not ntpath.splitdrive(d)[0])]
    if relative:
        raise ConfigError(f"--trusted-file-dirs: not absolute: {', '.join(relative)}")
    if any(paths.normpath(d) == paths.normpath(paths.splitdrive(d)[0] + paths.sep) for d in dirs):
        raise ConfigError(
            "--trusted-file-dirs: a root ('/', 'C:\\') would trust every file on the node"
        )
    return dirs


_AZURE_CLOUDS = frozenset(
    {
        "AZUREPUBLICCLOUD",
        "AZURECLOUD",
        "AZUREUSGOVERNMENTCLOUD",
        "AZUREUSGOVERNMENT",
        "AZURECHINACLOUD",
        "AZUREGERMANCLOUD",
        "AZURESTACKCLOUD",
    }
)


def _azure_cloud(value: str) -> str:
    """Checked here, by name only, so the provider's module stays unloaded until it is used."""
    if value.strip().upper() not in _AZURE_CLOUDS:
        raise ConfigError(
            f"--azure-cloud-name: unknown cloud {value!r} (AzurePublicCloud, "
            "AzureUSGovernmentCloud, AzureChinaCloud, AzureGermanCloud or AzureStackCloud)"
        )
    return value.strip()
