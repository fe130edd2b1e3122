"""Reads the pod's identity out of what kubelet sends (volume context and node-publish secrets)."""

from __future__ import annotations

import json
from collections.abc import Mapping
from datetime import UTC, datetime

from agent.documents.names import label_problem, subdomain_problem
from agent.errors import InvalidRequest
from agent.model import (
    POD_NAME,
    POD_NAMESPACE,
    POD_UID,
    SERVICE_ACCOUNT_NAME,
    SERVICE_ACCOUNT_TOKENS,
    PodIdentity,
    ServiceAccountToken,
)

_REQUIRED_POD_KEYS = (POD_NAMESPACE, POD_NAME, POD_UID)


def tokens_json(volume_context: Mapping[str, str], secrets: Mapping[str, str]) -> str:
    """Kubelet >= 1.35 may put the tokens in the secrets map; the volume context is the fallback."""
    return secrets.get(SERVICE_ACCOUNT_TOKENS) or volume_context.get(SERVICE_ACCOUNT_TOKENS, "")


def read_pod_identity(volume_context: Mapping[str, str], secrets: Mapping[str, str]) -> PodIdentity:
    """The pod kubelet publishes for. InvalidRequest naming the volume-context key when one of
    namespace, name, uid is missing, or the namespace, name or service account is not a
    Kubernetes name (``agent.documents.names``).

    The service account may be missing or empty: kubelet sends the pod's
    ``spec.serviceAccountName`` as it is, which the API server leaves empty when its
    ServiceAccount admission is off; upstream passes it on unchecked, and providers that need
    one say so."""
    missing = [key for key in _REQUIRED_POD_KEYS if not volume_context.get(key)]
    if missing:
        raise InvalidRequest(
            f"pod information missing in volume context: {', '.join(missing)} "
            "(is podInfoOnMount: true set on the CSIDriver?)"
        )
    service_account = volume_context.get(SERVICE_ACCOUNT_NAME, "")
    for key, problem in (
        (POD_NAMESPACE, label_problem(volume_context[POD_NAMESPACE])),
        (POD_NAME, subdomain_problem(volume_context[POD_NAME])),
        (SERVICE_ACCOUNT_NAME, service_account and subdomain_problem(service_account)),
    ):
        if problem:
            # Kubelet sends names the API server accepted; these become parts of file names,
            # API paths, the pod status name and messages, so nothing else may pass.
            raise InvalidRequest(f"{key} in volume context: {problem}")
    return PodIdentity(
        namespace=volume_context[POD_NAMESPACE],
        name=volume_context[POD_NAME],
        uid=volume_context[POD_UID],
        service_account=service_account,
        tokens=parse_tokens(tokens_json(volume_context, secrets)),
    )


def parse_tokens(raw: str) -> dict[str, ServiceAccountToken]:
    """Parse kubelet's ``{"<audience>": {"token": ..., "expirationTimestamp": ...}}`` JSON.

    Error messages name the key and the audience, never the token text.
    """
    if not raw:
        return {}
    try:
        document = json.loads(raw)
    except ValueError:
        raise InvalidRequest(f"{SERVICE_ACCOUNT_TOKENS} is not valid JSON") from None
    if not isinstance(document, dict):
        raise InvalidRequest(f"{SERVICE_ACCOUNT_TOKENS} must be a JSON object keyed by audience")
    tokens: dict[str, ServiceAccountToken] = {}
    for audience, entry in document.items():
        if not isinstance(entry, dict) or not isinstance(entry.get("token"), str):
            raise InvalidRequest(
                f"{SERVICE_ACCOUNT_TOKENS}[{audience!r}] must be an object with a string token"
            )
        tokens[audience] = ServiceAccountToken(
            token=entry["token"], expires_at=_parse_expiry(audience, entry)
        )
    return tokens


def format_tokens(tokens: Mapping[str, ServiceAccountToken]) -> str:
    """``parse_tokens`` reversed: kubelet's JSON for the tokens a rotation fetches with (some
    may have been minted since kubelet sent the others). Empty when there are none."""
    if not tokens:
        return ""
    document: dict[str, dict[str, str]] = {}
    for audience, token in tokens.items():
        entry = {"token": token.token}
        if token.expires_at is not None:
            entry["expirationTimestamp"] = token.expires_at.astimezone(UTC).strftime(
                "%Y-%m-%dT%H:%M:%SZ"
            )
        document[audience] = entry
    return json.dumps(document)


def _parse_expiry(audience: str, entry: Mapping[str, object]) -> datetime | None:
    value = entry.get("expirationTimestamp")
    if not value:
        return None
    if not isinstance(value, str):
        raise InvalidRequest(
            f"{SERVICE_ACCOUNT_TOKENS}[{audience!r}].expirationTimestamp is not a string"
        )
    try:
        moment = datetime.fromisoformat(value.replace("Z", "+00:00"))
    except ValueError:
        moment = None
    if moment is None or moment.tzinfo is None:  # RFC 3339 always has a zone (Z or offset)
        raise InvalidRequest(
            f"{SERVICE_ACCOUNT_TOKENS}[{audience!r}].expirationTimestamp is not RFC 3339"
        )
    return moment
