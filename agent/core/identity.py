"""Keep a pod's service-account tokens usable for a fetch that kubelet did not trigger.

Kubelet sends fresh tokens with every (re)publish and the mount table keeps them per pod with
their expiry. A fetch between republishes (rotation) may find one expired; with the
TokenRequest fallback enabled, such a token is replaced by one minted for the same pod and
audience. Token text never leaves the identity object (its repr hides it).
"""

from __future__ import annotations

from dataclasses import replace
from datetime import UTC, datetime, timedelta

from agent.model import PodIdentity, ServiceAccountToken
from agent.ports import ServiceAccountTokenMinter

# Refresh a little before expiry, so the token is still valid when the store checks it.
MIN_REMAINING = timedelta(minutes=2)


def needs_refresh(token: ServiceAccountToken, now: datetime) -> bool:
    return token.expires_at is not None and token.expires_at - now < MIN_REMAINING


async def refreshed_identity(
    identity: PodIdentity,
    minter: ServiceAccountTokenMinter | None,
    now: datetime | None = None,
) -> PodIdentity:
    """``identity`` with every expiring token replaced by a minted one (when ``minter`` is
    set); unchanged when nothing expires. Minting errors propagate (AgentError)."""
    if minter is None:
        return identity
    moment = now or datetime.now(UTC)
    stale = [
        audience for audience, token in identity.tokens.items() if needs_refresh(token, moment)
    ]
    if not stale:
        return identity
    tokens = dict(identity.tokens)
    for audience in stale:
        tokens[audience] = await minter.mint(identity, audience)
    return replace(identity, tokens=tokens)
