"""Which Azure identity a volume signs in as, chosen as the upstream provider chooses it.

Order (upstream ``auth.NewConfig`` / ``GetCredential``, plus one extension):

1. ``usePodIdentity: true`` is refused: aad-pod-identity (NMI) is retired; workload identity
   replaces it. ``useAzureTokenProxy`` (AKS identity binding) is refused as unsupported.
   At most one of the three mode switches may be set.
2. ``useVMManagedIdentity: true``: the node's managed identity through IMDS, the user-assigned
   one named by ``userAssignedIdentityID`` when given.
3. ``clientID`` set: workload identity. The pod's service account token for audience
   ``api://AzureADTokenExchange`` is the client assertion.
4. Otherwise a service principal from the node-publish secret keys ``clientid`` and
   ``clientsecret`` (any case).
5. Extension: when no node-publish secret names one, the ``azure.workload.identity/client-id``
   annotation of the pod's service account gives the workload identity's client ID (as the
   Azure Workload Identity webhook uses it). Upstream would fail here, so no working
   SecretProviderClass changes identity.

Nothing here performs I/O; secrets stay out of every repr.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field, replace
from typing import Literal

from agent.errors import InvalidSecretProviderClass, ProviderError
from agent.providers.credential_cache import jwt_digest

WORKLOAD_IDENTITY_AUDIENCE = "api://AzureADTokenExchange"
CLIENT_ID_ANNOTATION = "azure.workload.identity/client-id"
ASSERTION_TYPE = "urn:ietf:params:oauth:client-assertion-type:jwt-bearer"


@dataclass(frozen=True, slots=True)
class TokenKey:
    """Whose access token a cache entry is: the identity, the scope, and a SHA-256 digest of
    the proof that bought it (the pod's token or the client secret), never the proof itself.
    A token is handed out only with that very proof; kubelet refreshing the pod's token, or a
    rotated client secret, costs one sign-in and drops the old entry."""

    kind: str
    authority: str  # Entra authority, or the IMDS endpoint
    tenant: str
    client_id: str
    scope: str
    proof_sha256: str

    def same_but_jwt(self, other: TokenKey) -> bool:
        return replace(self, proof_sha256="") == replace(other, proof_sha256="")


@dataclass(frozen=True, slots=True)
class ClientCredential:
    """An Entra client-credentials sign-in: a pod's token (workload identity) or a secret."""

    kind: Literal["workload identity", "service principal"]
    authority: str  # https://login.microsoftonline.com/
    tenant: str
    client_id: str
    assertion: str = field(default="", repr=False)
    secret: str = field(default="", repr=False)

    def token_url(self) -> str:
        # AD FS (Azure Stack Hub disconnected) has one token endpoint for the whole farm.
        if self.tenant.lower() == "adfs":
            return f"{self.authority}adfs/oauth2/token"
        return f"{self.authority}{self.tenant}/oauth2/v2.0/token"

    def form(self, scope: str) -> dict[str, str]:
        form = {"grant_type": "client_credentials", "client_id": self.client_id, "scope": scope}
        if self.kind == "workload identity":
            form["client_assertion_type"] = ASSERTION_TYPE
            form["client_assertion"] = self.assertion
        else:
            form["client_secret"] = self.secret
        return form

    def describe(self) -> str:
        return f"{self.kind} (client {self.client_id}, tenant {self.tenant})"

    def cache_key(self, scope: str) -> TokenKey:
        proof = jwt_digest(self.assertion or self.secret)
        return TokenKey(self.kind, self.authority, self.tenant, self.client_id, scope, proof)


@dataclass(frozen=True, slots=True)
class ManagedIdentity:
    """The node's managed identity from IMDS; ``client_id`` "" for the system-assigned one."""

    endpoint: str  # http://169.254.169.254
    client_id: str = ""

    def describe(self) -> str:
        which = f"user-assigned {self.client_id}" if self.client_id else "system-assigned"
        return f"managed identity ({which})"

    def cache_key(self, scope: str) -> TokenKey:
        return TokenKey("managed identity", self.endpoint, "", self.client_id, scope, "")


Credential = ClientCredential | ManagedIdentity


@dataclass(frozen=True, slots=True)
class IdentityChoice:
    """What the SecretProviderClass asks for, before the service account is consulted."""

    use_vm_managed_identity: bool
    user_assigned_identity_id: str
    client_id: str


def node_publish_client(secrets: Mapping[str, str]) -> tuple[str, str] | None:
    """(clientid, clientsecret) from the node-publish secret, keys in any case; None when
    neither is there. Raises ProviderError naming the missing one when only one is."""
    found = {key.lower(): value for key, value in secrets.items()}
    client_id, client_secret = found.get("clientid", ""), found.get("clientsecret", "")
    if not client_id and not client_secret:
        return None
    if not client_id:
        raise ProviderError("could not find clientid in the nodePublishSecretRef secret")
    if not client_secret:
        raise ProviderError("could not find clientsecret in the nodePublishSecretRef secret")
    return client_id, client_secret


def no_identity_error(annotation_checked: bool) -> InvalidSecretProviderClass:
    where = (
        f", and the pod's service account has no {CLIENT_ID_ANNOTATION} annotation"
        if annotation_checked
        else ""
    )
    return InvalidSecretProviderClass(
        "no Azure identity configured: set clientID (workload identity), "
        "useVMManagedIdentity, or a nodePublishSecretRef with clientid and clientsecret" + where
    )


def missing_token_error(client_id_source: str, audiences: tuple[str, ...]) -> ProviderError:
    have = ", ".join(audiences) or "none"
    return ProviderError(
        f"{client_id_source} selects workload identity, but kubelet sent no service account "
        f"token for audience {WORKLOAD_IDENTITY_AUDIENCE!r} (tokens present for: {have}); "
        f"the CSIDriver spec.tokenRequests must list audience {WORKLOAD_IDENTITY_AUDIENCE!r}"
    )
