from __future__ import annotations

import json
from datetime import UTC, datetime

import pytest

from agent.core.pod_info import parse_tokens, read_pod_identity
from agent.errors import InvalidRequest

CONTEXT = {
    "csi.storage.k8s.io/pod.name": "web-0",
    "csi.storage.k8s.io/pod.namespace": "shop",
    "csi.storage.k8s.io/pod.uid": "uid-1",
    "csi.storage.k8s.io/serviceAccount.name": "web",
}
TOKENS_KEY = "csi.storage.k8s.io/serviceAccount.tokens"


def tokens(**by_audience: str) -> str:
    return json.dumps(
        {
            a: {"token": t, "expirationTimestamp": "2030-01-02T03:04:05Z"}
            for a, t in by_audience.items()
        }
    )


def test_identity_from_volume_context() -> None:
    identity = read_pod_identity({**CONTEXT, TOKENS_KEY: tokens(vault="jwt-a")}, {})
    assert (identity.namespace, identity.name, identity.uid, identity.service_account) == (
        "shop",
        "web-0",
        "uid-1",
        "web",
    )
    token = identity.token_for("vault")
    assert token is not None and token.token == "jwt-a"
    assert token.expires_at == datetime(2030, 1, 2, 3, 4, 5, tzinfo=UTC)
    assert "jwt-a" not in repr(identity)


def test_tokens_in_secrets_win_over_volume_context() -> None:
    """Kubelet >= 1.35 with serviceAccountTokenInSecrets puts them in the secrets map."""
    identity = read_pod_identity(
        {**CONTEXT, TOKENS_KEY: tokens(vault="old")}, {TOKENS_KEY: tokens(vault="new")}
    )
    token = identity.token_for("vault")
    assert token is not None and token.token == "new"


def test_empty_audience_is_allowed() -> None:
    assert set(parse_tokens(tokens(**{"": "t"}))) == {""}


@pytest.mark.parametrize("missing", ["pod.name", "pod.namespace", "pod.uid"])
def test_missing_pod_info_names_the_key(missing: str) -> None:
    context = {k: v for k, v in CONTEXT.items() if not k.endswith(missing)}
    with pytest.raises(InvalidRequest, match=f"csi.storage.k8s.io/{missing}"):
        read_pod_identity(context, {})


@pytest.mark.parametrize(
    "raw",
    [
        "not json eyJsecret",
        '["list"]',
        '{"vault": "eyJbare-string"}',
        '{"vault": {"token": 5}}',
        '{"vault": {"token": "eyJx", "expirationTimestamp": "yesterday"}}',
        # RFC 3339 requires a zone; a naive time would later fail to compare with "now".
        '{"vault": {"token": "eyJx", "expirationTimestamp": "2030-01-01T00:00:00"}}',
    ],
)
def test_bad_tokens_never_echo_token_text(raw: str) -> None:
    with pytest.raises(InvalidRequest) as info:
        parse_tokens(raw)
    assert TOKENS_KEY in info.value.message
    assert "eyJ" not in info.value.message
