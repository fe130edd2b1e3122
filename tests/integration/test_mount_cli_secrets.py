"""``secrets-store-agent mount`` against the agent's real CSI socket: node-publish secrets given
as files (``--secret-file KEY=FILE``, kept off the command line) reach the provider as kubelet
would send them, beside ``--secret K=V`` entries."""

from __future__ import annotations

import asyncio
from pathlib import Path

import pytest

from agent.cli import main
from tests.conftest import AgentHarness
from tests.support.kubelet import POD_UID

KEY_JSON = '{\r\n  "type": "service_account",\r\n  "private_key": "-----BEGIN..."\r\n}\n'


async def mount(harness: AgentHarness, *extra: str) -> int:
    args = [
        "mount",
        f"--endpoint={harness.settings.endpoint}",
        f"--kubelet-root-dir={harness.root}",
        f"--uid={POD_UID}",
        "--pod=web-0",
        "--spc=app-secrets",
        *extra,
    ]
    return await asyncio.to_thread(main, args)  # the client runs its own event loop


async def test_secret_files_reach_the_provider_as_is(
    harness: AgentHarness, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    key_file = tmp_path / "key.json"
    key_file.write_bytes(KEY_JSON.encode())

    code = await mount(harness, f"--secret-file=key.json={key_file}", "--secret=region=eu")

    assert code == 0, capsys.readouterr().err
    (request,) = harness.provider.requests
    # Verbatim: no newline stripped or translated, as a Secret made --from-file holds it.
    assert dict(request.secrets) == {"key.json": KEY_JSON, "region": "eu"}
    assert KEY_JSON not in capsys.readouterr().out
