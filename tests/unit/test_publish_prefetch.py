"""A first publish with a class held without I/O checks in the hop that mounts. A files-only
provider is asked first, then the mount-point check, the class re-read, the mount, the write and
the metadata save run in ONE worker-thread hop; any other provider (an upstream plugin) is asked
after a hop that checks and mounts. Whatever that check finds decides exactly as on the
step-by-step path, errors keep upstream's order, and no publish asks its provider twice."""

from __future__ import annotations

import asyncio
import dataclasses
import threading
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from agent.core import first_publish, publish_check, volume_content
from agent.errors import InvalidRequest, ProviderError
from agent.model import PodInfo, SecretProviderClass, VolumeContent, VolumeState
from agent.ports import Provider
from agent.providers.registry import ProviderRegistry
from agent.standalone.spc_source import DirectorySecretProviderClassSource
from tests.support.fake_provider import FakeProvider
from tests.unit.test_publish_core import CONTEXT, TARGET, make_with_table, request
from tests.unit.test_publish_one_hop import (
    BlockingJournal,
    FilesOnlyProvider,
    cancel_in_the_hop_after_its_mount,
)


class CachingJournal(BlockingJournal):
    """Every blocking form, and a class source that holds ``spc`` (``cached``) and re-reads it
    in any thread (``read_blocking``); ``edit`` swaps the class as a manifest edit would."""

    def __init__(self) -> None:
        super().__init__()
        self.spc = SecretProviderClass("app", "default", "fake", {"objects": "x"})
        self.held: SecretProviderClass | None = self.spc  # what ``cached`` answers
        self.inspection: VolumeState | None = None
        self.refuse: Exception | None = None
        self.edit_on_read: SecretProviderClass | None = None
        self.hop_threads: list[int] = []
        self.installed: list[object] = []

    async def get(self, namespace: str, name: str) -> SecretProviderClass:
        self.events.append("get")
        return self.spc

    def cached(self, namespace: str, name: str) -> SecretProviderClass | None:
        return self.held

    def inspect_blocking(self, target: str) -> VolumeState | None:
        self.hop_threads.append(threading.get_ident())
        self.events.append("inspect")
        if self.refuse is not None:
            raise self.refuse
        return self.inspection

    def read_blocking(self) -> object:
        self.events.append("read")
        if self.edit_on_read is not None:
            self.spc, self.edit_on_read = self.edit_on_read, None
        return self.spc

    async def get_read(self, read: object, namespace: str, name: str) -> SecretProviderClass:
        self.events.append("lookup")
        assert isinstance(read, SecretProviderClass)
        return read

    def install(self, read: object) -> None:
        self.installed.append(read)

    def read_holds(self, read: object, spc: SecretProviderClass) -> bool:
        return read == spc


class LabelledJournal(CachingJournal):
    """Records the provider label of each failed publish (``node_publish_error_total``)."""

    def publish_failed(self, provider: str, error_type: str, seconds: float) -> None:
        self.events.append(f"failed:{error_type}:{provider}")


class AskedProvider(FilesOnlyProvider):
    """Records each call in the journal's events, with the class's provider parameter."""

    def __init__(self, journal: CachingJournal) -> None:
        super().__init__()
        self.on_mount = lambda req: journal.events.append(f"fetch:{req.attributes['objects']}")


@pytest.fixture
def hops(monkeypatch: pytest.MonkeyPatch) -> list[str]:
    """The name of every worker-thread hop the publish core starts."""
    started: list[str] = []
    for module in (volume_content, publish_check, first_publish):
        original = module.run_blocking

        def counted(func: Callable[..., Any], *args: Any, _run: Any = original) -> Any:
            started.append(getattr(func, "__name__", "?"))
            return _run(func, *args)

        monkeypatch.setattr(module, "run_blocking", counted)
    return started


async def test_a_first_publish_asks_first_then_checks_mounts_and_writes_in_one_hop(
    hops: list[str],
) -> None:
    journal = CachingJournal()
    publish, table = make_with_table(journal, AskedProvider(journal))
    outcome = await publish(request())
    assert outcome.action == "mounted" and outcome.files == 2
    assert journal.events == [
        "fetch:x", "inspect", "read", "mount", "write", "metadata", "status", "ok"
    ]  # fmt: skip
    assert hops == ["_store_blocking"]
    assert len(set(journal.hop_threads) | journal.threads) == 1
    record = table.get(TARGET)
    assert record is not None and record.provider == "fake" and record.spc_name == "app"


async def test_a_class_edited_before_the_hop_is_asked_again_with_the_edit() -> None:
    journal = CachingJournal()
    provider = AskedProvider(journal)
    journal.edit_on_read = SecretProviderClass("app", "default", "fake", {"objects": "edited"})
    outcome = await make_with_table(journal, provider)[0](request())
    assert outcome.action == "mounted"
    assert journal.events == [
        "fetch:x", "inspect", "read",  # the hop found the class changed: nothing done
        "inspect", "read", "lookup", "fetch:edited", "mount", "write", "metadata", "status", "ok",
    ]  # fmt: skip


async def test_an_unfinished_volume_found_by_the_hop_is_completed_with_the_same_answer() -> None:
    """Killed between mount and write: the hop sees an empty mount and leaves it to the
    step-by-step path, which completes it with the answer already fetched (one provider call)."""
    journal = CachingJournal()
    provider = AskedProvider(journal)
    journal.mounted.add(TARGET)
    journal.inspection = VolumeState(VolumeContent.EMPTY, has_metadata=False)
    outcome = await make_with_table(journal, provider)[0](request())
    assert outcome.action == "mounted" and len(provider.requests) == 1
    assert "mount" not in journal.events and "write" in journal.events


async def test_a_volume_someone_else_filled_is_left_alone_and_not_asked_again() -> None:
    """Nor on kubelet's later republishes (each pod sync): they take the step-by-step path."""
    journal = CachingJournal()
    provider = AskedProvider(journal)
    journal.mounted.add(TARGET)
    journal.inspection = VolumeState(VolumeContent.FOREIGN, has_metadata=False)
    publish = make_with_table(journal, provider)[0]
    for _ in range(3):
        outcome = await publish(request())
        assert outcome.action == "already_mounted" and outcome.provider == ""
    assert len(provider.requests) == 1 and "write" not in journal.events


@pytest.mark.parametrize("denied", [False, True], ids=["refused-in-the-hop", "provider-failed"])
async def test_a_refused_target_is_checked_first_on_kubelets_retries(denied: bool) -> None:
    """Kubelet retries a refused publish with backoff; the refusal does not go away by itself,
    and upstream refuses before asking. Refused in the hop, or (the provider failed) on the
    step-by-step path: either way the provider is asked once."""
    journal = CachingJournal()
    provider = AskedProvider(journal)
    provider.error = ProviderError("denied") if denied else None
    journal.refuse = InvalidRequest("Target path holds files the agent did not write")
    publish = make_with_table(journal, provider)[0]
    for _ in range(3):
        with pytest.raises(InvalidRequest, match="did not write"):
            await publish(request())
    assert len(provider.requests) == 1
    journal.refuse = provider.error = None  # cleared: published, on the step-by-step path
    assert (await publish(request())).action == "mounted" and len(provider.requests) == 2


async def test_the_inspections_error_wins_over_the_providers(hops: list[str]) -> None:
    journal = CachingJournal()
    provider = AskedProvider(journal)
    provider.error = ProviderError("denied")
    journal.refuse = InvalidRequest("Target path holds files the agent did not write")
    with pytest.raises(InvalidRequest, match="did not write"):
        await make_with_table(journal, provider)[0](request())
    assert len(provider.requests) == 1 and not journal.mounted
    assert hops == ["_inspect_and_read"]


async def test_a_provider_error_is_raised_after_the_check_without_asking_twice() -> None:
    journal = CachingJournal()
    provider = AskedProvider(journal)
    provider.error = ProviderError("denied")
    with pytest.raises(ProviderError, match="denied"):
        await make_with_table(journal, provider)[0](request())
    assert journal.events == ["fetch:x", "inspect", "read", "lookup", "failed:GRPCProviderError"]
    assert not journal.mounted


async def test_a_provider_error_for_an_edited_class_asks_with_the_edit() -> None:
    journal = CachingJournal()
    provider = AskedProvider(journal)
    provider.error = ProviderError("denied")
    journal.edit_on_read = SecretProviderClass("app", "default", "fake", {"objects": "fixed"})
    provider.on_mount = lambda req: setattr(
        provider, "error", None if req.attributes["objects"] == "fixed" else provider.error
    )
    outcome = await make_with_table(journal, provider)[0](request())
    assert outcome.action == "mounted" and len(provider.requests) == 2


@pytest.mark.parametrize(
    ("setup", "why"),
    [
        (lambda j, p: setattr(j, "held", None), "class not held without I/O"),
        (lambda j, p: setattr(j, "held", SecretProviderClass("app", "default", "fake", {})),
         "a class check_class refuses"),
    ],
)  # fmt: skip
async def test_the_step_by_step_path_when_asking_first_is_not_safe(
    setup: Callable[[CachingJournal, FakeProvider], None], why: str, hops: list[str]
) -> None:
    journal = CachingJournal()
    provider = AskedProvider(journal)
    setup(journal, provider)
    outcome = await make_with_table(journal, provider)[0](request())
    assert outcome.action == "mounted", why
    assert hops[0] == "_inspect_and_read", why
    assert journal.events.index("inspect") < len(journal.events) - 1
    assert [e for e in journal.events if e.startswith("fetch")] == ["fetch:x"], why


class AskedPlugin(AskedProvider):
    files_only = False  # as an upstream plugin: it may write into the target itself


async def test_a_plugin_is_asked_after_one_hop_that_checks_and_mounts(hops: list[str]) -> None:
    journal = CachingJournal()
    outcome = await make_with_table(journal, AskedPlugin(journal))[0](request())
    assert outcome.action == "mounted"
    assert journal.events == [
        "inspect", "read", "mount", "fetch:x", "write", "metadata", "status", "ok"
    ]  # fmt: skip
    assert hops == ["check_and_mount", "_store_blocking"]


async def test_a_plugins_error_after_the_mount_unmounts() -> None:
    journal = CachingJournal()
    plugin = AskedPlugin(journal)
    plugin.error = ProviderError("denied")
    with pytest.raises(ProviderError, match="denied"):
        await make_with_table(journal, plugin)[0](request())
    assert journal.events == [
        "inspect",
        "read",
        "mount",
        "fetch:x",
        "unmount",
        "failed:GRPCProviderError",
    ]
    assert not journal.mounted


async def test_cancelled_while_a_plugin_is_asked_unmounts_what_the_hop_mounted() -> None:
    journal = CachingJournal()
    plugin = AskedPlugin(journal)
    plugin.gate = asyncio.Event()
    publish, table = make_with_table(journal, plugin)
    task = asyncio.create_task(publish(request()))
    while not plugin.requests:
        await asyncio.sleep(0.001)
    task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await task
    assert journal.events[-2:] == ["unmount", "failed:Cancelled"]
    assert table.get(TARGET) is None and not journal.mounted


async def test_a_plugin_is_never_asked_before_the_inspections_error() -> None:
    journal = CachingJournal()
    plugin = AskedPlugin(journal)
    journal.refuse = InvalidRequest("Target path holds files the agent did not write")
    with pytest.raises(InvalidRequest, match="did not write"):
        await make_with_table(journal, plugin)[0](request())
    assert not plugin.requests and not journal.mounted


async def test_a_plugin_whose_class_was_edited_takes_the_step_by_step_path() -> None:
    journal = CachingJournal()
    plugin = AskedPlugin(journal)
    journal.edit_on_read = SecretProviderClass("app", "default", "fake", {"objects": "edited"})
    outcome = await make_with_table(journal, plugin)[0](request())
    assert outcome.action == "mounted"
    assert journal.events == [
        "inspect", "read",  # the class changed: nothing mounted
        "inspect", "read", "lookup", "mount", "fetch:edited", "write", "metadata", "status", "ok",
    ]  # fmt: skip


async def test_a_request_that_is_not_readonly_is_refused_after_the_check() -> None:
    journal = CachingJournal()
    provider = AskedProvider(journal)
    publish = make_with_table(journal, provider)[0]
    with pytest.raises(InvalidRequest, match="Readonly"):
        await publish(request().__class__("v", TARGET, True, False, CONTEXT, {}))
    assert not provider.requests and journal.events[0] == "inspect"


async def test_cancelled_in_the_hop_after_its_mount_unmounts() -> None:
    journal = CachingJournal()
    await cancel_in_the_hop_after_its_mount(journal, AskedProvider(journal))
    assert journal.events[:2] == ["fetch:x", "inspect"]


async def test_cancelled_while_the_hop_finds_a_mounted_target_never_unmounts_it() -> None:
    """Nor is the provider named in the report: the step-by-step path would have been
    cancelled in its check, before the class lookup."""
    journal = LabelledJournal()
    journal.mounted.add(TARGET)
    journal.inspection = VolumeState(VolumeContent.FOREIGN, has_metadata=False)
    gate, reached = threading.Event(), threading.Event()
    inspect = journal.inspect_blocking

    def slow_inspect(target: str) -> VolumeState | None:
        reached.set()
        assert gate.wait(10)
        return inspect(target)

    journal.inspect_blocking = slow_inspect  # type: ignore[method-assign]
    task = asyncio.create_task(make_with_table(journal, AskedProvider(journal))[0](request()))
    await asyncio.to_thread(reached.wait, 10)
    task.cancel()
    gate.set()
    with pytest.raises(asyncio.CancelledError):
        await task
    assert "unmount" not in journal.events and TARGET in journal.mounted
    assert journal.events[-1] == "failed:Cancelled:"


SPC = """\
apiVersion: secrets-store.csi.x-k8s.io/v1
kind: SecretProviderClass
metadata: {{name: app, namespace: default}}
spec:
  provider: vault
  parameters: {{roleName: {role}}}
"""


async def test_the_standalone_source_holds_a_class_until_a_re_read_changes_it(
    tmp_path: Path,
) -> None:
    source = DirectorySecretProviderClassSource(tmp_path)
    assert source.cached("default", "app") is None, "nothing held before the first read"
    manifest = tmp_path / "app.yaml"
    manifest.write_text(SPC.format(role="a"))
    spc = await source.get("default", "app")
    assert source.cached("default", "app") is spc
    assert source.read_holds(source.read_blocking(), spc)
    (tmp_path / "unrelated.yaml").write_text("kind: ConfigMap\n")
    rebuilt = source.read_blocking()
    assert rebuilt.fresh.classes[("default", "app")] is not spc
    assert source.read_holds(rebuilt, spc), "rebuilt by the re-read, but equal"
    manifest.write_text(SPC.format(role="longer-b"))
    assert not source.read_holds(source.read_blocking(), spc)
    assert source.cached("default", "other") is None


@pytest.mark.parametrize(
    ("held", "kind"),
    [(True, AskedProvider), (True, AskedPlugin), (False, AskedProvider)],
    ids=["asked-first", "plugin-mounted-first", "step-by-step"],
)
async def test_an_inspection_error_is_reported_without_a_provider(
    held: bool, kind: type[AskedProvider]
) -> None:
    """Upstream checks the mount point before it reads the class, so a failed check counts
    with an empty provider label (and its pod event names none) on every path: the class the
    hop was given must not leak into the report."""
    journal = LabelledJournal()
    journal.held = journal.spc if held else None
    journal.refuse = InvalidRequest("Target path holds files the agent did not write")
    provider = kind(journal)
    with pytest.raises(InvalidRequest, match="did not write"):
        await make_with_table(journal, provider)[0](request())
    assert journal.events[-1] == "failed:FailedToMount:"
    assert len(provider.requests) == (held and provider.files_only)


async def test_cancelled_while_asking_first_names_the_provider() -> None:
    """Kubelet's deadline passing while the provider hangs is reported with its name, as when
    the step-by-step path asked it: the operator must see which provider hung."""
    journal = LabelledJournal()
    provider = AskedProvider(journal)
    provider.gate = asyncio.Event()
    task = asyncio.create_task(make_with_table(journal, provider)[0](request()))
    while not provider.in_flight:
        await asyncio.sleep(0)
    task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await task
    assert journal.events == ["fetch:x", "failed:Cancelled:fake"]


async def test_a_provider_that_fails_to_load_is_reported_after_the_check(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """A factory's own error (an entry point's bug, a missing optional dependency: not an
    AgentError) comes after the mount-point check, as on the step-by-step path."""

    def broken(self: ProviderRegistry, name: str) -> Provider:
        raise ModuleNotFoundError("No module named 'botocore'")

    monkeypatch.setattr(ProviderRegistry, "get", broken)
    journal = CachingJournal()
    journal.refuse = InvalidRequest("Target path holds files the agent did not write")
    with pytest.raises(InvalidRequest, match="did not write"):
        await make_with_table(journal, AskedProvider(journal))[0](request())
    journal.refuse = None
    with pytest.raises(ModuleNotFoundError):
        await make_with_table(journal, AskedProvider(journal))[0](request())
    assert journal.events.count("inspect") == 2 and not journal.mounted


async def test_a_class_rebuilt_equal_is_not_asked_again() -> None:
    """The hop finds the target mounted (killed before the write) and the step-by-step path
    looks the class up: rebuilt by a re-read (another manifest changed) or an informer update,
    but equal, so the answer asked first is written."""
    journal = CachingJournal()
    provider = AskedProvider(journal)
    journal.mounted.add(TARGET)
    journal.inspection = VolumeState(VolumeContent.EMPTY, has_metadata=False)
    journal.edit_on_read = dataclasses.replace(journal.spc)
    outcome = await make_with_table(journal, provider)[0](request())
    assert outcome.action == "mounted" and len(provider.requests) == 1


async def test_the_hops_re_read_is_installed_so_later_publishes_do_not_read_it_again(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """An unrelated manifest change found by a first publish's hop is installed on the loop:
    listeners hear of it, and the next publish's re-read finds nothing new to parse (without
    rotation nothing else re-reads the directory, so each publish would parse it all again)."""
    from agent.aio.locks import KeyedLock
    from agent.core.mount_table import MountTable
    from agent.core.publish import PublishPorts, PublishSettings, PublishVolume
    from agent.standalone import directory_reload

    manifest = SPC.replace("vault", "fake").replace("roleName: {role}", "objects: {role}")
    (tmp_path / "app.yaml").write_text(manifest.format(role="x"))
    source = DirectorySecretProviderClassSource(tmp_path)
    await source.get("default", "app")  # read at start, as the agent does before serving
    heard: list[str] = []

    class Listener:
        def class_changed(self, old: SecretProviderClass | None, new: SecretProviderClass) -> None:
            heard.append(new.name)

        def pod_changed(self, old: PodInfo | None, new: PodInfo) -> None:
            heard.append(f"pod {new.name}")  # never: standalone mode watches no pods

    source.listen(Listener())
    parsed: list[Path] = []
    load_file = directory_reload._load_file

    def counted(path: Path, *args: Any) -> None:
        parsed.append(path)
        load_file(path, *args)

    monkeypatch.setattr(directory_reload, "_load_file", counted)
    (tmp_path / "other.yaml").write_text(manifest.format(role="o").replace("app", "other"))
    journal = CachingJournal()
    registry = ProviderRegistry(
        timeout=5,
        version_key=b"k",
        factories={"fake": lambda _c: AskedProvider(journal)},
        load_entry_points=False,
    )
    ports = PublishPorts(source, registry, journal, journal, journal, journal, journal)
    publish = PublishVolume(ports, PublishSettings(node_name="n"), MountTable(), KeyedLock())
    assert (await publish(request())).action == "mounted"
    assert journal.events[:3] == ["fetch:x", "inspect", "mount"], "the one-hop path"
    assert heard == ["other"] and source.cached("default", "other") is not None
    parsed.clear()
    second = dataclasses.replace(
        request(),
        target_path=TARGET.replace("/pods/u/", "/pods/v/"),
        volume_context={**CONTEXT, "csi.storage.k8s.io/pod.uid": "v"},
    )
    assert (await publish(second)).action == "mounted"
    assert parsed == [], "the second publish parsed the manifests again"
