"""Kubernetes object-name rules, as the API server applies them (k8s.io/apimachinery's
``IsDNS1123Label`` and ``IsDNS1123Subdomain``).

Names become parts of file names (standalone status files), API paths and status object names
(``<pod>-<namespace>-<class>``). Kubelet only ever sends names the API server accepted, so a
name that breaks these rules comes from a hand-made request or manifest: it is refused where it
enters, naming the field, before any provider is asked or anything is written.
"""

from __future__ import annotations

import re

from agent.documents.spc import InvalidDocument
from agent.targets import shown

LABEL_MAX = 63  # a namespace
SUBDOMAIN_MAX = 253  # a pod, a ServiceAccount, a SecretProviderClass

_LABEL = re.compile(r"[a-z0-9]([-a-z0-9]*[a-z0-9])?")
_SUBDOMAIN = re.compile(r"[a-z0-9]([-a-z0-9]*[a-z0-9])?(\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*")
SHOWN_CHARS = 80  # characters of a user-supplied name quoted in a message


def label_problem(value: str) -> str | None:
    """Why ``value`` is not a lowercase RFC 1123 label (a namespace), or None."""
    return _problem(value, _LABEL, LABEL_MAX, "label", "a-z, 0-9 and '-'")


def is_subdomain(value: str) -> bool:
    """Whether ``value`` is a lowercase RFC 1123 subdomain of at most 253 characters: a name
    the API server accepts for most objects (a pod, a ServiceAccount, a SecretProviderClass
    and its pod statuses, an Event, a Secret). The agent's one copy of the rule."""
    return len(value) <= SUBDOMAIN_MAX and _SUBDOMAIN.fullmatch(value) is not None


def subdomain_problem(value: str) -> str | None:
    """Why ``value`` is not a lowercase RFC 1123 subdomain (a pod's, a service account's or a
    class's name), or None."""
    return _problem(value, _SUBDOMAIN, SUBDOMAIN_MAX, "subdomain", "a-z, 0-9, '-' and '.'")


def _problem(value: str, rule: re.Pattern[str], limit: int, kind: str, chars: str) -> str | None:
    quoted = shown_value(value)
    if len(value) > limit:
        return f"{quoted} is longer than {limit} characters (a Kubernetes name)"
    if not rule.fullmatch(value):
        return (
            f"{quoted} is not a lowercase RFC 1123 {kind} ({chars}, starting and ending with "
            "a letter or digit), as Kubernetes requires"
        )
    return None


def shown_name(value: str) -> str:
    """A user-supplied name (a requested SecretProviderClass, a pod's service account) for an
    error, an event or a log line: as is when it is a Kubernetes name of at most
    :data:`SHOWN_CHARS` characters, so the text reads as upstream's; otherwise quoted and cut
    there by ``agent.targets.shown``, so a hand-made request's runaway or garbled name never
    reaches kubelet, the pod's events or the log whole."""
    if len(value) <= SHOWN_CHARS and is_subdomain(value):
        return value
    return shown(value, SHOWN_CHARS)


def shown_value(value: str) -> str:
    """A user-supplied name or identifier held up against a rule or another value in a message
    (a volume-context value that differs from the mounted one or from the target path): always
    quoted, so where it starts and ends is plain, and cut past :data:`SHOWN_CHARS` characters,
    as :func:`shown_name` cuts."""
    return shown(value, SHOWN_CHARS)


def check_manifest_key(namespace: str, name: str) -> None:
    """A SecretProviderClass's or ServiceAccount's manifest ``metadata.namespace`` and
    ``metadata.name`` as the API server checks them when the manifest is applied (standalone
    mode has no API server to). Raises InvalidDocument naming the field."""
    for field, problem in (
        ("metadata.namespace", label_problem(namespace)),
        ("metadata.name", subdomain_problem(name)),
    ):
        if problem:
            raise InvalidDocument(f"{field}: {problem}", (namespace, name))
