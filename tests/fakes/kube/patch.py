"""PATCH bodies: JSON merge patch (RFC 7386), JSON patch (RFC 6902, via ``jsonpatch``) and
strategic merge patch for built-in types.

Strategic merge here covers what clients send in practice: maps merge like a merge patch,
lists named in :data:`MERGE_KEYS` merge element-wise by their key (``ownerReferences`` by
``uid``, ``containers`` by ``name``...), ``finalizers`` merge as a set, ``$patch: delete`` /
``$patch: replace`` directives, ``$deleteFromPrimitiveList/<field>``; ``$setElementOrder`` and
``$retainKeys`` are accepted and ignored. Other lists are replaced, as for atomic lists.
Server-side apply (``application/apply-patch+yaml``) is not implemented: 415."""

from __future__ import annotations

import copy
import json
from typing import Any

import jsonpatch

from tests.fakes.kube.resources import JSON_PATCH, MERGE_PATCH, STRATEGIC_MERGE_PATCH
from tests.fakes.kube.status import ApiError, bad_request, unsupported_media_type

Object = dict[str, Any]

MERGE_KEYS = {
    "ownerReferences": "uid",
    "containers": "name",
    "initContainers": "name",
    "ephemeralContainers": "name",
    "volumes": "name",
    "volumeMounts": "mountPath",
    "env": "name",
    "ports": "containerPort",
    "imagePullSecrets": "name",
    "conditions": "type",
    "tolerations": "key",
}
SET_LISTS = ("finalizers",)


def merge_patch(target: Any, patch: Any) -> Any:
    """RFC 7386: objects merge recursively, ``null`` deletes, anything else replaces."""
    if not isinstance(patch, dict):
        return copy.deepcopy(patch)
    result = copy.deepcopy(target) if isinstance(target, dict) else {}
    for key, value in patch.items():
        if value is None:
            result.pop(key, None)
        else:
            result[key] = merge_patch(result.get(key), value)
    return result


def strategic_merge_patch(target: Any, patch: Any) -> Any:
    if not isinstance(patch, dict):
        return copy.deepcopy(patch)
    if patch.get("$patch") == "replace":
        return {k: copy.deepcopy(v) for k, v in patch.items() if k != "$patch"}
    result = copy.deepcopy(target) if isinstance(target, dict) else {}
    for key, value in patch.items():
        if key.startswith(("$setElementOrder/", "$retainKeys")) or key == "$patch":
            continue
        if key.startswith("$deleteFromPrimitiveList/"):
            field = key.split("/", 1)[1]
            result[field] = [v for v in result.get(field) or [] if v not in value]
        elif value is None:
            result.pop(key, None)
        elif isinstance(value, list) and key in MERGE_KEYS:
            result[key] = _merge_list(result.get(key) or [], value, MERGE_KEYS[key])
        elif isinstance(value, list) and key in SET_LISTS:
            result[key] = list(dict.fromkeys([*(result.get(key) or []), *value]))
        else:
            result[key] = strategic_merge_patch(result.get(key), value)
    return result


def _merge_list(current: list[Any], patch: list[Any], merge_key: str) -> list[Any]:
    if any(isinstance(item, dict) and item.get("$patch") == "replace" for item in patch):
        return [item for item in patch if not (isinstance(item, dict) and "$patch" in item)]
    merged = copy.deepcopy(current)
    for item in patch:
        if not isinstance(item, dict) or merge_key not in item:
            merged.append(copy.deepcopy(item))
            continue
        index = next(
            (
                i
                for i, existing in enumerate(merged)
                if isinstance(existing, dict) and existing.get(merge_key) == item[merge_key]
            ),
            None,
        )
        if item.get("$patch") == "delete":
            if index is not None:
                merged.pop(index)
        elif index is None:
            merged.append({k: v for k, v in item.items() if k != "$patch"})
        else:
            merged[index] = strategic_merge_patch(merged[index], item)
    return merged


def apply_patch(target: Object, content_type: str, raw: bytes, allowed: tuple[str, ...]) -> Object:
    """Apply a PATCH body of ``content_type`` (parameters after ``;`` ignored)."""
    media = content_type.split(";", maxsplit=1)[0].strip().lower()
    if media not in allowed:
        raise unsupported_media_type(media, list(allowed))
    try:
        body = json.loads(raw or b"null")
    except ValueError as error:
        raise bad_request(f"error decoding patch: {error}") from None
    if media == MERGE_PATCH:
        if not isinstance(body, dict):
            raise bad_request("json: cannot unmarshal non-object into a merge patch")
        return dict(merge_patch(target, body))
    if media == STRATEGIC_MERGE_PATCH:
        if not isinstance(body, dict):
            raise bad_request("json: cannot unmarshal non-object into a strategic merge patch")
        return dict(strategic_merge_patch(target, body))
    if media == JSON_PATCH:
        if not isinstance(body, list):
            raise bad_request("json: cannot unmarshal object into Go value of type jsonpatch.Patch")
        try:
            return dict(jsonpatch.JsonPatch(body).apply(target))
        except (jsonpatch.JsonPatchException, jsonpatch.JsonPointerException) as error:
            raise ApiError(
                422,
                "Invalid",
                f"the server rejected our request due to an error in our request: {error}",
            ) from None
    raise unsupported_media_type(media, list(allowed))
