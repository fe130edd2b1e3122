"""The liveness check of a watch over HTTP/1.1 (``agent.k8s.watch_liveness``), against the fake
API over real HTTP, with the quiet limit scaled down (a "minute" is a few tenths of a second):
a watch stream that stops in the middle while its connection stays open is replaced within the
quiet limit and catches up on what it missed, whether new requests are answered (a proxy that
stopped forwarding) or not (a server that hangs: the watch is reported failing, then resumes);
while events flow nothing extra is asked; a quiet healthy watch costs one watch request per
quiet limit and nothing else; the version check after a long silence keeps its pace and still
finds an etcd restored from an older backup; and the warning of a broken watch says how it
broke."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator, Callable
from typing import Any

import pytest
from structlog.testing import capture_logs

from agent.aio.backoff import BackoffPolicy
from agent.k8s.api import ApiSettings, KubeApi
from agent.k8s.connection import load_configuration
from agent.k8s.informer import Informer
from agent.k8s.informer_settings import InformerSettings
from agent.k8s.pods import decode_pod
from agent.k8s.resources import PODS
from agent.k8s.watch_liveness import QuietLimit
from agent.model import PodInfo
from tests.fakes.kube_api import FakeKubeApi, pod
from tests.integration.k8s.test_informer import Recorder, running
from tests.support.kube_agent import eventually

QUIET = QuietLimit(seconds=0.3, jitter=0.25)  # a watch silent 0.3 to 0.375 s is checked
REQUEST_TIMEOUT = 0.3
SLACK = 0.5  # the loop's own delays on a shared 2-core machine


def _informer(
    api: KubeApi, recorder: Recorder, quiet: QuietLimit | None = QUIET, **settings: Any
) -> Informer[PodInfo]:
    tuned = InformerSettings(
        backoff=BackoffPolicy(initial=0.01, maximum=0.05), quiet=quiet, **settings
    )
    return Informer(
        "pods", api, PODS, decode_pod,
        selectors={"fieldSelector": "spec.nodeName=node-a"}, handler=recorder, settings=tuned,
    )  # fmt: skip


async def _client(kube: FakeKubeApi) -> KubeApi:
    client = KubeApi(ApiSettings(request_timeout=REQUEST_TIMEOUT))
    client.connect(await load_configuration(str(kube.kubeconfig_path)))
    return client


@contextlib.asynccontextmanager
async def watched(
    kube: FakeKubeApi, recorder: Recorder, **settings: Any
) -> AsyncIterator[Informer[PodInfo]]:
    """A pods informer (node-a) over a client with a short request timeout, synced with
    web-0 on its node and watching."""
    kube.store.put(pod("web-0"))
    client = await _client(kube)
    informer = _informer(client, recorder, **settings)
    try:
        async with running(informer, kube):
            yield informer
    finally:
        await client.close()


def _pod_requests(kube: FakeKubeApi, mark: int = 0) -> list[str]:
    return [
        f"{r.verb} {r.query['limit']}" if r.verb == "list" else r.verb
        for r in kube.requests.since(mark, resource="pods")
    ]


async def test_a_stream_a_proxy_stopped_forwarding_is_replaced_and_catches_up(
    kube_api: FakeKubeApi,
) -> None:
    """The old stream sends nothing more and its connection stays open (keepalive cannot
    tell); new requests are answered. The next watch, from the version reached, replays the
    deletion the old one never delivered: no failure, no relist."""
    recorder = Recorder()
    loop = asyncio.get_running_loop()
    async with watched(kube_api, recorder) as informer:
        version = informer._version
        mark = kube_api.requests.mark()
        assert kube_api.store.freeze_watches("pods") == 1
        kube_api.store.delete("pods", "default", "web-0")
        frozen_at = loop.time()
        await eventually(lambda: "delete web-0" in recorder.seen, "caught up", timeout=5)
        took = loop.time() - frozen_at
        assert took <= QUIET.seconds * (1 + QUIET.jitter) + SLACK, took
        assert _pod_requests(kube_api, mark) == ["watch"]
        assert kube_api.requests.since(mark)[0].query["resourceVersion"] == version
        assert informer.lists == 1 and informer.problem() == ""


async def test_a_hung_server_is_found_within_the_quiet_limit_and_the_request_timeout(
    kube_api: FakeKubeApi,
) -> None:
    """A server that hangs with its kernel still answering: the stream stops, new requests
    get no answer. The watch is reported failing (/readyz, one warning with
    ``reason=liveness``) within the quiet limit plus the request timeout, instead of the
    watch's read timeout (the server's timeoutSeconds plus 30 s); once the server answers
    again, the informer catches up on what happened meanwhile."""
    recorder = Recorder()
    loop = asyncio.get_running_loop()
    async with watched(kube_api, recorder) as informer:
        with capture_logs() as logs:
            hung = kube_api.faults.hold(times=None)  # every new request waits, unanswered
            kube_api.store.freeze_watches("pods")
            kube_api.store.delete("pods", "default", "web-0")
            frozen_at = loop.time()
            await eventually(lambda: informer.problem() != "", "reported failing", timeout=5)
            took = loop.time() - frozen_at
        assert took <= QUIET.seconds * (1 + QUIET.jitter) + REQUEST_TIMEOUT + SLACK, took
        assert informer.problem().startswith("watch failing, cache may be stale: heard nothing")
        retrying = [entry for entry in logs if entry["event"] == "informer.retrying"]
        assert retrying[0]["reason"] == "liveness", retrying
        assert retrying[0]["log_level"] == "warning"
        assert retrying[0]["error"].endswith(
            " s, then no answer: watch pods (spec.nodeName=node-a): timed out"
        )
        assert "delete web-0" not in recorder.seen
        kube_api.faults.remove(hung)
        hung.release()
        await eventually(lambda: "delete web-0" in recorder.seen, "caught up after", timeout=5)
        await eventually(lambda: informer.problem() == "", "watching again")


async def test_no_request_is_added_while_events_flow(kube_api: FakeKubeApi) -> None:
    """Each event restarts the count: a watch that hears one more often than the quiet limit
    is not replaced (here 12 events 0.1 s apart, four quiet limits in all); the check comes
    a quiet limit after the last one."""
    recorder = Recorder()
    loop = asyncio.get_running_loop()
    async with watched(kube_api, recorder) as informer:
        mark = kube_api.requests.mark()
        for generation in range(12):
            kube_api.store.patch(
                "pods", "default", "web-0", {"metadata": {"labels": {"n": str(generation)}}}
            )
            await asyncio.sleep(0.1)  # the pace of the events, not a wait for a result
        await eventually(lambda: informer._version == str(kube_api.store.resource_version), "all")
        last_event = loop.time() - 0.1
        assert _pod_requests(kube_api, mark) == []
        await eventually(lambda: _pod_requests(kube_api, mark) == ["watch"], "then the check")
        assert loop.time() - last_event >= QUIET.seconds


async def test_a_quiet_healthy_watch_costs_one_watch_request_per_quiet_limit(
    kube_api: FakeKubeApi,
) -> None:
    """Nobody writes pods: each check is one watch request from the same version, never a
    list, a pause or a readiness failure, and none comes before the quiet limit."""
    recorder = Recorder()
    pauses: list[float] = []
    loop = asyncio.get_running_loop()
    async with watched(kube_api, recorder) as informer:
        informer._sleep = lambda seconds: _noted(pauses, seconds)
        mark, started = kube_api.requests.mark(), loop.time()
        await eventually(lambda: len(_pod_requests(kube_api, mark)) == 4, "four checks")
        elapsed = loop.time() - started
        assert _pod_requests(kube_api, mark) == ["watch"] * 4
        assert elapsed >= 4 * QUIET.seconds, elapsed
        versions = {r.query["resourceVersion"] for r in kube_api.requests.since(mark)}
        assert versions == {informer._version}
        assert pauses == [] and informer.problem() == "" and informer.lists == 1
        assert recorder.seen == ["upsert web-0", "synced"]


async def _noted(pauses: list[float], seconds: float) -> None:
    pauses.append(seconds)
    await asyncio.sleep(seconds)


async def test_the_version_check_keeps_its_pace_and_still_finds_a_restored_etcd(
    kube_api: FakeKubeApi,
) -> None:
    """The one-item "not older than" list follows a silence as long as the server's shortest
    timeout (1 s here), not every replaced watch (0.3 s); and it still finds etcd restored from
    an older backup, whose watches are accepted and stay silent."""
    recorder = Recorder()
    async with watched(kube_api, recorder, watch_timeout=(1, 1)) as informer:
        mark = kube_api.requests.mark()
        await eventually(lambda: _pod_requests(kube_api, mark).count("list 1") == 2, "checks")
        sent = _pod_requests(kube_api, mark)
        assert sent.count("watch") >= 4, sent  # two seconds of silence: about six watches
        backup = kube_api.store.backup()
        kube_api.store.put(pod("web-1"))
        await eventually(lambda: "upsert web-1" in recorder.seen, "the pod made after it")
        kube_api.store.restore(backup)
        await eventually(lambda: "delete web-1" in recorder.seen, "relisted", timeout=5)
        assert informer.lists == 2


@pytest.mark.parametrize(
    ("break_it", "reason", "says"),
    [
        (
            lambda kube: kube.store.drop_watches("pods", reset=True),
            "reset",
            "watch pods (spec.nodeName=node-a): the API server reset the connection",
        ),
        (
            lambda kube: kube.faults.stall_watch(resource="pods"),  # the watch after this one
            "read_timeout",
            "watch pods (spec.nodeName=node-a): nothing received within the read timeout",
        ),
    ],
    ids=["reset", "read-timeout"],
)
async def test_the_warning_says_how_a_watch_broke(
    kube_api: FakeKubeApi, break_it: Callable[[FakeKubeApi], object], reason: str, says: str
) -> None:
    """A reset stream, or one that hangs until the read timeout (the liveness check off):
    ``informer.retrying`` says which, with ``reason`` as a field of its own (keepalive's
    verdict: ``test_dead_connection``)."""
    recorder = Recorder()
    settings = {"watch_timeout": (1, 1), "read_margin": 0.3}
    async with watched(kube_api, recorder, quiet=None, **settings):
        with capture_logs() as logs:
            break_it(kube_api)
            await eventually(lambda: any(e["event"] == "informer.retrying" for e in logs), "")
        line = next(entry for entry in logs if entry["event"] == "informer.retrying")
        assert (line["log_level"], line["reason"], line["error"]) == ("warning", reason, says)
