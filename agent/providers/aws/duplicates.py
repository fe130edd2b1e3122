"""Which objects of one SecretProviderClass may not stand together (ASCP's duplicate rules).

ASCP (``NewSecretDescriptorList``) refuses a second object of the same name in four cases, and
an alias used twice across objects and jmesPath entries. Beyond ASCP, two entries that would
write the same file (``a/b`` and ``a_b`` after path translation) are refused too.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import TYPE_CHECKING

from agent.errors import InvalidSecretProviderClass

if TYPE_CHECKING:
    from agent.providers.aws.objects import AwsObject


def _fail(where: str, message: str) -> InvalidSecretProviderClass:
    return InvalidSecretProviderClass(f"{where}: {message}")


def check_duplicates(objects: Sequence[AwsObject]) -> None:
    """ASCP's duplicate rules, then one more: no two entries may write the same file."""
    latest: dict[str, AwsObject] = {}  # ASCP compares with the last object of the same name
    aliases: dict[str, str] = {}  # alias -> where it was first used
    for obj in objects:
        where = f"objects[{obj.index}]"
        previous = latest.get(obj.name)
        if previous is not None:
            _same_name(obj, previous)
        latest[obj.name] = obj
        if obj.alias:
            if obj.alias in aliases:
                raise _fail(
                    f"{where}.objectAlias",
                    f"found duplicate object alias {obj.alias} (also {aliases[obj.alias]})",
                )
            aliases[obj.alias] = f"{where}.objectAlias"
        for position, entry in enumerate(obj.jmes):
            at = f"{where}.jmesPath[{position}].objectAlias"
            if entry.alias in aliases:
                raise _fail(
                    at,
                    "Name already in use for objectAlias: found duplicate object alias "
                    f"{entry.alias} in JMES path entry {entry.path} (also {aliases[entry.alias]})",
                )
            aliases[entry.alias] = at
    _distinct_files(objects)


def _same_name(obj: AwsObject, found: AwsObject) -> None:
    """The four cases in which ASCP refuses a second object of the same name."""
    where = f"objects[{obj.index}]"
    prefix = f"found descriptor with duplicate object name {obj.name} (also objects[{found.index}])"
    alias, label = obj.alias, obj.primary.label
    found_alias, found_label = found.alias, found.primary.label
    if alias and alias == found_alias and not label and not found_label:
        raise _fail(
            f"{where}.objectAlias",
            f"{prefix}, duplicate object alias {alias}, and no version label",
        )
    if not alias and not found_alias and label and label == found_label:
        raise _fail(
            f"{where}.objectVersionLabel",
            f"{prefix}, no object alias, and duplicate version label {label}",
        )
    if alias and alias == found_alias and label and label == found_label:
        raise _fail(
            f"{where}.objectAlias",
            f"{prefix}, duplicate object alias {alias}, and duplicate version label {label}",
        )
    if not alias and not found_alias and not label and not found_label:
        raise _fail(
            f"{where}.objectName",
            f"{prefix}, no object alias, and no version label (give one of them an objectAlias)",
        )


def _distinct_files(objects: Sequence[AwsObject]) -> None:
    written: dict[str, str] = {}
    for obj in objects:
        where = f"objects[{obj.index}]"
        entries = [(f"{where}.{'objectAlias' if obj.alias else 'objectName'}", obj.file_name)]
        entries += [
            (f"{where}.jmesPath[{i}].objectAlias", entry.file_name)
            for i, entry in enumerate(obj.jmes)
        ]
        for field, name in entries:
            if name in written:
                raise _fail(
                    field, f"writes file {name!r}, as {written[name]} does; give one an objectAlias"
                )
            written[name] = field
