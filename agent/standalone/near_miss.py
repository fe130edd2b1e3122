"""Standalone manifests that look meant for the agent but are not read: a misspelled ``kind``
or ``apiVersion`` of a kind it reads (``kind: SecretProviderClas``, ``kind:
secretproviderclass``, ``apiVersion: secrets-store.csi.x-k8s.io/v2``, the group without its
``x-``). kubectl would send such a document to another resource or have it refused; standalone
mode has no API server to say so, so without a warning the user would only see "not found" at
publish. Kinds the agent does not read (ConfigMap, Deployment, ...), another group's kind of
the same name and another group's kind of a near name (``IAMServiceAccount`` of
``iam.cnrm.cloud.google.com``) may share the directory and stay quiet.

"Near" is difflib's similarity ratio (twice the matching characters over both lengths) of at
least :data:`CUTOFF`, ignoring case: one or two slips in a long name, never a different short
word ("Role" is not "Node": 0.5; "SecretProviderClassPodStatus" is not "SecretProviderClass":
0.81).
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from difflib import SequenceMatcher

from agent.standalone.kinds import READ_KINDS

CUTOFF = 0.85
MAX_SHOWN = 80  # characters of a wrong value quoted in the warning (a line, not a file)


def near_miss(document: Mapping[str, object]) -> tuple[str, str] | None:
    """``(kind the document was likely meant as, why it is skipped)`` for a document the
    agent does not read but whose ``kind`` or ``apiVersion`` is a slip from one it reads
    (standalone/kinds.py: the objects and the lists); None otherwise. The reason names the
    field and what the agent expected."""
    kind, api_version = document.get("kind"), document.get("apiVersion")
    if not isinstance(kind, str):
        return None
    versions = READ_KINDS.get(kind)
    if versions is not None:
        if api_version in versions or not _near_api_version(api_version, versions):
            return None
        found = (
            "Required value" if api_version is None else f"Unsupported value: {_shown(api_version)}"
        )
        return kind, (
            f"apiVersion: {found}: the agent reads kind {kind} as {_wanted(versions)}; "
            "document skipped"
        )
    # A kind slip keeps its apiVersion: another group's kind of a near name (Config
    # Connector's IAMServiceAccount, Crossplane's ServiceAccountKey) is not one. Of near
    # kinds the nearest is meant (SecretProviderClasList is a list, not a class).
    meant = [
        (ratio, expected)
        for expected, versions in READ_KINDS.items()
        if (ratio := _ratio(kind, expected)) >= CUTOFF
        and (api_version in versions or _near_api_version(api_version, versions))
    ]
    if not meant:
        return None
    _, expected = max(meant)
    return expected, (
        f"kind: Unsupported value: {_shown(kind)}: the agent reads {expected} "
        f"(apiVersion {_wanted(READ_KINDS[expected])}); document skipped"
    )


def _wanted(versions: Iterable[str]) -> str:
    return " or ".join(sorted(versions))


def _near_api_version(api_version: object, versions: Iterable[str]) -> bool:
    """A missing apiVersion, a wrong version of an expected group (``v2``, ``.../v2``), or a
    slip in the group or the whole; another group's kind of the same name is not near."""
    if not isinstance(api_version, str):
        return True
    groups = {version.rpartition("/")[0] for version in versions}
    return _near(api_version.rpartition("/")[0], groups) or _near(api_version, versions)


def _near(text: str, options: Iterable[str]) -> bool:
    return any(_ratio(text, option) >= CUTOFF for option in options)


def _ratio(text: str, option: str) -> float:
    """How alike two names are, ignoring case: 1.0 for the same letters."""
    folded, wanted = text.casefold(), option.casefold()
    return 1.0 if folded == wanted else SequenceMatcher(None, folded, wanted).ratio()


def _shown(value: object) -> str:
    text = str(value)
    return f'"{text}"' if len(text) <= MAX_SHOWN else f'"{text[:MAX_SHOWN]}..."'
