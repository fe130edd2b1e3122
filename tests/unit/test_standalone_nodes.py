"""Standalone mode's Node: a ``kind: Node`` manifest named like ``--nodeid`` beside the
SecretProviderClasses gives ``ports.NodeLabelSource`` its labels (docs/aws.md)."""

from __future__ import annotations

from pathlib import Path

import pytest
import structlog

from agent.errors import NodeNotFound
from agent.ports import NodeLabelSource
from agent.standalone.nodes import DirectoryNodeLabels
from agent.standalone.spc_source import DirectorySecretProviderClassSource

NODE = """\
apiVersion: v1
kind: Node
metadata:
  name: node-a
  namespace: ignored   # nodes are cluster-scoped
  labels:
    topology.kubernetes.io/region: eu-west-1
"""


def labels_of(directory: Path, name: str = "node-a") -> NodeLabelSource:
    return DirectoryNodeLabels(DirectorySecretProviderClassSource(directory), name)


async def test_the_manifest_named_like_the_node_gives_its_labels(tmp_path: Path) -> None:
    other = NODE.replace("node-a", "node-b").replace("eu-west-1", "us-east-1")
    (tmp_path / "nodes.yaml").write_text(other + "---\n" + NODE)
    source = labels_of(tmp_path)
    assert source.node_name == "node-a"
    assert await source.labels() == {"topology.kubernetes.io/region": "eu-west-1"}


async def test_a_node_without_labels_has_none(tmp_path: Path) -> None:
    (tmp_path / "node.yaml").write_text("apiVersion: v1\nkind: Node\nmetadata: {name: node-a}\n")
    assert await labels_of(tmp_path).labels() == {}


async def test_no_manifest_names_the_directory(tmp_path: Path) -> None:
    (tmp_path / "node.yaml").write_text(NODE.replace("node-a", "node-b"))
    with pytest.raises(NodeNotFound) as raised:
        await labels_of(tmp_path).labels()
    assert raised.value.message == (
        f"node node-a not found in {tmp_path} (standalone mode reads its labels from a kind: "
        "Node manifest named like --nodeid there)"
    )


async def test_a_later_manifest_appears_without_a_restart(tmp_path: Path) -> None:
    source = labels_of(tmp_path)
    with pytest.raises(NodeNotFound):
        await source.labels()
    (tmp_path / "node.yaml").write_text(NODE)
    assert (await source.labels())["topology.kubernetes.io/region"] == "eu-west-1"


async def test_bad_and_conflicting_manifests_are_reported(tmp_path: Path) -> None:
    (tmp_path / "a.yaml").write_text(NODE)
    (tmp_path / "b.yaml").write_text(NODE.replace("eu-west-1", "us-east-1"))
    (tmp_path / "c.yaml").write_text(NODE.replace("node-a", "node-c").replace("eu-west-1", "7"))
    (tmp_path / "d.yaml").write_text("apiVersion: v1\nkind: Node\nmetadata: {labels: {}}\n")
    with structlog.testing.capture_logs() as logs:
        found = await labels_of(tmp_path).labels()
        with pytest.raises(NodeNotFound):
            await labels_of(tmp_path, "node-c").labels()
    assert found["topology.kubernetes.io/region"] == "eu-west-1"  # the first definition wins
    reasons = {e["file"]: e["reason"] for e in logs if e["event"] == "standalone.spc_invalid"}
    assert reasons == {
        "b.yaml": "node node-a is defined twice with different labels",
        "c.yaml": "metadata.labels of node node-c must be a mapping of strings",
        "d.yaml": "node: metadata.name must be a non-empty string",
    }


@pytest.mark.parametrize(
    ("change", "reason"),
    [
        (
            ("apiVersion: v1", "apiVersion: v2"),
            'apiVersion: Unsupported value: "v2": the agent reads kind Node as v1',
        ),
        (("apiVersion: v1\n", ""), "apiVersion: Required value: the agent reads kind Node as v1"),
        (
            ("kind: Node", "kind: node"),
            'kind: Unsupported value: "node": the agent reads Node (apiVersion v1)',
        ),
        (
            ("kind: Node", "kind: Nodes"),
            'kind: Unsupported value: "Nodes": the agent reads Node (apiVersion v1)',
        ),
    ],
)
async def test_not_found_points_at_a_misspelled_manifest_of_the_node(
    tmp_path: Path, change: tuple[str, str], reason: str
) -> None:
    """Standalone mode has no API server to refuse the manifest: without the pointer the
    user would only see "not found" for a manifest they can see in the directory. Its
    namespace (nodes have none) does not matter, as for a manifest that is read."""
    (tmp_path / "nodes.yaml").write_text(NODE.replace(*change))
    with pytest.raises(NodeNotFound) as raised:
        await labels_of(tmp_path).labels()
    assert raised.value.message.startswith(f"node node-a not found in {tmp_path} (standalone ")
    assert raised.value.message.endswith(f" (see nodes.yaml: {reason}; document skipped)")
    with pytest.raises(NodeNotFound) as other:
        await labels_of(tmp_path, "node-b").labels()
    assert "(see" not in other.value.message
