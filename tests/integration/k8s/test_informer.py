"""The list+watch building block against the fake API over HTTP: bookmarks move the resume
point (so a compaction after a bookmark needs no relist), 410 Gone relists and reports what
changed, an etcd restored from an older backup is found and relisted, a quiet watch lasts
until the server ends it, watches never answered or hung reconnect, a server that fails every
watch at once gets a growing delay (not a relist storm), and readiness says why while it is
down."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass, field

import pytest
from structlog.testing import capture_logs

from agent.aio.backoff import BackoffPolicy
from agent.k8s.api import ApiSettings, KubeApi
from agent.k8s.connection import load_configuration
from agent.k8s.informer import Informer
from agent.k8s.informer_cache import Key
from agent.k8s.informer_settings import InformerSettings
from agent.k8s.pods import decode_pod
from agent.k8s.resources import PODS
from agent.model import PodInfo
from tests.fakes.kube_api import FakeKubeApi, pod
from tests.support.kube_agent import eventually


@dataclass
class Recorder:
    seen: list[str] = field(default_factory=list)

    def on_upsert(self, key: Key, old: PodInfo | None, new: PodInfo) -> None:
        self.seen.append(f"upsert {key[1]}")

    def on_delete(self, key: Key, old: PodInfo) -> None:
        self.seen.append(f"delete {key[1]}")

    def on_synced(self) -> None:
        self.seen.append("synced")


@contextlib.asynccontextmanager
async def running(informer: Informer[PodInfo], kube: FakeKubeApi) -> AsyncIterator[None]:
    task = asyncio.create_task(informer.run())
    try:
        await informer.wait_synced()
        await kube.store.wait_for_watchers("pods")
        yield
    finally:
        task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await task


def _informer(api: KubeApi, recorder: Recorder, **settings: object) -> Informer[PodInfo]:
    tuned = InformerSettings(backoff=BackoffPolicy(initial=0.01, maximum=0.05), **settings)  # type: ignore[arg-type]
    return Informer(
        "pods", api, PODS, decode_pod,
        selectors={"fieldSelector": "spec.nodeName=node-a"}, handler=recorder, settings=tuned,
    )  # fmt: skip


async def test_watch_follows_bookmarks_so_compaction_needs_no_relist(
    kube_api: FakeKubeApi, api: KubeApi
) -> None:
    recorder = Recorder()
    informer = _informer(api, recorder)
    kube_api.store.put(pod("web-0"))
    kube_api.store.put(pod("elsewhere", node="node-b"))  # filtered out by the field selector
    async with running(informer, kube_api):
        assert recorder.seen == ["upsert web-0", "synced"]
        kube_api.store.put(pod("other", namespace="kube-system", node="node-b"))  # not ours
        kube_api.store.bookmark()
        await eventually(
            lambda: informer._version == str(kube_api.store.resource_version), "bookmark seen"
        )
        kube_api.store.compact()
        kube_api.store.drop_watches("pods")
        kube_api.store.put(pod("web-1"))
        await eventually(lambda: "upsert web-1" in recorder.seen, "the new pod")
        assert informer.lists == 1


async def test_gone_relists_and_reports_the_difference(kube_api: FakeKubeApi, api: KubeApi) -> None:
    recorder = Recorder()
    informer = _informer(api, recorder)
    kube_api.store.put(pod("web-0"))
    kube_api.store.put(pod("web-1"))
    async with running(informer, kube_api):
        kube_api.faults.fail(503, verb="watch", resource="pods", times=None)
        kube_api.store.drop_watches("pods", reset=True)
        await eventually(lambda: informer.problem().startswith("watch failing"), "not ready")
        kube_api.store.delete("pods", "default", "web-0")
        kube_api.store.put(pod("web-2"))
        kube_api.store.compact()
        kube_api.faults.clear()
        await eventually(lambda: informer.lists == 2 and informer.problem() == "", "relisted")
        assert recorder.seen[-3:] == ["delete web-0", "upsert web-2", "synced"]
        assert sorted(name for _, name in informer.items) == ["web-1", "web-2"]


async def test_a_relist_after_progress_logs_the_reason_code(
    kube_api: FakeKubeApi, api: KubeApi
) -> None:
    """``informer.relist`` names its cause with the same ``reason`` codes as
    ``informer.retrying`` (docs/operations.md), the server's text in ``error``."""
    recorder = Recorder()
    informer = _informer(api, recorder)
    kube_api.store.put(pod("web-0"))
    with capture_logs() as logs:
        async with running(informer, kube_api):
            kube_api.store.put(pod("web-1"))
            await eventually(lambda: "upsert web-1" in recorder.seen, "the watch progressed")
            expired = {
                "kind": "Status",
                "apiVersion": "v1",
                "status": "Failure",
                "message": "too old resource version: 1 (2)",
                "reason": "Expired",
                "code": 410,
            }
            for subscription in kube_api.store.raw.subscriptions():
                subscription.error(expired)  # mid-stream, after the event: a relist at once
            await eventually(lambda: informer.lists == 2, "relisted")
    relists = [entry for entry in logs if entry["event"] == "informer.relist"]
    assert relists, "no relist line"
    assert relists[0]["reason"] == "gone"
    assert relists[0]["error"]


@pytest.fixture
async def impatient_api(kube_api: FakeKubeApi) -> AsyncIterator[KubeApi]:
    client = KubeApi(ApiSettings(request_timeout=0.3))
    client.connect(await load_configuration(str(kube_api.kubeconfig_path)))
    yield client
    await client.close()


async def test_a_watch_the_server_never_answers_is_given_up_and_resumed(
    kube_api: FakeKubeApi, impatient_api: KubeApi
) -> None:
    """The apiserver answers a watch at once; one with no answer within the request timeout
    is given up, however long the watch itself may stay quiet."""
    recorder = Recorder()
    informer = _informer(impatient_api, recorder)
    async with running(informer, kube_api):
        hold = kube_api.faults.hold(verb="watch", resource="pods", times=1)
        kube_api.store.drop_watches("pods")
        await hold.wait_held()  # the next watch hangs without a byte
        kube_api.store.put(pod("web-0"))
        await eventually(lambda: "upsert web-0" in recorder.seen, "resumed after the timeout")
        hold.release()
        assert informer.lists == 1


async def test_a_watch_stream_that_hangs_is_given_up_after_the_servers_timeout(
    kube_api: FakeKubeApi, api: KubeApi
) -> None:
    """A server that hangs mid-stream (its kernel still answers, so TCP keepalive cannot tell):
    nothing arrives, not even the end at ``timeoutSeconds``; the client gives up that long
    plus its margin after the last byte, and resumes."""
    recorder = Recorder()
    informer = _informer(api, recorder, watch_timeout=(1, 1), read_margin=0.3)
    async with running(informer, kube_api):
        kube_api.faults.stall_watch(resource="pods", times=1)
        kube_api.store.drop_watches("pods")
        await kube_api.store.wait_for_watchers("pods")  # the stalled one
        kube_api.store.put(pod("web-0"))
        await eventually(lambda: "upsert web-0" in recorder.seen, "resumed after 1.3 s")
        assert informer.lists == 1


@pytest.mark.parametrize(
    "kube_api_options", [{"bookmark_interval": 0.2, "bookmark_before_end": 0.05}]
)
async def test_a_quiet_watch_runs_until_the_server_ends_it(
    kube_api: FakeKubeApi, api: KubeApi
) -> None:
    """The apiserver's bookmark cadence, scaled (a "minute" is 0.2 s, the watch's timeout
    2 s): a resource nobody writes gets no bookmark, so a healthy watch hears nothing for
    its whole timeout. It is not torn down for that (no failure, no list until the server
    ends it; the liveness check, off here, replaces it with an equal one: test_watch_liveness),
    and costs one one-item version check then. Once anything moves the resource's watch cache
    (a pod on another node), bookmarks keep the watch heard and that check is not needed."""
    pauses: list[float] = []

    async def sleep(seconds: float) -> None:
        pauses.append(seconds)
        await asyncio.sleep(seconds)

    tuned = InformerSettings(
        backoff=BackoffPolicy(initial=0.01, maximum=0.05),
        watch_timeout=(2, 2),
        read_margin=0.5,
        quiet=None,
    )
    informer = Informer(
        "pods", api, PODS, decode_pod, selectors={"fieldSelector": "spec.nodeName=node-a"},
        handler=Recorder(), settings=tuned, sleep=sleep,
    )  # fmt: skip
    kube_api.store.put(pod("web-0"))
    loop = asyncio.get_running_loop()
    async with running(informer, kube_api):
        opened = loop.time()
        await eventually(lambda: _watches(kube_api) == 2, "the server's end", timeout=5)
        assert loop.time() - opened >= 1.8
        assert pauses == [] and informer.problem() == ""
        assert _pod_requests(kube_api) == ["list 500", "watch", "list 1", "watch"]

        kube_api.store.put(pod("elsewhere", node="node-b"))  # moves the pods' watch cache
        await eventually(lambda: _watches(kube_api) == 3, "the next end", timeout=5)
        assert _pod_requests(kube_api)[4:] == ["watch"]  # heard bookmarks: no version check
        assert informer._version == str(kube_api.store.resource_version)
        assert pauses == [] and informer.lists == 1


def _watches(kube: FakeKubeApi) -> int:
    return kube.requests.count(resource="pods", verb="watch")


def _pod_requests(kube: FakeKubeApi) -> list[str]:
    return [
        f"{r.verb} {r.query['limit']}" if r.verb == "list" else r.verb
        for r in kube.requests.filter(resource="pods")
    ]


class LongWatches:
    """An injected clock on which every watch lasts 10 minutes (the server's timeout): no
    watch counts as ended "at once", whatever the wall clock says."""

    def __init__(self) -> None:
        self.now = 0.0

    def __call__(self) -> float:
        self.now += 600.0
        return self.now


def _restore_watcher(
    api: KubeApi, recorder: Recorder, problems: list[str], **settings: object
) -> Informer[PodInfo]:
    """An informer that notes what readiness said at each pause (``problems``)."""

    async def sleep(seconds: float) -> None:
        problems.append(informer.problem())
        await asyncio.sleep(0)

    tuned = InformerSettings(backoff=BackoffPolicy(initial=0.01, maximum=0.05), **settings)  # type: ignore[arg-type]
    informer = Informer(
        "pods", api, PODS, decode_pod, selectors={"fieldSelector": "spec.nodeName=node-a"},
        handler=recorder, settings=tuned, clock=LongWatches(), sleep=sleep,
    )  # fmt: skip
    return informer


def _phases(informer: Informer[PodInfo]) -> dict[str, str]:
    return {name: info.phase for (_, name), info in informer.items.items()}


async def test_an_etcd_restore_is_found_by_a_version_check_and_relisted(
    kube_api: FakeKubeApi, api: KubeApi
) -> None:
    """etcd restored from an older backup: the watch resumed from the informer's version is
    accepted and stays silent (the watch cache's rule); when the server ends it, the check of
    that version gets 504 Too large, and the relist puts the restored store in the cache."""
    recorder = Recorder()
    problems: list[str] = []
    informer = _restore_watcher(api, recorder, problems)
    kube_api.store.put(pod("web-0"))
    kube_api.store.put(pod("web-1"))
    async with running(informer, kube_api):
        backup = kube_api.store.backup()
        kube_api.store.patch("pods", "default", "web-0", {"status": {"phase": "Failed"}})
        kube_api.store.delete("pods", "default", "web-1")
        kube_api.store.put(pod("web-2"))
        await eventually(lambda: "upsert web-2" in recorder.seen, "the changes after the backup")
        recorder.seen.clear()
        kube_api.store.restore(backup)
        await kube_api.store.wait_for_watchers("pods")  # resumed from a version not reached
        kube_api.store.drop_watches("pods")  # the server's timeout ends the silent watch
        await eventually(lambda: informer.lists == 2 and informer.problem() == "", "relisted")
        assert sorted(recorder.seen) == ["delete web-2", "synced", "upsert web-0", "upsert web-1"]
        assert _phases(informer) == {"web-0": "Running", "web-1": "Running"}
        assert any("504 Timeout: Timeout: Too large resource version" in p for p in problems)
        kube_api.store.put(pod("web-3"))  # numbered below every version seen before the restore
        await eventually(lambda: "upsert web-3" in recorder.seen, "watching the restored store")


async def test_a_pod_gone_from_the_restored_store_is_reported_deleted_when_the_watch_ends(
    kube_api: FakeKubeApi, api: KubeApi
) -> None:
    """The usual way it happens: the silent watch runs until the server's ``timeoutSeconds``
    ends it; the version check finds the store behind, and the relist tells the handler (pod
    cleanup, in the agent) the pod is gone."""
    recorder = Recorder()
    problems: list[str] = []
    informer = _restore_watcher(api, recorder, problems, watch_timeout=(1, 1))
    kube_api.store.put(pod("web-0"))
    async with running(informer, kube_api):
        backup = kube_api.store.backup()
        kube_api.store.put(pod("web-1"))
        await eventually(lambda: "upsert web-1" in recorder.seen, "the pod made after it")
        kube_api.store.restore(backup)
        await eventually(lambda: "delete web-1" in recorder.seen, "the restored store relisted")
        assert set(informer.items) == {("default", "web-0")}
        await eventually(lambda: informer.problem() == "", "watching again")
        checks = [
            r.status
            for r in kube_api.requests.filter(resource="pods", verb="list")
            if r.query.get("resourceVersionMatch") == "NotOlderThan"
        ]
        assert 504 in checks


class ParkingSleep:
    """An injected ``sleep``: records each delay, returns at once, and parks the caller for
    good at the ``park_at``-th call (so the test reads a finished, bounded history)."""

    def __init__(self, park_at: int = 3) -> None:
        self.delays: list[float] = []
        self._park_at = park_at

    async def __call__(self, seconds: float) -> None:
        self.delays.append(seconds)
        if len(self.delays) >= self._park_at:
            await asyncio.Event().wait()


@pytest.mark.parametrize(
    ("fault", "relists"),
    [
        (lambda kube: kube.faults.fail(410, verb="watch", resource="pods", times=None), True),
        (lambda kube: kube.faults.fail(410, verb="list", resource="pods", times=None), True),
        (lambda kube: kube.faults.drop_watch(resource="pods", times=None), False),
    ],
    ids=["watch-gone", "list-gone", "watch-ends-at-once"],
)
async def test_a_server_failing_every_watch_at_once_gets_a_growing_delay_not_a_storm(
    kube_api: FakeKubeApi, api: KubeApi, fault: Callable[[FakeKubeApi], object], relists: bool
) -> None:
    fault(kube_api)
    sleep = ParkingSleep()
    informer = Informer(
        "pods", api, PODS, decode_pod,
        settings=InformerSettings(backoff=BackoffPolicy(initial=1.0, maximum=60.0, jitter=0.0)),
        sleep=sleep,
    )  # fmt: skip
    task = asyncio.create_task(informer.run())
    try:
        await eventually(lambda: len(sleep.delays) == 3, "three pauses")
        assert sleep.delays == [1.0, 2.0, 4.0]  # grows: no success reset it
        sent = kube_api.requests.filter(resource="pods")
        assert len(sent) <= 6  # one list or watch per pause, plus the one before it
        assert informer.problem() != ""
        assert sum(r.verb == "list" for r in sent) == (3 if relists else 1)
    finally:
        task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await task


def _decode_unless_broken(document: dict[str, object]) -> PodInfo | None:
    """decode_pod, failing (as a decoder bug would) for pods labelled ``broken``."""
    labels = (document.get("metadata") or {}).get("labels") or {}  # type: ignore[attr-defined]
    if "broken" in labels:
        raise ValueError("cannot decode this version")
    return decode_pod(document)


async def test_an_update_that_does_not_decode_keeps_the_object_instead_of_deleting_it(
    kube_api: FakeKubeApi, api: KubeApi
) -> None:
    recorder = Recorder()
    informer = Informer(
        "pods", api, PODS, _decode_unless_broken, handler=recorder,
        settings=InformerSettings(backoff=BackoffPolicy(initial=0.01, maximum=0.05)),
    )  # fmt: skip
    kube_api.store.put(pod("web-0"))
    async with running(informer, kube_api):
        kube_api.store.patch("pods", "default", "web-0", {"metadata": {"labels": {"broken": "1"}}})
        kube_api.store.put(pod("web-1"))  # the event after it, so the broken one was seen
        await eventually(lambda: "upsert web-1" in recorder.seen, "the next event")
        kube_api.faults.fail(410, verb="watch", resource="pods", times=1)
        kube_api.store.drop_watches("pods")  # the next watch gets 410: a relist lists it broken
        await eventually(lambda: informer.lists == 2, "relisted")
        assert informer.get("default", "web-0") is not None
        assert "delete web-0" not in recorder.seen
        kube_api.store.delete("pods", "default", "web-0")
        await eventually(lambda: "delete web-0" in recorder.seen, "a real deletion still counts")


GARBAGE = pytest.mark.parametrize(
    ("body", "why"),
    [
        (b"{}", "the answer is not a list (no items and metadata)"),
        (b'{"kind": "PodList", "metadata": {}, "items": {"web-0": {}}}', "not a list"),
        (b"[]", "the answer is not a JSON object"),
        (b"<html>502 Bad Gateway</html>", "the answer is not JSON"),
    ],
    ids=["empty-object", "items-not-a-list", "array", "html"],
)


@GARBAGE
async def test_a_garbage_list_answer_is_an_error_never_an_empty_cache(
    kube_api: FakeKubeApi, api: KubeApi, body: bytes, why: str
) -> None:
    recorder = Recorder()
    informer = _informer(api, recorder)
    kube_api.store.put(pod("web-0"))
    async with running(informer, kube_api):
        garbage = kube_api.faults.answer(body, verb="list", resource="pods", times=1)
        kube_api.faults.fail(410, verb="watch", resource="pods", times=1)
        kube_api.store.drop_watches("pods")  # 410 on the next watch: relist, into the garbage
        await eventually(lambda: garbage.hits == 1, "the garbage answer")
        await eventually(lambda: informer.lists == 2, "relisted once the answer is sane")
        assert "delete web-0" not in recorder.seen
        assert informer.get("default", "web-0") is not None


@GARBAGE
async def test_readiness_names_a_garbage_list_answer(
    kube_api: FakeKubeApi, api: KubeApi, body: bytes, why: str
) -> None:
    sleep = ParkingSleep(park_at=1)
    informer = Informer(
        "pods", api, PODS, decode_pod, selectors={"fieldSelector": "spec.nodeName=node-a"},
        sleep=sleep,
    )  # fmt: skip
    kube_api.faults.answer(body, verb="list", resource="pods", times=None)
    task = asyncio.create_task(informer.run())
    try:
        await eventually(lambda: len(sleep.delays) == 1, "paused after the garbage")
        assert informer.problem().startswith("not synced yet: list pods (spec.nodeName=node-a): ")
        assert why in informer.problem()
    finally:
        task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await task


async def test_the_first_list_by_field_is_read_from_the_watch_cache_a_relist_is_not(
    kube_api: FakeKubeApi, api: KubeApi
) -> None:
    """A list of one node's pods from etcd reads every pod in the cluster (etcd cannot filter
    by field): the first list asks for any version (served by the watch cache, as client-go's
    reflector asks); a relist after 410 Gone reads the current state."""
    recorder = Recorder()
    informer = _informer(api, recorder)
    kube_api.store.put(pod("web-0"))
    async with running(informer, kube_api):
        kube_api.faults.fail(503, verb="watch", resource="pods", times=None)
        kube_api.store.drop_watches("pods", reset=True)
        await eventually(lambda: informer.problem().startswith("watch failing"), "not ready")
        kube_api.store.put(pod("web-1"))
        kube_api.store.compact()  # the watch's version is gone: 410, a relist
        kube_api.faults.clear()
        await eventually(lambda: informer.lists == 2, "relisted")
    first, relist = kube_api.requests.filter(verb="list", resource="pods")
    assert first.query.get("resourceVersion") == "0"
    assert "resourceVersion" not in relist.query
