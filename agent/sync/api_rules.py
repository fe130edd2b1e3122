"""The API server's rules for what sync writes into a Secret, checked before any write.

Each function returns why ``value`` breaks the rule ("" when it is fine), so the caller can
name the SecretProviderClass field instead of quoting a 422 from the server. Source:
k8s.io/apimachinery ``pkg/util/validation`` (IsDNS1123Subdomain, IsConfigMapKey,
IsQualifiedName, IsValidLabelValue) and ``pkg/api/validation`` (ValidateAnnotations,
TotalAnnotationSizeLimitB).
"""

from __future__ import annotations

import re
from collections.abc import Mapping

from agent.documents.names import SUBDOMAIN_MAX, is_subdomain

_CONFIG_KEY = re.compile(r"[-._a-zA-Z0-9]+")
_QUALIFIED_NAME = re.compile(r"([A-Za-z0-9][-A-Za-z0-9_.]*)?[A-Za-z0-9]")
_NAME_PART_MAX = 63  # a qualified name's name part, and a label value
ANNOTATIONS_MAX_BYTES = 256 * 1024


def secret_name_error(name: str) -> str:
    if not is_subdomain(name):
        return (
            "is not a valid Secret name (a DNS subdomain: lower-case letters, digits, '-' and "
            "'.', each dot-separated part starting and ending with a letter or digit, at most "
            "253 characters)"
        )
    return ""


def data_key_error(key: str) -> str:
    if len(key) > SUBDOMAIN_MAX or not _CONFIG_KEY.fullmatch(key) or key.startswith(".."):
        return (
            "is not a valid Secret data key (letters, digits, '-', '_' and '.', at most 253 "
            "characters, not '.' and not starting with '..')"
        )
    if key == ".":
        return "is not a valid Secret data key (it must not be '.')"
    return ""


def qualified_name_error(key: str) -> str:
    """A label or annotation key: ``[prefix/]name``, the prefix a DNS subdomain."""
    prefix, slash, name = key.rpartition("/")
    if (
        not name
        or len(name) > _NAME_PART_MAX
        or not _QUALIFIED_NAME.fullmatch(name)
        or (slash and (not prefix or secret_name_error(prefix)))
    ):
        return (
            "is not a valid key (an optional DNS subdomain prefix and '/', then at most 63 "
            "letters, digits, '-', '_' or '.', starting and ending with a letter or digit)"
        )
    return ""


def label_value_error(value: str) -> str:
    if value and (len(value) > _NAME_PART_MAX or not _QUALIFIED_NAME.fullmatch(value)):
        return (
            "is not a valid label value (at most 63 letters, digits, '-', '_' or '.', starting "
            "and ending with a letter or digit)"
        )
    return ""


def annotations_size_error(annotations: Mapping[str, str]) -> str:
    size = sum(len(key.encode()) + len(value.encode()) for key, value in annotations.items())
    if size > ANNOTATIONS_MAX_BYTES:
        return f"{size} bytes in all, more than the API's {ANNOTATIONS_MAX_BYTES}"
    return ""
