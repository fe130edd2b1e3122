"""Fetched values → the volume's files and object versions (pure functions).

As ASCP (``provider/secret_value.go``, ``server/server.go``): each object is written whole under
its file name (a binary secret as its raw bytes); each ``jmesPath`` entry evaluates a JMESPath
expression over the object's JSON and writes the resulting string to its own file; a version's
id is the file name and its value the object's VersionId (Secrets Manager) or version number
(SSM), which jmesPath files share with their object. Messages name the object and the path,
never the value.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import jmespath
from jmespath.exceptions import JMESPathError

from agent.errors import ProviderError
from agent.model import MountResult, ObjectVersion, SecretFile
from agent.providers.aws.fetch import Fetched
from agent.providers.aws.objects import AwsObject, JmesPathFile
from agent.providers.common.gojson import go_bytes, loads


def mount_result(fetched: Sequence[Fetched], default_mode: int) -> MountResult:
    files: list[SecretFile] = []
    versions: list[ObjectVersion] = []
    for item in fetched:
        obj = item.obj
        files.append(SecretFile(obj.file_name, _mode(obj.mode, default_mode), item.value))
        versions.append(ObjectVersion(obj.file_name, item.version))
        for entry, value in extract(obj, item.value):
            files.append(SecretFile(entry.file_name, _mode(entry.mode, default_mode), value))
            versions.append(ObjectVersion(entry.file_name, item.version))
    return MountResult(tuple(files), tuple(versions))


def extract(obj: AwsObject, value: bytes) -> list[tuple[JmesPathFile, bytes]]:
    """The string each ``jmesPath`` entry selects from the object's JSON."""
    if not obj.jmes:
        return []
    where = f"objects[{obj.index}]"
    document = _json(obj, value)
    extracted = []
    for position, entry in enumerate(obj.jmes):
        at = f"{where}.jmesPath[{position}].path"
        try:
            found = jmespath.search(entry.path, document)
        except JMESPathError:
            raise ProviderError(f"{at}: Invalid JMES Path: {entry.path}.") from None
        if found is None:
            raise ProviderError(
                f"{at}: JMES Path - {entry.path} for object alias - {entry.alias} does not "
                f"point to a valid object (in {obj.name})."
            )
        if not isinstance(found, str):
            raise ProviderError(
                f"{at}: Invalid JMES search result type for path:{entry.path}. Only string is "
                f"allowed (it selects {_kind(found)} in {obj.name})."
            )
        extracted.append((entry, go_bytes(found)))
    return extracted


def _json(obj: AwsObject, value: bytes) -> Any:
    try:
        # As ASCP's json.Unmarshal: invalid UTF-8 and lone surrogate escapes become U+FFFD
        # (a lone surrogate would otherwise fail to encode as the file's bytes), NaN is refused.
        return loads(value, use_number=False)
    except ValueError:
        raise ProviderError(
            f"objects[{obj.index}].jmesPath: Invalid JSON used with jmesPath in secret: {obj.name}."
        ) from None


def _kind(value: object) -> str:
    if isinstance(value, bool):
        return "a boolean"
    if isinstance(value, int | float):
        return "a number"
    if isinstance(value, list):
        return "a list"
    if isinstance(value, dict):
        return "an object"
    return type(value).__name__


def _mode(mode: int | None, default_mode: int) -> int:
    return default_mode if mode is None else mode
