"""Standalone mode's Node: an optional ``kind: Node`` manifest in the standalone directory,
named like ``--nodeid``, whose ``metadata.labels`` stand in for the node's labels in the API
(the AWS provider reads ``topology.kubernetes.io/region`` from them when a
SecretProviderClass names no region and the agent has no ``AWS_REGION``).

Only ``apiVersion: v1``, ``kind: Node``, ``metadata.name`` and ``metadata.labels`` are read. As
for ServiceAccounts, the first manifest of a name wins and a differing copy is reported.
"""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path
from typing import Protocol, TypeGuard

from agent.documents.spc import InvalidDocument
from agent.errors import NodeNotFound

NODE_KIND = "Node"
CLUSTER_SCOPED = frozenset({NODE_KIND})  # kinds read without a namespace


def is_node(document: object) -> TypeGuard[Mapping[str, object]]:
    return (
        isinstance(document, Mapping)
        and document.get("kind") == NODE_KIND
        and document.get("apiVersion") == "v1"
    )


def string_map(metadata: Mapping[str, object], field: str, what: str) -> dict[str, str]:
    """``metadata.<field>`` (labels, annotations) as a dict; InvalidDocument naming the field
    when it is not a mapping of strings."""
    found = metadata.get(field) or {}
    if not isinstance(found, Mapping) or not all(
        isinstance(k, str) and isinstance(v, str) for k, v in found.items()
    ):
        raise InvalidDocument(f"metadata.{field} of {what} must be a mapping of strings")
    return dict(found)


def load_node(
    document: Mapping[str, object], nodes: dict[str, dict[str, str]], problems: list[str]
) -> None:
    """Record the manifest's labels under its name; a reason for anything wrong goes to
    ``problems``. Nodes are cluster-scoped: a namespace is ignored."""
    metadata = document.get("metadata")
    name = metadata.get("name") if isinstance(metadata, Mapping) else None
    if not isinstance(metadata, Mapping) or not isinstance(name, str) or not name:
        problems.append("node: metadata.name must be a non-empty string")
        return
    try:
        labels = string_map(metadata, "labels", f"node {name}")
    except InvalidDocument as exc:
        problems.append(exc.reason)
        return
    first = nodes.get(name)
    if first is None:
        nodes[name] = labels
    elif first != labels:
        problems.append(f"node {name} is defined twice with different labels")


class NodeManifests(Protocol):
    @property
    def directory(self) -> Path: ...

    async def node_labels(self, name: str) -> Mapping[str, str] | None:
        """The labels of the Node manifest ``name``; None when there is none."""
        ...

    def near_miss_note(self, kind: str, namespace: str, name: str) -> str:
        """`` (see <where>: <why>)`` for a manifest skipped for a slip in its kind or
        apiVersion that meant this object (standalone/near_miss.py); "" when none did."""
        ...


class DirectoryNodeLabels:
    """Implements ``ports.NodeLabelSource`` over the standalone directory's Node manifest."""

    def __init__(self, manifests: NodeManifests, node_name: str) -> None:
        self._manifests = manifests
        self._node_name = node_name

    @property
    def node_name(self) -> str:
        return self._node_name

    async def labels(self) -> Mapping[str, str]:
        found = await self._manifests.node_labels(self._node_name)
        if found is None:
            raise NodeNotFound(
                f"node {self._node_name} not found in {self._manifests.directory} (standalone "
                "mode reads its labels from a kind: Node manifest named like --nodeid there)"
                + self._manifests.near_miss_note(NODE_KIND, "", self._node_name)
            )
        return found
