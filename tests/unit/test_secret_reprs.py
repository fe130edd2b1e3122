"""No secret value, token or key in the ``repr`` of what providers pass around: the log
redaction renders an unknown object with ``str()`` (``agent.log_redaction._describe``), and a
dataclass's default repr shows every field, so one such object logged or put in an exception
message would print a secret. Each object here carried it before (the model's own dataclasses
already hid theirs, ``agent/model.py``)."""

from __future__ import annotations

import pytest

from agent.providers.aws.config import objects_from
from agent.providers.aws.fetch import Fetched as AwsFetched
from agent.providers.azure.content import Piece
from agent.providers.azure.transport import Reply as AzureReply
from agent.providers.gcp.fetch import Fetched as GcpFetched
from agent.providers.gcp.http import Reply as GcpReply
from agent.providers.registry import ProviderContext
from agent.providers.vault.transport import Reply as VaultReply

SECRET = "s3cr3t-value-never-shown"


def holders() -> list[object]:
    (aws_object,) = objects_from("- {objectName: db, objectType: secretsmanager}", "_", ("r",))
    return [
        AwsFetched(aws_object, SECRET.encode(), "v1", "r"),
        GcpFetched("projects/p/secrets/s/versions/1", SECRET.encode()),
        GcpReply(200, {}, SECRET.encode()),
        Piece("", SECRET.encode()),
        AzureReply(200, {}, {"value": SECRET}),
        VaultReply(200, {"auth": {"client_token": SECRET}}, ()),
        ProviderContext("vault", 1.0, SECRET.encode(), {}),
    ]


@pytest.mark.parametrize("holder", holders(), ids=lambda h: type(h).__module__)
def test_a_secret_is_not_in_the_repr(holder: object) -> None:
    assert SECRET not in repr(holder)
    assert SECRET not in str(holder)
