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
SUBDOMAIN_MAX = 253  # a pod, a SecretProviderClass

_LABEL = re.compile(r"[a-z0-9]([-a-z0-9]*[a-z0-9])?")
_SUBDOMAIN = re.compile(r"[a-z0-9]([-a-z0-9]*[a-z0-9])?(\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*")
_SHOWN_CHARS = 80


def label_problem(value: str) -> str | None:
    """Why ``value`` is not a lowercase RFC 1123 label (a namespace), or None."""
    return _problem(value, _LABEL, LABEL_MAX, "label", "a-z, 0-9 and '-'")


def subdomain_problem(value: str) -> str | None:
    """Why ``value`` is not a lowercase RFC 1123 subdomain (a pod's or a class's name), or
    None."""
    return _problem(value, _SUBDOMAIN, SUBDOMAIN_MAX, "subdomain", "a-z, 0-9, '-' and '.'")


def _problem(value: str, rule: re.Pattern[str], limit: int, kind: str, chars: str) -> str | None:
    quoted = shown(value, _SHOWN_CHARS)
    if len(value) > limit:
        return f"{quoted} is longer than {limit} characters (a Kubernetes name)"
    if not rule.fullmatch(value):
        return (
            f"{quoted} is not a lowercase RFC 1123 {kind} ({chars}, starting and ending with "
            "a letter or digit), as Kubernetes requires"
        )
    return None


def check_class_key(namespace: str, name: str) -> None:
    """A SecretProviderClass manifest's ``metadata.namespace`` and ``metadata.name`` as the API
    server checks them when the manifest is applied (standalone mode has no API server to).
    Raises InvalidDocument naming the field."""
    for field, problem in (
        ("metadata.namespace", label_problem(namespace)),
        ("metadata.name", subdomain_problem(name)),
    ):
        if problem:
            raise InvalidDocument(f"{field}: {problem}", (namespace, name))
