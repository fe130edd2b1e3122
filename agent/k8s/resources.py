"""The API resources the agent reads and writes, and their URL paths."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from urllib.parse import quote

CSI_GROUP = "secrets-store.csi.x-k8s.io"


@dataclass(frozen=True, slots=True)
class Resource:
    """One resource of one API version, e.g. ``pods`` in core ``v1``."""

    group: str
    version: str
    plural: str

    @property
    def api_version(self) -> str:
        return f"{self.group}/{self.version}" if self.group else self.version

    def path(self, namespace: str | None = None, name: str | None = None, sub: str = "") -> str:
        """``/api/v1/namespaces/ns/pods/name/sub``; a cluster-wide collection without a
        namespace. Names are quoted, so a name with ``/`` can never address another path."""
        prefix = f"/apis/{self.group}/{self.version}" if self.group else f"/api/{self.version}"
        parts = [prefix]
        if namespace is not None:
            parts.append(f"namespaces/{quote(namespace, safe='')}")
        parts.append(self.plural)
        if name is not None:
            parts.append(quote(name, safe=""))
            if sub:
                parts.append(sub)
        return "/".join(parts)

    def describe(
        self,
        namespace: str | None = None,
        name: str | None = None,
        selectors: Mapping[str, str] | None = None,
    ) -> str:
        """What a log line or error calls the object: ``secrets kube-system/hmac``; a
        collection names its selectors: ``pods (spec.nodeName=node-a)``."""
        if name is not None:
            return f"{self.plural} {namespace}/{name}" if namespace else f"{self.plural} {name}"
        where = f" in {namespace}" if namespace else ""
        chosen = ", ".join(value for value in (selectors or {}).values() if value)
        if chosen:
            return f"{self.plural}{where} ({chosen})"
        return f"{self.plural}{where}" if namespace else f"{self.plural} (all)"


PODS = Resource("", "v1", "pods")
EVENTS = Resource("", "v1", "events")
SECRETS = Resource("", "v1", "secrets")
SERVICE_ACCOUNTS = Resource("", "v1", "serviceaccounts")
NODES = Resource("", "v1", "nodes")
SPC_V1 = Resource(CSI_GROUP, "v1", "secretproviderclasses")
SPC_V1ALPHA1 = Resource(CSI_GROUP, "v1alpha1", "secretproviderclasses")
SPC_POD_STATUSES = Resource(CSI_GROUP, "v1", "secretproviderclasspodstatuses")
