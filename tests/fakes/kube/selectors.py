"""``labelSelector`` and ``fieldSelector`` query parameters, parsed and matched as
``k8s.io/apimachinery/pkg/labels`` and ``.../fields`` do.

Labels: ``k=v``, ``k==v``, ``k!=v``, ``k in (a,b)``, ``k notin (a,b)``, ``k``, ``!k``,
``k>1``, ``k<1``; ``!=`` and ``notin`` also match objects without the label. Fields: ``k=v``,
``k==v``, ``k!=v`` joined by commas (``\\,``, ``\\=`` and ``\\\\`` escape), only on the labels the
resource supports: anything else is 400 ``field label not supported``.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Mapping
from dataclasses import dataclass

from tests.fakes.kube.status import ApiError, bad_request

Matcher = Callable[[Mapping[str, str]], bool]

_KEY = re.compile(
    r"^([a-z0-9]([-a-z0-9]*[a-z0-9])?(\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*/)?"
    r"[A-Za-z0-9]([-A-Za-z0-9_.]*[A-Za-z0-9])?$"
)
_VALUE = re.compile(r"^([A-Za-z0-9]([-A-Za-z0-9_.]*[A-Za-z0-9])?)?$")
_SET = re.compile(r"^\s*(\S+)\s+(in|notin)\s+\((.*)\)\s*$")
_COMPARE = re.compile(r"^\s*(!?)([^!=<>\s]+)\s*(==|=|!=|>|<)?\s*(.*?)\s*$")


@dataclass(frozen=True)
class Requirement:
    key: str
    operator: str  # "=", "!=", "in", "notin", "exists", "!", ">", "<"
    values: tuple[str, ...] = ()

    def matches(self, labels: Mapping[str, str]) -> bool:
        present = self.key in labels
        value = labels.get(self.key, "")
        if self.operator == "exists":
            return present
        if self.operator == "!":
            return not present
        if self.operator in ("=", "in"):
            return present and value in self.values
        if self.operator in ("!=", "notin"):
            return not present or value not in self.values
        if not present or not value.lstrip("-").isdigit():
            return False
        limit = int(self.values[0])
        return int(value) > limit if self.operator == ">" else int(value) < limit


def _split_top_level(text: str) -> list[str]:
    """Split on commas outside parentheses."""
    parts, depth, current = [], 0, ""
    for char in text:
        depth += {"(": 1, ")": -1}.get(char, 0)
        if char == "," and depth == 0:
            parts.append(current)
            current = ""
        else:
            current += char
    parts.append(current)
    return [part for part in parts if part.strip()]


def _parse_label_requirement(text: str) -> Requirement:
    found = _SET.match(text)
    if found:
        key, operator, raw = found.groups()
        values = tuple(v.strip() for v in raw.split(",") if v.strip())
        return _checked(Requirement(key, operator, values), text)
    found = _COMPARE.match(text)
    if not found:
        raise bad_request(f"unable to parse requirement: {text!r}")
    negated, key, operator, value = found.groups()
    if negated:
        if operator:
            raise bad_request(f"unable to parse requirement: {text!r}")
        return _checked(Requirement(key, "!"), text)
    if not operator:
        return _checked(Requirement(key, "exists"), text)
    if operator in (">", "<") and not value.lstrip("-").isdigit():
        raise bad_request(
            f"unable to parse requirement: for '{operator}', '<', '>' operators, "
            f"exactly one value is required and it must be an integer: {text!r}"
        )
    return _checked(Requirement(key, "=" if operator == "==" else operator, (value,)), text)


def _checked(requirement: Requirement, text: str) -> Requirement:
    if not _KEY.match(requirement.key) or len(requirement.key.split("/")[-1]) > 63:
        raise bad_request(
            f'unable to parse requirement: {text!r}: invalid label key "{requirement.key}"'
        )
    for value in requirement.values:
        if len(value) > 63 or (requirement.operator not in (">", "<") and not _VALUE.match(value)):
            raise bad_request(
                f'unable to parse requirement: {text!r}: invalid label value "{value}"'
            )
    return requirement


def parse_label_selector(text: str | None) -> Matcher:
    """A predicate over an object's ``metadata.labels``; empty text matches everything."""
    requirements = [_parse_label_requirement(part) for part in _split_top_level(text or "")]
    return lambda labels: all(r.matches(labels) for r in requirements)


def _split_escaped(text: str, separator: str) -> list[str]:
    parts, current, escaped = [], "", False
    for char in text:
        if escaped:
            current += char
            escaped = False
        elif char == "\\":
            escaped = True
        elif char == separator:
            parts.append(current)
            current = ""
        else:
            current += char
    parts.append(current)
    return parts


def parse_field_selector(text: str | None, supported: set[str]) -> Matcher:
    """A predicate over a resource's field labels (``ResourceType.fields``)."""
    terms: list[tuple[str, str, str]] = []
    for part in _split_escaped(text or "", ","):
        if not part:
            continue
        match = re.match(r"^(.*?)(!=|==|=)(.*)$", part)
        if not match:
            raise bad_request(f"invalid selector: '{text}'; can't understand '{part}'")
        key, operator, value = match.groups()
        if key not in supported:
            raise ApiError(400, "BadRequest", f"field label not supported: {key}")
        terms.append((key, operator, value.replace("\\", "")))

    def matches(fields: Mapping[str, str]) -> bool:
        for key, operator, value in terms:
            equal = fields.get(key, "") == value
            if equal == (operator == "!="):
                return False
        return True

    return matches
