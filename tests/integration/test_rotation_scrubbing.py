"""A provider error quoting a node-publish secret or the pod's token during a rotation is
scrubbed from the log line, as during kubelet's publish (``agent.csi.guard``): a rotation asks
the provider with the same secrets and tokens, outside any CSI call."""

from __future__ import annotations

import io
import uuid
from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from agent.errors import ProviderError
from agent.logs import configure_logging
from tests.support.rotation import INTERVAL, RotationHarness, rotation_harness

SECRET = "np-secret-Zq81vX"
HEADER, PAYLOAD, SIGNATURE = (
    "eyJhbGciOiJSUzI1NiJ9",
    "eyJzdWIiOiJzeXN0ZW06c2VydmljZWFjY291bnQ6ZGVmYXVsdDp3ZWIifQ",
    "c2lnbmF0dXJlLW9mLXRoZS10b2tlbi0xMjM0NTY3ODkw",
)


@pytest.fixture
async def harness(agent_root: Path) -> AsyncIterator[RotationHarness]:
    async for running in rotation_harness(agent_root):
        yield running


async def test_a_rotation_error_quoting_the_pods_secrets_is_scrubbed(
    harness: RotationHarness,
) -> None:
    """Before: ``rotation.failed`` carried the node-publish secret and the token's payload and
    signature verbatim (the JWT-shape pattern needs the header; only the CSI call registered
    the request's values). In Kubernetes mode the same text is the pod's Warning event."""
    lines = io.StringIO()
    configure_logging(json=True, verbosity=0, stream=lines)
    await harness.publish(
        str(uuid.uuid4()),
        pod="web-0",
        token=f"{HEADER}.{PAYLOAD}.{SIGNATURE}",
        secrets={"clientsecret": SECRET},
    )
    harness.provider.error = ProviderError(
        f"login failed for client secret {SECRET} with token ...{PAYLOAD}.{SIGNATURE}"
    )
    await harness.advance(INTERVAL * 1.11)
    assert harness.fetches() == 2
    text = lines.getvalue()
    assert "rotation.failed" in text and "login failed for client secret [REDACTED]" in text
    for value in (SECRET, PAYLOAD, SIGNATURE):
        assert value not in text
