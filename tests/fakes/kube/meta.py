"""``metadata`` rules shared by every resource: names, system fields, timestamps."""

from __future__ import annotations

import datetime
import re
import secrets
import uuid
from collections.abc import Callable
from typing import Any

from tests.fakes.kube.status import Cause

Object = dict[str, Any]
Clock = Callable[[], datetime.datetime]

_SUBDOMAIN = re.compile(r"^[a-z0-9]([-a-z0-9]*[a-z0-9])?(\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*$")
_LABEL = re.compile(r"^[a-z0-9]([-a-z0-9]*[a-z0-9])?$")
# names.SimpleNameGenerator: five characters from an alphabet without vowels and look-alikes
_GENERATED = "bcdfghjklmnpqrstvwxz2456789"
SYSTEM_FIELDS = (
    "uid",
    "resourceVersion",
    "creationTimestamp",
    "generation",
    "deletionTimestamp",
    "deletionGracePeriodSeconds",
)


def utc_now() -> datetime.datetime:
    return datetime.datetime.now(datetime.UTC)


def timestamp(moment: datetime.datetime) -> str:
    """``metav1.Time``: RFC 3339, seconds, ``Z``."""
    return moment.astimezone(datetime.UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def new_uid() -> str:
    return str(uuid.uuid4())


def generate_name(prefix: str) -> str:
    return prefix + "".join(secrets.choice(_GENERATED) for _ in range(5))


def name_causes(name: str, *, label: bool = False) -> list[Cause]:
    """DNS-1123 subdomain (most objects) or label (namespaces) name validation."""
    limit, pattern = (63, _LABEL) if label else (253, _SUBDOMAIN)
    kind = "RFC 1123 label" if label else "RFC 1123 subdomain"
    if not name:
        return [
            Cause(
                "metadata.name",
                "FieldValueRequired",
                "Required value: name or generateName is required",
            )
        ]
    if len(name) > limit or not pattern.match(name):
        message = (
            f'Invalid value: "{name}": a lowercase {kind} must consist of lower case '
            "alphanumeric characters, '-' or '.', and must start and end with an "
            "alphanumeric character"
        )
        return [Cause("metadata.name", "FieldValueInvalid", message)]
    return []


def owner_uids(obj: Object) -> list[str]:
    refs = (obj.get("metadata") or {}).get("ownerReferences") or []
    return [str(ref.get("uid")) for ref in refs if isinstance(ref, dict)]
