"""DirectoryPodStatusStore: SecretProviderClassPodStatus objects as YAML files."""

from __future__ import annotations

import _thread
import asyncio
import json
import os
import stat
import threading
from collections.abc import Callable
from pathlib import Path

import pytest
import yaml
from structlog.testing import capture_logs

from agent.aio.backoff import BackoffPolicy
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


async def test_upsert_writes_the_upstream_shaped_object_behind_the_caller(
    tmp_path: Path,
) -> None:
    store = DirectoryPodStatusStore(tmp_path)
    path = tmp_path / "status" / "apps" / "web-0-apps-vault-db.yaml"

    await store.upsert(make_status())
    assert not path.exists(), "upsert only queues: kubelet's reply never waits on the file"
    await store.wait_idle()

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
    await store.wait_idle()

    loaded = await store.load_all()

    sorted_first = make_status(objects=tuple(sorted(first.objects, key=lambda o: o.id)))
    assert loaded == [sorted_first, second]


async def test_upsert_overwrites_and_leaves_no_temp_files(tmp_path: Path) -> None:
    store = DirectoryPodStatusStore(tmp_path)
    await store.upsert(make_status())
    await store.wait_idle()
    await store.upsert(make_status(objects=(ObjectVersion("a-key", "2"),)))
    await store.wait_idle()

    [loaded] = await store.load_all()
    assert loaded.objects == (ObjectVersion("a-key", "2"),)
    assert os.listdir(tmp_path / "status" / "apps") == ["web-0-apps-vault-db.yaml"]


async def until(condition: Callable[[], bool]) -> None:
    """Until the writer (a task and its worker thread) got there; bounded."""
    for _ in range(5000):
        if condition():
            return
        await asyncio.sleep(0.001)
    raise AssertionError("the writer never got there")


class Pauses:
    """The writer's backoff sleep, recorded and not waited out; a test decides when a write
    may succeed again."""

    def __init__(self) -> None:
        self.delays: list[float] = []
        self.next = asyncio.Event()

    async def __call__(self, delay: float) -> None:
        self.delays.append(delay)
        await self.next.wait()
        self.next.clear()


async def test_a_failed_write_keeps_the_previous_file_is_logged_and_retried(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    pauses = Pauses()
    store = DirectoryPodStatusStore(tmp_path, backoff=BackoffPolicy(jitter=0.0), sleep=pauses)
    await store.upsert(make_status())
    await store.wait_idle()
    path = store.path_for("apps", "web-0-apps-vault-db")
    before = path.read_bytes()
    real_replace = os.replace

    def broken_replace(src: str, dst: str) -> None:
        raise OSError(28, "No space left on device")

    monkeypatch.setattr(os, "replace", broken_replace)
    with capture_logs() as logs:
        await store.upsert(make_status(mounted=False))
        await until(lambda: len(pauses.delays) == 1)  # the first attempt failed
        pauses.next.set()
        await until(lambda: len(pauses.delays) == 2)  # and the retry after its pause

    assert path.read_bytes() == before
    assert os.listdir(path.parent) == [path.name]
    assert pauses.delays[:2] == [0.5, 1.0], "backoff grows between retries"
    retrying = [e for e in logs if e["event"] == "pod_status.write_retrying"]
    assert retrying and "No space left on device" in retrying[0]["error"]

    monkeypatch.setattr(os, "replace", real_replace)  # the disk has room again
    pauses.next.set()
    await store.wait_idle()
    [loaded] = await store.load_all()
    assert loaded.mounted is False


def hold_renames(monkeypatch: pytest.MonkeyPatch) -> tuple[threading.Event, threading.Event]:
    """Status renames wait in their worker thread until ``release``; ``entered`` says one is."""
    entered, release = threading.Event(), threading.Event()
    real_replace = os.replace

    def held_replace(src: str, dst: str) -> None:
        entered.set()
        release.wait(10)
        real_replace(src, dst)

    monkeypatch.setattr(os, "replace", held_replace)
    return entered, release


async def test_a_delete_drops_a_queued_write_and_waits_for_one_in_flight(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    store = DirectoryPodStatusStore(tmp_path)
    await store.upsert(make_status())
    await store.delete("apps", "web-0-apps-vault-db")  # before the writer ran: dropped
    await store.wait_idle()
    assert await store.load_all() == []

    entered, release = hold_renames(monkeypatch)
    await store.upsert(make_status())
    await until(entered.is_set)  # the write is in its worker thread, about to rename
    deleting = asyncio.ensure_future(store.delete("apps", "web-0-apps-vault-db"))
    await asyncio.sleep(0)
    assert not deleting.done(), "the delete waits for the write in flight"
    release.set()
    await deleting
    await store.wait_idle()
    assert await store.load_all() == [], "the status never lands after its delete"


async def test_close_writes_what_is_still_queued(tmp_path: Path) -> None:
    store = DirectoryPodStatusStore(tmp_path)
    await store.upsert(make_status())
    await store.close()
    assert [s.name for s in await store.load_all()] == ["web-0-apps-vault-db"]


async def test_delete_removes_and_tolerates_missing(tmp_path: Path) -> None:
    store = DirectoryPodStatusStore(tmp_path)
    await store.upsert(make_status())
    await store.wait_idle()

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


async def test_names_past_a_file_names_length_get_files_of_their_own(tmp_path: Path) -> None:
    """Status names of 251 to 253 characters (the API server takes them) that share their first
    250 characters are two files, each read back under its own name and deleted alone; 254 is
    refused with the name cut. Before: all three refused, the whole name in the message."""
    store = DirectoryPodStatusStore(tmp_path)
    long_names = ["w" * 250 + "-ab", "w" * 250 + "-cd", "w" * 251]
    for name in long_names:
        await store.upsert(make_status(name=name))
    await store.wait_idle()
    files = sorted(path.name for path in (tmp_path / "status" / "apps").iterdir())
    assert len(files) == 3 and all(len(name) <= 255 for name in files)
    assert sorted(status.name for status in await store.load_all()) == sorted(long_names)
    await store.delete("apps", long_names[0])
    assert sorted(status.name for status in await store.load_all()) == sorted(long_names[1:])
    with pytest.raises(StatusError) as refused:
        await store.upsert(make_status(name="w" * 254))
    assert refused.value.message == f"invalid pod status name {'w' * 80!r}..."


async def test_load_all_skips_broken_files(tmp_path: Path) -> None:
    store = DirectoryPodStatusStore(tmp_path)
    await store.upsert(make_status())
    await store.wait_idle()
    (tmp_path / "status" / "apps" / "broken.yaml").write_text("status: [\n")
    (tmp_path / "status" / "apps" / "wrong.yaml").write_text("kind: Pod\n")

    loaded = await store.load_all()

    assert [s.name for s in loaded] == ["web-0-apps-vault-db"]


async def test_load_all_at_start_removes_the_temporary_files_of_killed_writes(
    tmp_path: Path,
) -> None:
    """A write killed between its temporary file and the rename (SIGKILL, OOM) leaves
    ``.status-*.tmp`` beside the statuses; the restart's read removes them. Before: kept for
    good, one more per crash in that window."""
    store = DirectoryPodStatusStore(tmp_path)
    await store.upsert(make_status())
    await store.wait_idle()
    namespace = tmp_path / "status" / "apps"
    (namespace / ".status-k1ll3d.tmp").write_text("kind: SecretProviderClassPodStatus\n")
    (namespace / "notes.tmp").write_text("someone else's")

    loaded = await DirectoryPodStatusStore(tmp_path).load_all()

    assert [s.name for s in loaded] == ["web-0-apps-vault-db"]
    assert sorted(p.name for p in namespace.iterdir()) == ["notes.tmp", "web-0-apps-vault-db.yaml"]


async def test_load_all_on_a_fresh_directory_is_empty(tmp_path: Path) -> None:
    assert await DirectoryPodStatusStore(tmp_path / "new").load_all() == []


def test_implements_the_port(tmp_path: Path) -> None:
    store: PodStatusStore = DirectoryPodStatusStore(tmp_path)  # checked by mypy
    assert callable(store.upsert)


async def test_close_retries_a_write_that_failed_in_flight_at_stop(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Stop arriving while a batch is in its worker thread: a write that batch failed is tried
    once more (or logged as abandoned), never dropped without a word."""
    store = DirectoryPodStatusStore(tmp_path)
    entered, release = threading.Event(), threading.Event()
    real_replace = os.replace
    calls: list[str] = []

    def failing_once(src: str, dst: str) -> None:
        calls.append(dst)
        if len(calls) == 1:
            entered.set()
            release.wait(10)
            raise OSError(28, "No space left on device")
        real_replace(src, dst)

    monkeypatch.setattr(os, "replace", failing_once)
    await store.upsert(make_status())
    await until(entered.is_set)  # the write is in its worker thread, about to fail
    closing = asyncio.ensure_future(store.close())
    await asyncio.sleep(0)
    release.set()
    await closing
    assert [s.name for s in await store.load_all()] == ["web-0-apps-vault-db"]


async def test_a_delete_during_the_final_write_at_stop_waits_for_it(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The last try at close is a batch like any other: a delete of a status in it waits for
    it (and then removes the file) instead of spinning on a finished batch's event."""
    store = DirectoryPodStatusStore(tmp_path)
    await store.upsert(make_status())
    await store.wait_idle()  # one batch done: its event is set
    entered, release = hold_renames(monkeypatch)
    await store.upsert(make_status(mounted=False))
    closing = asyncio.ensure_future(store.close())  # before the writer's delay: close writes
    await until(entered.is_set)
    deleting = asyncio.ensure_future(store.delete("apps", "web-0-apps-vault-db"))
    spins = 0
    while not deleting.done() and spins < 3:
        await asyncio.sleep(0)
        spins += 1
    assert not deleting.done(), "the delete waits for the write in flight"
    threading.Timer(0.05, release.set).start()  # a spinning delete would never yield to us
    # A delete spinning on the loop can only be stopped from another thread: fail, not hang.
    watchdog = threading.Timer(10, _thread.interrupt_main)
    watchdog.start()
    try:
        await asyncio.wait_for(asyncio.gather(closing, deleting), 10)
    finally:
        watchdog.cancel()
    assert await store.load_all() == [], "the status never lands after its delete"


async def test_an_unexpected_error_in_a_write_is_retried_not_fatal_to_the_writer(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Anything a write raises (not only an OSError) is logged and retried: the writer task
    never dies with it, so later statuses are still written and close still returns."""
    pauses = Pauses()
    store = DirectoryPodStatusStore(tmp_path, backoff=BackoffPolicy(jitter=0.0), sleep=pauses)
    real_dumps = json.dumps
    broken = [True]

    def dumps(value: object) -> str:
        if broken[0]:
            raise ValueError("cannot encode")
        return real_dumps(value)

    monkeypatch.setattr(json, "dumps", dumps)
    with capture_logs() as logs:
        await store.upsert(make_status())
        await until(lambda: len(pauses.delays) == 1)
    assert any(e["event"] == "pod_status.write_retrying" for e in logs)
    broken[0] = False
    pauses.next.set()
    await store.wait_idle()
    await store.close()
    assert [s.name for s in await store.load_all()] == ["web-0-apps-vault-db"]
