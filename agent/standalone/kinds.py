"""The kinds standalone mode reads from its directory, and the lists that carry them.

Objects: SecretProviderClass (the CRD's versions), ServiceAccount and Node (``v1``). Lists, as
kubectl's resource builder flattens them when it applies a file: ``v1`` ``kind: List`` (what
``kubectl get ... -o yaml`` prints) and the typed list of each kind read, ``<Kind>List`` of
that kind's apiVersions (what the API server returns for a list, e.g. ``kubectl get --raw
/apis/secrets-store.csi.x-k8s.io/v1/secretproviderclasses``). The API server leaves ``kind``
and ``apiVersion`` out of a typed list's items; kubectl's unstructured decoder gives an item
that names neither (each absent, null or empty) the list's kind without its ``List`` suffix
and the list's apiVersion, and leaves an item that names one as it is.
"""

from __future__ import annotations

from agent.documents.spc import API_VERSIONS, KIND
from agent.standalone.nodes import NODE_KIND

SERVICE_ACCOUNT_KIND = "ServiceAccount"
LIST_KIND = "List"
LIST_API_VERSION = "v1"

OBJECT_KINDS: dict[str, frozenset[str]] = {
    KIND: API_VERSIONS,
    SERVICE_ACCOUNT_KIND: frozenset({"v1"}),
    NODE_KIND: frozenset({"v1"}),
}
"""Each kind of object the directory is read for, and the apiVersions it is read with."""

LIST_KINDS: dict[str, frozenset[str]] = {
    LIST_KIND: frozenset({LIST_API_VERSION}),
    **{kind + LIST_KIND: versions for kind, versions in OBJECT_KINDS.items()},
}
"""Each kind of list read as its items, and its apiVersions."""

READ_KINDS = OBJECT_KINDS | LIST_KINDS


def is_list_kind(kind: str, api_version: str) -> bool:
    """Whether a document of this ``kind`` and ``apiVersion`` is a list the agent reads as its
    items (``kind: List``, ``kind: SecretProviderClassList``, ...)."""
    return api_version in LIST_KINDS.get(kind, ())


def item_type(kind: str, api_version: str) -> tuple[str, str] | None:
    """``(kind, apiVersion)`` an item of the list ``kind`` takes when it names neither: the
    typed list's kind without ``List`` and its apiVersion; None for a ``kind: List``, whose
    items always name their own."""
    if kind == LIST_KIND:
        return None
    return kind.removesuffix(LIST_KIND), api_version


def names_a_type(value: object) -> bool:
    """Whether an item's ``kind`` or ``apiVersion`` counts as given (kubectl's ``GetKind()``:
    a non-empty string; absent, null, "" or not a string counts as missing)."""
    return isinstance(value, str) and value != ""
