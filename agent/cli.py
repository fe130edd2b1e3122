"""``secrets-store-agent [serve|mount|unmount|providers]``.

``serve`` (the default) runs the node agent with upstream's flags. ``mount`` and ``unmount``
are a kubelet-like client for troubleshooting on a node: they send NodePublishVolume /
NodeUnpublishVolume to ``--endpoint`` with the volume context kubelet would send, and print
what got mounted (names, sizes, modes; contents only with ``--show-contents``). Like kubelet,
``mount`` targets ``<--kubelet-root-dir>/pods/<uid>/volumes/kubernetes.io~csi/<volume>/mount``
(or ``--target``) and creates the volume directory above it; the agent creates the rest.
Tokens (``--token AUDIENCE=FILE``) and node-publish secrets (``--secret-file KEY=FILE``) are
read from files, so they never sit in the command line other users can read.
``providers`` loads every in-process provider this build carries and says which work (exit 1 if
one fails).
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import sys
import uuid
from collections.abc import Sequence
from dataclasses import replace
from typing import TYPE_CHECKING

from agent import __version__
from agent.cli_volume import describe_volume, make_volume_dir, remove_made, target_of
from agent.config import socket_path_from_endpoint
from agent.errors import AgentError, ConfigError
from agent.flags import parse_settings
from agent.targets import DEFAULT_KUBELET_ROOT, pod_uid_and_volume

if TYPE_CHECKING:
    from agent.csi.client import PodVolume


def main(argv: Sequence[str] | None = None) -> int:
    args = list(sys.argv[1:] if argv is None else argv)
    commands = ("serve", "mount", "unmount", "providers")
    command = args[0] if args and args[0] in commands else "serve"
    if args and args[0] == command:
        args = args[1:]
    try:
        if command == "mount":
            return _mount(args)
        if command == "unmount":
            return _unmount(args)
        if command == "providers":
            return _providers(args)
        return _serve(args)
    except AgentError as err:
        print(f"secrets-store-agent {command}: {err.message}", file=sys.stderr)
        return 2


def _serve(args: list[str]) -> int:
    settings, print_version = parse_settings(args)
    if print_version:
        print(json.dumps({"BuildVersion": __version__, "GitCommit": "", "BuildDate": ""}))
        return 0
    from agent.app import run

    return run(settings)


def _providers(args: list[str]) -> int:
    from agent.inventory import describe, load_providers
    from agent.providers.registry import ProviderRegistry

    argparse.ArgumentParser(
        prog="secrets-store-agent providers",
        description="Load every in-process provider of this build; exit 1 if one fails.",
    ).parse_args(args)
    registry = ProviderRegistry(timeout=10.0, version_key=b"inventory" * 4)
    loads = asyncio.run(load_providers(registry))
    for line in describe(loads):
        print(line)
    return 1 if any(load.error for load in loads) else 0


def _client_parser(prog: str) -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog=prog)
    add = parser.add_argument
    add("--endpoint", default="unix://tmp/csi.sock", help="agent CSI endpoint")
    add(
        "--kubelet-root-dir",
        default=DEFAULT_KUBELET_ROOT,
        help="kubelet's root directory (the agent's --kubelet-root-dir)",
    )
    add("--uid", default="", help="pod UID (default: from --target, else random for mount)")
    add("--volume", default="secrets", help="volume name in the pod spec")
    add("--target", default="", help="target path (default: kubelet's, from the flags above)")
    add("--volume-id", default="", help="volume id (default: kubelet's derivation)")
    return parser


def _mount(args: list[str]) -> int:
    from agent.csi.client import publish

    ns = _mount_parser().parse_args(args)
    volume = _pod_volume(ns)
    made = make_volume_dir(volume.target_path)
    try:
        asyncio.run(publish(socket_path_from_endpoint(ns.endpoint), volume))
    except BaseException:
        remove_made(made)
        raise
    print(f"mounted {volume.target_path}")
    for line in describe_volume(volume.target_path, ns.show_contents):
        print(line)
    return 0


def _mount_parser() -> argparse.ArgumentParser:
    """``mount``'s flags: the client's, then the pod's, its class, and what kubelet would send."""
    parser = _client_parser("secrets-store-agent mount")
    add = parser.add_argument
    add("--pod", required=True, help="pod name")
    add("--namespace", default="default")
    add("--service-account", default="default")
    add(
        "--spc",
        required=True,
        help="SecretProviderClass name (volumeAttributes.secretProviderClass)",
    )
    add("--attr", action="append", default=[], metavar="K=V", help="extra volume attribute")
    add(
        "--token",
        action="append",
        default=[],
        metavar="AUDIENCE=FILE",
        help="service-account token for an audience, read from FILE",
    )
    add(
        "--secret",
        action="append",
        default=[],
        metavar="K=V",
        help="node-publish secret entry; a value on the command line is visible to other users "
        "of the node (ps, /proc/PID/cmdline): prefer --secret-file",
    )
    add(
        "--secret-file",
        action="append",
        default=[],
        metavar="KEY=FILE",
        help="node-publish secret entry whose value is FILE's content, as is (as a Secret made "
        "with kubectl create secret generic --from-file=KEY=FILE)",
    )
    add("--show-contents", action="store_true", help="also print file contents")
    return parser


def _pod_volume(ns: argparse.Namespace) -> PodVolume:
    """The volume ``mount`` publishes: kubelet's target, pod UID and volume id unless given;
    tokens and node-publish secrets read from their files (ConfigError names the flag)."""
    from agent.csi.client import PodVolume

    target = target_of(ns)
    parsed = pod_uid_and_volume(target)
    volume = PodVolume(
        target_path=target,
        pod_name=ns.pod,
        namespace=ns.namespace,
        pod_uid=ns.uid or (parsed[0] if parsed else str(uuid.uuid4())),
        service_account=ns.service_account,
        secret_provider_class=ns.spc,
        attributes=_pairs(ns.attr, "--attr"),
        tokens={
            aud: _read(path, "--token").strip() for aud, path in _pairs(ns.token, "--token").items()
        },
        secrets=_node_publish_secrets(ns),
        volume_id=ns.volume_id,
    )
    if not volume.volume_id:
        volume = replace(volume, volume_id=_volume_id(volume.target_path, volume.pod_uid))
    return volume


def _unmount(args: list[str]) -> int:
    from agent.csi.client import unpublish

    parser = _client_parser("secrets-store-agent unmount")
    ns = parser.parse_args(args)
    if not ns.target and not ns.uid:
        raise ConfigError("--target or --uid (with --volume) names the volume to unmount")
    target = target_of(ns)
    volume_id = ns.volume_id or _volume_id(target)
    # NodeUnpublishVolume succeeds whether or not anything was there (kubelet retries rely on
    # it); look first so the message does not claim an unmount that never happened.
    existed = os.path.lexists(target)
    asyncio.run(unpublish(socket_path_from_endpoint(ns.endpoint), volume_id, target))
    print(f"unmounted {target}" if existed else f"nothing was mounted at {target}")
    return 0


def _volume_id(target: str, pod_uid: str = "") -> str:
    """Kubelet's id for the volume when the target follows its layout, else one from the path."""
    from agent.csi.client import ephemeral_volume_id

    parsed = pod_uid_and_volume(target)
    uid, name = parsed if parsed else (pod_uid, target)
    return ephemeral_volume_id(uid, name)


def _pairs(items: list[str], flag: str) -> dict[str, str]:
    result = {}
    for item in items:
        key, sep, value = item.partition("=")
        if not sep or not key:
            raise ConfigError(f"{flag}: expected KEY=VALUE, got {item.split('=')[0]!r}")
        result[key] = value
    return result


def _node_publish_secrets(ns: argparse.Namespace) -> dict[str, str]:
    """``--secret`` and ``--secret-file`` entries; a key given by both is refused. A file's
    content is kept as is, trailing newline included: kubelet sends a Secret's data unchanged,
    and multi-line values (a key.json, a PEM) are what a command line handles worst."""
    given = _pairs(ns.secret, "--secret")
    read = {
        key: _read(path, "--secret-file")
        for key, path in _pairs(ns.secret_file, "--secret-file").items()
    }
    both = sorted(given.keys() & read.keys())
    if both:
        raise ConfigError(f"--secret-file: {both[0]!r} is also given by --secret")
    return given | read


def _read(path: str, flag: str) -> str:
    try:
        with open(path, encoding="utf-8", newline="") as handle:  # no \r\n translation
            return handle.read()
    except OSError as err:
        raise ConfigError(f"{flag}: cannot read {path}: {err.strerror}") from None
    except UnicodeDecodeError:
        # CSI carries tokens and node-publish secrets as protobuf strings, which are UTF-8.
        raise ConfigError(f"{flag}: {path} is not UTF-8 text") from None
