"""The mount-point check and the class re-read of a first publish in ONE worker-thread hop
(``agent.core.publish_check``), the inspection's error first; and the standalone class source's
split read never installs an older read over a newer one."""

from __future__ import annotations

import threading
from pathlib import Path

import pytest

from agent.core.publish_check import CheckFirst
from agent.errors import InvalidRequest, SecretProviderClassNotFound
from agent.model import SecretProviderClass, VolumeState
from agent.standalone.spc_source import DirectorySecretProviderClassSource
from tests.support.fake_provider import FakeProvider
from tests.unit.test_publish_core import Journal, make, request


class BlockingCheckJournal(Journal):
    """The Journal with ``inspect_blocking`` and a split class read; each records its thread."""

    def __init__(self) -> None:
        super().__init__()
        self.threads: dict[str, int] = {}
        self.refuse: Exception | None = None

    def inspect_blocking(self, target: str) -> VolumeState | None:
        self.threads["inspect"] = threading.get_ident()
        self.events.append("inspect")
        if self.refuse is not None:
            raise self.refuse
        return None

    def read_blocking(self) -> object:
        self.threads["read"] = threading.get_ident()
        self.events.append("read")
        return "the read"

    async def get_read(self, read: object, namespace: str, name: str) -> SecretProviderClass:
        assert read == "the read"
        self.events.append("lookup")
        return await self.get(namespace, name)

    def read_holds(self, read: object, spc: SecretProviderClass) -> bool:
        return False

    def install(self, read: object) -> None:
        raise AssertionError("the step-by-step path installs through get_read")


async def test_the_check_and_the_class_read_share_one_worker_thread_hop() -> None:
    journal = BlockingCheckJournal()
    outcome = await make(journal, FakeProvider())(request())
    assert outcome.action == "mounted"
    assert journal.events[:3] == ["inspect", "read", "lookup"]
    assert journal.threads["inspect"] == journal.threads["read"] != threading.get_ident()


async def test_the_inspections_error_comes_before_the_classes() -> None:
    journal = BlockingCheckJournal()
    journal.refuse = InvalidRequest("Target path holds files the agent did not write")
    journal.spc_missing = True
    with pytest.raises(InvalidRequest, match="did not write"):
        await make(journal, FakeProvider())(request())
    assert "read" not in journal.events, "no class read for a publish that already failed"


async def test_a_missing_class_is_reported_after_the_check() -> None:
    journal = BlockingCheckJournal()
    journal.spc_missing = True
    with pytest.raises(SecretProviderClassNotFound):
        await make(journal, FakeProvider())(request())
    assert journal.events[:3] == ["inspect", "read", "lookup"]
    assert "mount" not in journal.events


SPC = """\
apiVersion: secrets-store.csi.x-k8s.io/v1
kind: SecretProviderClass
metadata: {{name: app, namespace: default}}
spec:
  provider: {provider}
"""


async def test_an_older_read_never_replaces_a_newer_one(tmp_path: Path) -> None:
    source = DirectorySecretProviderClassSource(tmp_path)
    manifest = tmp_path / "app.yaml"
    manifest.write_text(SPC.format(provider="old"))
    stale = source.read_blocking()  # a publish's check hop read the directory...
    manifest.write_text(SPC.format(provider="newer-and-longer"))
    assert (await source.get("default", "app")).provider == "newer-and-longer"  # ...then this
    # The first read is installed only if nothing was since: here it reads again.
    assert (await source.get_read(stale, "default", "app")).provider == "newer-and-longer"
    assert (await source.get("default", "app")).provider == "newer-and-longer"


async def test_a_read_is_installed_and_answers_the_lookup(tmp_path: Path) -> None:
    source = DirectorySecretProviderClassSource(tmp_path)
    (tmp_path / "app.yaml").write_text(SPC.format(provider="vault"))
    read = source.read_blocking()
    assert (await source.get_read(read, "default", "app")).provider == "vault"
    with pytest.raises(SecretProviderClassNotFound):
        await source.get_read(source.read_blocking(), "default", "other")


def test_targets_to_check_first_are_bounded_oldest_first() -> None:
    kept = CheckFirst(limit=2)
    for target in ("/a", "/b", "/a", "/c"):
        kept.add(target)
    assert "/a" in kept and "/c" in kept and "/b" not in kept
