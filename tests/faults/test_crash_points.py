"""Every kill point of publish, rotation and unpublish heals on kubelet's retry.

Each test starts the agent (``tests.support.instant_agent``: the real agent plus an in-process
provider) with ``SECRETS_STORE_AGENT_CRASH_AT`` naming one step (``agent.crashpoints``), drives it
as kubelet would until it dies of SIGKILL exactly there, checks the node holds what that step
leaves, restarts the agent, replays what kubelet does next (the same NodePublishVolume until it
succeeds, or NodeUnpublishVolume when the pod is gone; with rotation on, the periodic republish
that hands the scheduler the volume's tokens again), and checks the end state every time:
mounted means the complete content, its metadata and a status; unpublished means no mount, no
directory and no status. No sleeps: the kill happens at a step, not at a time.
"""

from __future__ import annotations

import asyncio
import json
import os
import signal
import time
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import grpc
import pytest

from agent.crashpoints import ENVIRONMENT_VARIABLE
from agent.fs.layout import DATA_DIR, METADATA_FILE, is_ts_dir_name
from tests.e2e.conftest import AgentProcess, Agents
from tests.support.instant_agent import content
from tests.support.kubelet import Kubelet, publish_request
from tests.support.mounts import mounts_under
from tests.support.volume_files import read_visible_files

SPC = "crash"
SPC_YAML = """\
apiVersion: secrets-store.csi.x-k8s.io/v1
kind: SecretProviderClass
metadata: {{name: crash, namespace: default}}
spec:
  provider: instant
  parameters: {{objectCount: "{count}", objectSize: "{size}", revision: "{revision}"}}
"""
POD_UID = "f0f0f0f0-1111-4222-8333-444444444444"
KILL_TIMEOUT_S = 30.0
ROTATION_INTERVAL = "50ms"  # the scheduler's pace; a test waits for what it does, never for time


@dataclass(frozen=True)
class Seen:
    """What is on the node right after the kill (to prove the kill hit the intended step)."""

    directory: bool
    mounted: bool
    data_link: bool
    ts_dirs: int
    visible_links: int
    dangling: int
    metadata: bool
    status: bool


class Node:
    """One pod's volume on one node, and the agent processes that serve it."""

    def __init__(
        self, agents: Agents, *, count: int = 3, size: int = 64, rotation: bool = False
    ) -> None:
        self.agents, self.count, self.size, self.rotation = agents, count, size, rotation
        self.revision = "1"
        self.target = Path()
        self.write_spc()

    def write_spc(self, revision: str = "1") -> None:
        self.revision = revision
        text = SPC_YAML.format(count=self.count, size=self.size, revision=revision)
        (self.agents.root / f"{SPC}.yaml").write_text(text, encoding="utf-8")

    def start(self, crash_at: str = "") -> AgentProcess:
        flags = ["--tmpfs-size=64Mi"]
        if self.rotation:
            flags += ["--enable-secret-rotation", f"--rotation-poll-interval={ROTATION_INTERVAL}"]
        env = {**os.environ, ENVIRONMENT_VARIABLE: crash_at} if crash_at else None
        agent = self.agents.start(*flags, module="tests.support.instant_agent", env=env)
        self.target = agent.target(POD_UID)
        return agent

    @asynccontextmanager
    async def kubelet(self, agent: AgentProcess) -> AsyncIterator[Kubelet]:
        kubelet = Kubelet(str(agent.socket))
        try:
            yield kubelet
        finally:
            await kubelet.close()

    async def publish(self, agent: AgentProcess) -> None:
        async with self.kubelet(agent) as kubelet:
            await kubelet.publish(self.request())

    async def unpublish(self, agent: AgentProcess) -> None:
        async with self.kubelet(agent) as kubelet:
            await kubelet.unpublish("csi-crash", str(self.target))

    def request(self) -> Any:
        return publish_request(str(self.target), spc=SPC, uid=POD_UID, volume_id="csi-crash")

    async def killed_during(
        self, agent: AgentProcess, call: str, *, may_answer: bool = False
    ) -> Seen:
        """Make the call that reaches the crash point; the agent must die of SIGKILL there.
        ``may_answer``: the point comes behind the reply (the status file), so the call may
        succeed before the kill."""
        try:
            await (self.publish(agent) if call == "publish" else self.unpublish(agent))
        except grpc.aio.AioRpcError:
            pass
        else:
            assert may_answer, "the call answered: it never reached its crash point"
        return self.killed(agent)

    def killed(self, agent: AgentProcess) -> Seen:
        """The agent dies of SIGKILL at its crash point (reached by a call or by the scheduler)."""
        assert agent.process is not None
        code = agent.process.wait(timeout=KILL_TIMEOUT_S)
        assert code == -signal.SIGKILL, f"agent exited with {code}:\n{agent.output()}"
        return self.seen()

    def seen(self) -> Seen:
        target, entries = self.target, []
        if target.is_dir():
            entries = os.listdir(target)
        links = [n for n in entries if not n.startswith("..") and (target / n).is_symlink()]
        return Seen(
            directory=target.is_dir(),
            mounted=mounts_under(str(target)) == [str(target)],
            data_link=(target / DATA_DIR).is_symlink(),
            ts_dirs=sum(1 for n in entries if is_ts_dir_name(n)),
            visible_links=len(links),
            dangling=sum(1 for n in links if not (target / n).exists()),
            metadata=(target / METADATA_FILE).exists(),
            status=bool(self.statuses()),
        )

    def statuses(self) -> list[dict[str, Any]]:
        found = []
        for path in sorted((self.agents.root / "status").glob("*/*.yaml")):
            document = json.loads(path.read_text())
            if document["status"]["targetPath"] == str(self.target):
                found.append(document)
        return found

    async def replay_publish(self, agent: AgentProcess) -> None:
        """Kubelet retries NodePublishVolume until it succeeds; one retry must do."""
        await self.publish(agent)

    async def rotated(self, agent: AgentProcess) -> None:
        """Until the scheduler has recorded the current revision (metadata and status); polled
        with a deadline, as the scheduler runs in the agent process."""
        deadline = time.monotonic() + KILL_TIMEOUT_S
        while not self.recorded():
            assert time.monotonic() < deadline, f"not rotated:\n{agent.output()[-4000:]}"
            await asyncio.sleep(0.05)

    def recorded(self) -> bool:
        try:
            metadata = json.loads((self.target / METADATA_FILE).read_text())
        except (OSError, ValueError):
            return False
        versions = {v["version"] for v in metadata["versions"]}
        statuses = [{o["version"] for o in s["status"]["objects"]} for s in self.statuses()]
        return versions == {self.revision} and statuses == [{self.revision}]

    async def assert_mounted(self) -> None:
        """Complete content of the current revision, its metadata, exactly one status (written
        behind the reply: polled with a deadline, the agent is another process)."""
        deadline = time.monotonic() + KILL_TIMEOUT_S
        while not self.statuses() and time.monotonic() < deadline:
            await asyncio.sleep(0.005)
        expected = {
            f"secret-{i:03d}": content(i, self.size, self.revision) for i in range(self.count)
        }
        assert read_visible_files(str(self.target)) == expected
        assert mounts_under(str(self.target)) == [str(self.target)]
        metadata = json.loads((self.target / METADATA_FILE).read_text())
        assert metadata["target_path"] == str(self.target)
        assert {v["version"] for v in metadata["versions"]} == {self.revision}
        [status] = self.statuses()
        assert status["status"]["mounted"] is True
        assert {o["version"] for o in status["status"]["objects"]} == {self.revision}
        stray = [n for n in os.listdir(self.target) if is_ts_dir_name(n)]
        assert len(stray) == 1, f"half-written versions left behind: {stray}"

    def assert_gone(self) -> None:
        assert mounts_under(str(self.target)) == []
        assert not os.path.lexists(self.target)
        assert self.statuses() == []


# What each publish step leaves on the node when the agent dies there (agent.crashpoints).
PUBLISH_POINTS = {
    "publish.target_created": Seen(True, False, False, 0, 0, 0, False, False),
    "publish.mounted": Seen(True, True, False, 0, 0, 0, False, False),
    "write.payload_written": Seen(True, True, False, 1, 0, 0, False, False),
    "write.links_made": Seen(True, True, False, 1, 3, 3, False, False),
    "write.swapped": Seen(True, True, True, 1, 3, 0, False, False),
}
# The metadata is saved before the reply, the status file behind it: only the one named is
# certain at the kill.
SAVE_POINTS = {"record.metadata_saved": "metadata", "record.status_saved": "status"}


def check_seen(point: str, seen: Seen) -> None:
    if point in PUBLISH_POINTS:
        assert seen == PUBLISH_POINTS[point]
    else:
        assert seen.mounted and seen.data_link and getattr(seen, SAVE_POINTS[point])


@pytest.mark.parametrize("point", [*PUBLISH_POINTS, *SAVE_POINTS])
@pytest.mark.parametrize("kubelet_next", ["republish", "unpublish"])
async def test_a_first_publish_killed_at_any_step_heals(
    agents: Agents, point: str, kubelet_next: str
) -> None:
    node = Node(agents)
    agent = node.start(crash_at=point)
    may_answer = point == "record.status_saved"  # the status file is written behind the reply
    check_seen(point, await node.killed_during(agent, "publish", may_answer=may_answer))
    agent = node.start()
    if kubelet_next == "republish":  # the pod still wants its volume
        await node.replay_publish(agent)
        await node.assert_mounted()
        await node.publish(agent)  # idempotent from now on
        await node.assert_mounted()
    await node.unpublish(agent)  # the pod went away
    node.assert_gone()


async def test_a_large_first_publish_killed_before_its_data_link_heals(agents: Agents) -> None:
    """The reported case: 5,000 files written, killed before ``..data`` exists; the retry used to
    answer OK (already mounted) with no files, for the life of the pod."""
    node = Node(agents, count=5000, size=16)
    seen = await node.killed_during(node.start(crash_at="write.links_made"), "publish")
    assert (seen.data_link, seen.ts_dirs, seen.dangling) == (False, 1, 5000)
    agent = node.start()
    await node.replay_publish(agent)
    await node.assert_mounted()
    await node.unpublish(agent)
    node.assert_gone()


ROTATION_POINTS = [
    "write.payload_written",
    "write.links_made",
    "write.swapped",
    "record.metadata_saved",
    "record.status_saved",
]


@pytest.mark.parametrize("point", ROTATION_POINTS)
async def test_a_rotation_killed_at_any_step_heals(agents: Agents, point: str) -> None:
    """Rotation on: the scheduler fetches a new revision and is killed while storing it (the
    first publish reached the point once; rotations of unchanged content write nothing)."""
    node = Node(agents, rotation=True)
    agent = node.start(crash_at=f"{point}@2")
    await node.publish(agent)
    await node.assert_mounted()
    node.write_spc(revision="rev-2")
    seen = node.killed(agent)
    assert seen.mounted and seen.data_link and seen.metadata, "the old version stays whole"
    assert seen.dangling == 0
    agent = node.start()
    # Tokens are never saved: a recovered volume rotates after kubelet's next republish.
    await node.replay_publish(agent)
    await node.rotated(agent)
    await node.assert_mounted()  # the new revision, recorded everywhere
    await node.unpublish(agent)
    node.assert_gone()


UNPUBLISH_POINTS = {
    "unpublish.cleared": Seen(True, True, False, 0, 0, 0, False, True),
    "unpublish.unmounted": Seen(True, False, False, 0, 0, 0, False, True),
    "unpublish.removed": Seen(False, False, False, 0, 0, 0, False, True),
}


@pytest.mark.parametrize("point", UNPUBLISH_POINTS)
@pytest.mark.parametrize("kubelet_next", ["unpublish", "nothing"])
async def test_an_unpublish_killed_at_any_step_heals(
    agents: Agents, point: str, kubelet_next: str
) -> None:
    node = Node(agents)
    agent = node.start(crash_at=point)
    await node.publish(agent)
    await node.assert_mounted()
    assert await node.killed_during(agent, "unpublish") == UNPUBLISH_POINTS[point]
    agent = node.start()
    if kubelet_next == "unpublish":
        await node.unpublish(agent)
        node.assert_gone()
    elif point == "unpublish.removed":
        node.assert_gone()  # the restart alone removes the status of a volume that is gone
    await node.unpublish(agent)
    node.assert_gone()
