"""Fetch keys: which volumes one provider call can serve.

Two volumes share a fetch when everything the provider sees, apart from who exactly asks,
is the same: provider, SecretProviderClass (uid and generation), the merged parameters without
the pod-only keys, the identity (namespace, service account, token audiences) and the
node-publish secrets. Pods with different identities never share a fetch; a class annotated
``rotation-fetch-per-pod`` (or a provider that writes into the target itself) never shares.
"""

from __future__ import annotations

import hashlib
import math
import secrets
from collections.abc import Mapping, Sequence
from dataclasses import dataclass

from agent.model import (
    POD_NAME,
    POD_UID,
    SERVICE_ACCOUNT_TOKENS,
    SecretProviderClass,
    VolumeRecord,
)

# Keys that name the pod itself; the fetch does not depend on them (identity is compared by
# namespace, service account and audiences instead).
POD_ONLY_KEYS = frozenset({POD_NAME, POD_UID, SERVICE_ACCOUNT_TOKENS})

# Node-publish secrets are compared by a keyed digest: equal secrets give equal keys, and the
# digest, should it ever be seen, cannot be checked against guesses without the process's key.
_DIGEST_KEY = secrets.token_bytes(32)


@dataclass(frozen=True, slots=True)
class FetchKey:
    provider: str
    spc_uid: str
    spc_generation: int
    attributes: tuple[tuple[str, str], ...]
    namespace: str
    service_account: str
    audiences: tuple[str, ...]
    secrets_digest: str
    pod_uid: str = ""  # set only when this volume may not share its fetch


def fetch_key(spc: SecretProviderClass, record: VolumeRecord, *, per_pod: bool) -> FetchKey:
    """The key of ``record`` (which must have a context) under ``spc``."""
    assert record.context is not None
    merged = dict(spc.parameters)
    merged.update(record.context.volume_context)
    attributes = tuple(sorted((k, v) for k, v in merged.items() if k not in POD_ONLY_KEYS))
    pod = record.pod
    return FetchKey(
        provider=spc.provider,
        spc_uid=spc.uid,
        spc_generation=spc.generation,
        attributes=attributes,
        namespace=pod.namespace,
        service_account=pod.service_account,
        audiences=pod.audiences,
        secrets_digest=secrets_digest(record.context.secrets),
        pod_uid=pod.uid if per_pod else "",
    )


def secrets_digest(values: Mapping[str, str]) -> str:
    if not values:
        return ""
    digest = hashlib.blake2b(key=_DIGEST_KEY, digest_size=16)
    for name, value in sorted(values.items()):
        digest.update(name.encode() + b"\0" + value.encode() + b"\0")
    return digest.hexdigest()


def freshest(members: Sequence[VolumeRecord]) -> VolumeRecord:
    """The member whose tokens stay valid longest (the one whose earliest-expiring token
    expires last); tokens without an expiry count as never expiring. First wins a tie."""

    def validity(record: VolumeRecord) -> float:
        expiries = [
            t.expires_at.timestamp() if t.expires_at else math.inf
            for t in record.pod.tokens.values()
        ]
        return min(expiries, default=math.inf)

    best = members[0]
    for member in members[1:]:
        if validity(member) > validity(best):
            best = member
    return best
