"""Secret sync reads a volume's files only below the kubelet root, never through a symlink: a
link planted at or above a target (here the pod's directory, pointing at a node directory
shaped like a volume) cannot make the agent copy a node file into a Kubernetes Secret."""

from __future__ import annotations

import os
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from tests.integration.k8s.test_secret_sync import data_of, entry
from tests.support.kube_agent import KubeHarness

NODE_FILE = b"root:$6$node-password-hash"


def _node_directory_shaped_like_a_volume(base: Path, volume: str) -> Path:
    """A directory outside the kubelet root holding what looks like a written volume."""
    mount = base / "volumes" / "kubernetes.io~csi" / volume / "mount"
    version = mount / "..2020_01_01_00_00_00.000000001"
    version.mkdir(parents=True)
    (version / "password").write_bytes(NODE_FILE)
    os.symlink(version.name, mount / "..data")
    os.symlink("..data/password", mount / "password")
    (mount / "legacy-only").write_bytes(NODE_FILE)
    return base


@contextmanager
def _pod_directory_replaced_by_link(pod_dir: Path, destination: Path) -> Iterator[None]:
    """Move the pod's directory aside (its mount goes with it) and plant a link in its place;
    put everything back afterwards so the volume can be unpublished."""
    aside = pod_dir.with_name(pod_dir.name + ".aside")
    pod_dir.rename(aside)
    os.symlink(destination, pod_dir)
    try:
        yield
    finally:
        os.unlink(pod_dir)
        aside.rename(pod_dir)


async def test_a_link_above_the_target_leaks_no_node_file(
    node: KubeHarness, tmp_path: Path
) -> None:
    node.add_spc(secret_objects=[entry("db", "Opaque", ("password", "password"))])
    web = await node.add_pod("web-0")
    target = await node.publish(web)
    await node.synced()
    assert data_of(node.secret("db")) == {"password": b"s3cr3t"}
    outside = _node_directory_shaped_like_a_volume(tmp_path / "node", "secrets")
    pod_dir = Path(target).parents[3]
    assert pod_dir.name == web["metadata"]["uid"]
    node.kube.store.delete("secrets", "default", "db")  # the re-sync would recreate it
    with _pod_directory_replaced_by_link(pod_dir, outside):
        await node.resync()
    leaked = [
        name
        for secret in node.kube.store.list("secrets", "default")
        for name, value in data_of(secret).items()
        if value == NODE_FILE
    ]
    assert leaked == []
    assert node.secret("db") is None  # not recreated from anything
    event = await node.event("FailedToCreateSecret")
    assert "cannot read the mounted files of" in event["message"]
    assert "must not pass through a symlink" in event["message"]
    await node.resync()  # the link is gone: the Secret comes back from the real volume
    assert data_of(node.secret("db")) == {"password": b"s3cr3t"}
