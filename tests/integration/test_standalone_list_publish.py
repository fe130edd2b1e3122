"""A class defined only inside lists of the standalone directory (a ``SecretProviderClassList``
as the API returns it, its items without kind or apiVersion, itself an item of a ``v1`` List),
published through the agent's real CSI socket (grpcio client as kubelet, real tmpfs as root).

Before: neither list was read (the typed list was reported as a misspelled class), so the
publish failed NOT_FOUND."""

from __future__ import annotations

import json
from pathlib import Path

import yaml

from tests.conftest import AgentHarness
from tests.support.kubelet import publish_request

GROUP = "secrets-store.csi.x-k8s.io"


async def test_a_class_found_only_in_a_typed_list_inside_a_list_is_published(
    harness: AgentHarness,
) -> None:
    directory = harness.root / "spc"
    (directory / "default-app-secrets.yaml").unlink()  # the harness's own class
    from_the_api = {
        "apiVersion": f"{GROUP}/v1",
        "kind": "SecretProviderClassList",
        "metadata": {"resourceVersion": "4711"},
        "items": [
            {
                "metadata": {"name": "app-secrets", "namespace": "default", "uid": "uid-app"},
                "spec": {
                    "provider": "fake",
                    "parameters": {"objects": "- objectName: from-the-list\n"},
                },
            }
        ],
    }
    (directory / "dump.yaml").write_text(
        yaml.safe_dump({"apiVersion": "v1", "kind": "List", "items": [from_the_api]})
    )
    target = harness.target()

    await harness.kubelet.publish(publish_request(target))

    assert Path(target, "username").read_bytes() == b"admin"
    (request,) = harness.provider.requests
    assert request.attributes["objects"] == "- objectName: from-the-list\n"
    await harness.statuses_written()
    status = directory / "status" / "default" / "web-0-default-app-secrets.yaml"
    assert json.loads(status.read_text())["status"]["secretProviderClassName"] == "app-secrets"
