"""Parse upstream's flat attribute map into a frozen Vault/OpenBao mount configuration.

Key names follow hashicorp/vault-csi-provider (``vaultAddress``, ``roleName``, ...). The OpenBao
flavour also accepts the ``bao*`` and ``openbao*`` spellings of every ``vault*`` key, as the
openbao-csi-provider fork does, so one SecretProviderClass works with either provider name.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Literal
from urllib.parse import urlsplit

from agent.documents.names import shown_value
from agent.errors import InvalidSecretProviderClass
from agent.providers.common.gostrconv import parse_bool
from agent.providers.common.parameters import require_parameter
from agent.providers.common.trusted import NOTHING_TRUSTED, TrustedDirs
from agent.providers.vault.objects import OBJECTS_SHAPE, SecretObject, parse_objects

Flavour = Literal["vault", "openbao"]
Parsed = tuple[tuple[SecretObject, ...], tuple[str, ...]]  # parse_objects: objects, warnings

_PREFIXES: Mapping[Flavour, tuple[str, ...]] = {
    "vault": ("vault",),
    "openbao": ("openbao", "bao", "vault"),
}


@dataclass(frozen=True, slots=True)
class NodePath:
    """A node file or socket as the SecretProviderClass names it, with the parameter that
    named it (for messages). It is checked against the trusted directories, and a file read,
    in a worker thread when a mount uses it (nodefiles.py): parsing touches no file system."""

    key: str
    path: str
    checked: bool = True  # False only for the operator's own default socket address


@dataclass(frozen=True, slots=True)
class TLSConfig:
    """The TLS parameters as written; with the socket they key the transport's shared
    session, so a ConfigMap update (new bytes, same parameters) replaces that session."""

    skip_verify: bool = False
    ca_cert: NodePath | None = None
    ca_directory: NodePath | None = None
    server_name: str = ""
    client_cert: NodePath | None = None
    client_key: NodePath | None = None


@dataclass(frozen=True, slots=True)
class Defaults:
    """Agent-level settings the SPC may override (upstream: flags, then environment)."""

    address: str = ""
    namespace: str = ""
    auth_mount: str = "kubernetes"
    audience: str = "vault"


@dataclass(frozen=True, slots=True)
class VaultConfig:
    address: str  # for messages and tokens: http(s):// without a trailing slash, or unix://...
    role: str
    namespace: str
    auth_mount: str  # without "auth/" and slashes, e.g. "kubernetes"
    audience: str
    tls: TLSConfig
    objects: tuple[SecretObject, ...]
    warnings: tuple[str, ...] = ()
    socket: NodePath | None = None  # of a unix:// address, kept apart from any URL parsing


class _Params:
    """Looks a logical key up under every spelling the flavour accepts."""

    def __init__(self, attributes: Mapping[str, str], flavour: Flavour) -> None:
        self._attributes = attributes
        self._prefixes = _PREFIXES[flavour]

    def spellings(self, suffix: str) -> tuple[str, ...]:
        return tuple(prefix + suffix for prefix in self._prefixes)

    def get(self, *names: str) -> tuple[str, str] | None:
        """Return (key, value) of the one spelling that is set; fail on conflicting spellings."""
        found = [(name, self._attributes[name]) for name in names if self._attributes.get(name)]
        if len({value for _, value in found}) > 1:
            keys = " and ".join(name for name, _ in found)
            raise InvalidSecretProviderClass(f"{keys} are both set, with different values")
        return found[0] if found else None

    def text(self, *names: str) -> str:
        hit = self.get(*names)
        return hit[1] if hit else ""


def parse_config(
    attributes: Mapping[str, str],
    flavour: Flavour,
    defaults: Defaults,
    *,
    trusted: TrustedDirs = NOTHING_TRUSTED,
    objects: Parsed | None = None,
) -> VaultConfig:
    """Validate everything up front; raise InvalidSecretProviderClass naming the parameter.

    Node paths the SPC names must be absolute, and some directory must be ``trusted``; whether
    they lie inside one is checked when a mount reads them (nodefiles.py), off the event loop.
    ``objects``: ``parse_objects`` of the ``objects`` parameter, when the caller has it (the
    provider parses through common.parsed); parsed here otherwise."""
    params = _Params(attributes, flavour)
    if objects is None:
        objects = parse_objects(require_parameter(attributes, "objects", OBJECTS_SHAPE))
    role = params.text("roleName", *params.spellings("RoleName"))
    if not role:
        raise InvalidSecretProviderClass("roleName: is required (the Vault role to log in as)")
    secret_objects, warnings = objects
    address, socket = _address(params, defaults, trusted)
    return VaultConfig(
        address=address,
        role=role,
        namespace=params.text(*params.spellings("Namespace")) or defaults.namespace,
        auth_mount=_auth_mount(params, defaults),
        audience=attributes.get("audience") or defaults.audience,
        tls=_tls(params, trusted),
        objects=secret_objects,
        warnings=warnings,
        socket=socket,
    )


def _address(
    params: _Params, defaults: Defaults, trusted: TrustedDirs
) -> tuple[str, NodePath | None]:
    names = params.spellings("Address")
    hit = params.get(*names)
    key, address = hit if hit else ("default address", defaults.address)
    if not address:
        raise InvalidSecretProviderClass(
            f"{names[0]}: no server address; set it in the SecretProviderClass or configure "
            "the agent's default address (or VAULT_ADDR/BAO_ADDR)"
        )
    _check_characters(key, address)
    if address.startswith("unix://"):
        return address, _socket(key, address, trusted if hit else None)
    parts = urlsplit(address)
    if parts.scheme not in ("http", "https") or not parts.netloc:
        raise InvalidSecretProviderClass(f"{key}: must be an http://, https:// or unix:// URL")
    return address.rstrip("/"), None


def _check_characters(key: str, address: str) -> None:
    """Go's url.Parse refuses control characters, and a space cannot be in a URL's host: such
    an address fails hashicorp's provider. Python's urlsplit drops tabs and newlines instead,
    so a block scalar's final newline would pass, and reach messages raw. (A space may be in
    a socket's path.)"""
    controls = any(ord(char) < 0x20 or char == "\x7f" for char in address)
    if controls or (" " in address and not address.startswith("unix://")):
        raise InvalidSecretProviderClass(
            f"{key}: {shown_value(address)} holds a space or a control character (a block "
            f"scalar's final newline? use {key}: URL, or |- to drop it)"
        )


def _socket(key: str, address: str, trusted: TrustedDirs | None) -> NodePath:
    """The socket of a unix:// address. Like Go's Vault client, everything after "unix://" is
    the path, "#" and "?" included; it is never parsed as a URL again."""
    path = address.removeprefix("unix://")
    if not path.startswith("/"):
        # Go's Vault client reads unix://run/x.sock as the relative path run/x.sock: refuse
        # rather than guess what the node's working directory is.
        raise InvalidSecretProviderClass(
            f"{key}: a unix socket address is unix:///absolute/path/to/socket"
        )
    if trusted is None:
        return NodePath(key, path, checked=False)  # the operator's own default is trusted
    trusted.check(key, path)
    return NodePath(key, path)


def _auth_mount(params: _Params, defaults: Defaults) -> str:
    kube = params.get(*params.spellings("KubernetesMountPath"))
    auth = params.get(*params.spellings("AuthMountPath"))
    if kube and auth:
        raise InvalidSecretProviderClass(
            f"{kube[0]} and {auth[0]} are mutually exclusive; set only one"
        )
    key, mount = kube or auth or ("default auth mount", defaults.auth_mount)
    # People write "auth/jwt" or "/jwt/"; the login URL wants the bare mount path.
    mount = mount.strip("/")
    mount = mount.removeprefix("auth/")
    if not mount or ".." in mount.split("/"):
        raise InvalidSecretProviderClass(f"{key}: must name an auth mount such as 'kubernetes'")
    return mount


def _tls(params: _Params, trusted: TrustedDirs) -> TLSConfig:
    cert_names = params.spellings("TLSClientCertPath")
    key_names = params.spellings("TLSClientKeyPath")
    cert, key = params.get(*cert_names), params.get(*key_names)
    if bool(cert) != bool(key):
        raise InvalidSecretProviderClass(f"{cert_names[0]} and {key_names[0]} must be set together")

    def node_path(hit: tuple[str, str] | None) -> NodePath | None:
        if hit is None:
            return None
        trusted.check(*hit)
        return NodePath(*hit)

    return TLSConfig(
        skip_verify=_bool(params, "SkipTLSVerify"),
        ca_cert=node_path(params.get(*params.spellings("CACertPath"))),
        ca_directory=node_path(params.get(*params.spellings("CADirectory"))),
        server_name=params.text(*params.spellings("TLSServerName")),
        client_cert=node_path(cert),
        client_key=node_path(key),
    )


def _bool(params: _Params, suffix: str) -> bool:
    hit = params.get(*params.spellings(suffix))
    if hit is None:
        return False
    key, value = hit
    parsed = parse_bool(value)  # as the Go provider parses it
    if parsed is None:
        raise InvalidSecretProviderClass(f"{key}: must be true or false")
    return parsed
