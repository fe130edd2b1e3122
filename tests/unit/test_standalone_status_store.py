"""DirectoryPodStatusStore: SecretProviderClassPodStatus objects as YAML files."""

from __future__ import annotations

import os
import stat
from pathlib import Path

import pytest
import yaml

from agent.errors import StatusError
from agent.model import ObjectVersion, PodStatus, pod_status_name
from agent.ports import PodStatusStore
from agent.standalone.status_store import DirectoryPodStatusStore


def make_status(**changes: object) -> PodStatus:
    values: dict[str, object] = {
        "name": pod_status_name("web-0", "apps", "vault-db"),
        "namespace": "apps",
        "pod_name": "web-0",
        "pod_uid": "6f1c-uid",
        "spc_name": "vault-db",
        "target_path": "/var/lib/kubelet/pods/6f1c-uid/volumes/kubernetes.io~csi/s/mount",
        "node_name": "node-a",
        "mounted": True,
        "objects": (ObjectVersion("z-key", "3"), ObjectVersion("a-key", "1")),
    }
    values.update(changes)
    return PodStatus(**values)  # type: ignore[arg-type]


async def test_upsert_writes_the_upstream_shaped_object(tmp_path: Path) -> None:
    store = DirectoryPodStatusStore(tmp_path)

    await store.upsert(make_status())

    path = tmp_path / "status" / "apps" / "web-0-apps-vault-db.yaml"
    assert yaml.safe_load(path.read_text()) == {
        "apiVersion": "secrets-store.csi.x-k8s.io/v1",
        "kind": "SecretProviderClassPodStatus",
        "metadata": {
            "name": "web-0-apps-vault-db",
            "namespace": "apps",
            "labels": {"internal.secrets-store.csi.k8s.io/node-name": "node-a"},
            "ownerReferences": [
                {"apiVersion": "v1", "kind": "Pod", "name": "web-0", "uid": "6f1c-uid"}
            ],
        },
        "status": {
            "podName": "web-0",
            "secretProviderClassName": "vault-db",
            "mounted": True,
            "targetPath": "/var/lib/kubelet/pods/6f1c-uid/volumes/kubernetes.io~csi/s/mount",
            "objects": [{"id": "a-key", "version": "1"}, {"id": "z-key", "version": "3"}],
        },
    }
    assert stat.S_IMODE(path.stat().st_mode) == 0o644


async def test_load_all_reads_back_what_was_written(tmp_path: Path) -> None:
    store = DirectoryPodStatusStore(tmp_path)
    first = make_status()
    second = make_status(namespace="b", name="p-b-c", pod_name="p", spc_name="c", objects=())
    await store.upsert(first)
    await store.upsert(second)

    loaded = await store.load_all()

    sorted_first = make_status(objects=tuple(sorted(first.objects, key=lambda o: o.id)))
    assert loaded == [sorted_first, second]


async def test_upsert_overwrites_and_leaves_no_temp_files(tmp_path: Path) -> None:
    store = DirectoryPodStatusStore(tmp_path)
    await store.upsert(make_status())
    await store.upsert(make_status(objects=(ObjectVersion("a-key", "2"),)))

    [loaded] = await store.load_all()
    assert loaded.objects == (ObjectVersion("a-key", "2"),)
    assert os.listdir(tmp_path / "status" / "apps") == ["web-0-apps-vault-db.yaml"]


async def test_failed_write_keeps_the_previous_file(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    store = DirectoryPodStatusStore(tmp_path)
    await store.upsert(make_status())
    path = store.path_for("apps", "web-0-apps-vault-db")
    before = path.read_bytes()

    def broken_replace(src: str, dst: str) -> None:
        raise OSError(28, "No space left on device")

    monkeypatch.setattr(os, "replace", broken_replace)
    with pytest.raises(StatusError, match="No space left on device"):
        await store.upsert(make_status(mounted=False))

    assert path.read_bytes() == before
    assert os.listdir(path.parent) == [path.name]


async def test_delete_removes_and_tolerates_missing(tmp_path: Path) -> None:
    store = DirectoryPodStatusStore(tmp_path)
    await store.upsert(make_status())

    await store.delete("apps", "web-0-apps-vault-db")
    await store.delete("apps", "web-0-apps-vault-db")
    await store.delete("never", "existed")

    assert await store.load_all() == []


@pytest.mark.parametrize(
    ("namespace", "name"), [("apps", "../escape"), ("..", "x"), ("a/b", "x"), ("apps", "")]
)
async def test_names_cannot_escape_the_directory(tmp_path: Path, namespace: str, name: str) -> None:
    store = DirectoryPodStatusStore(tmp_path)
    with pytest.raises(StatusError, match="invalid pod status"):
        await store.upsert(make_status(namespace=namespace, name=name))
    with pytest.raises(StatusError):
        await store.delete(namespace, name)


async def test_load_all_skips_broken_files(tmp_path: Path) -> None:
    store = DirectoryPodStatusStore(tmp_path)
    await store.upsert(make_status())
    (tmp_path / "status" / "apps" / "broken.yaml").write_text("status: [\n")
    (tmp_path / "status" / "apps" / "wrong.yaml").write_text("kind: Pod\n")

    loaded = await store.load_all()

    assert [s.name for s in loaded] == ["web-0-apps-vault-db"]


async def test_load_all_on_a_fresh_directory_is_empty(tmp_path: Path) -> None:
    assert await DirectoryPodStatusStore(tmp_path / "new").load_all() == []


def test_implements_the_port(tmp_path: Path) -> None:
    store: PodStatusStore = DirectoryPodStatusStore(tmp_path)  # checked by mypy
    assert callable(store.upsert)
