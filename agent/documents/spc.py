"""SecretProviderClass documents (API objects or YAML manifests) → the model's fields.

The CRD (upstream §10.1) types ``spec.parameters`` as ``map[string]string`` and every other
field loosely, and an API server without the CRD's schema (or a YAML file) can hold anything:
each check here names the field at fault, so the message kubelet turns into a pod event tells
the owner what to fix.
"""

from __future__ import annotations

import sys
from collections.abc import Callable, Mapping
from typing import TypeGuard

from agent.model import ANNOTATION_PREFIX, SecretProviderClass

GROUP = "secrets-store.csi.x-k8s.io"
API_VERSIONS = frozenset({f"{GROUP}/v1", f"{GROUP}/v1alpha1"})
KIND = "SecretProviderClass"

Key = tuple[str, str]  # (namespace, name)


class InvalidDocument(ValueError):
    """A document that is a SecretProviderClass but cannot be used; ``key`` when it is known."""

    def __init__(self, reason: str, key: Key | None = None) -> None:
        super().__init__(reason)
        self.reason = reason
        self.key = key


def is_spc(document: object) -> TypeGuard[Mapping[str, object]]:
    if not isinstance(document, Mapping) or document.get("kind") != KIND:
        return False
    # Other groups' kinds of the same name, or unknown versions, are not served by the CRD.
    return document.get("apiVersion") in API_VERSIONS


def identity(
    document: Mapping[str, object], default_namespace: str = "default"
) -> tuple[Key, Mapping[str, object]]:
    """``((namespace, name), metadata)``; InvalidDocument when the metadata is unusable."""
    metadata = document.get("metadata")
    if not isinstance(metadata, Mapping):
        raise InvalidDocument("metadata must be a mapping")
    name = metadata.get("name")
    namespace = metadata.get("namespace") or default_namespace
    if not isinstance(name, str) or not name:
        raise InvalidDocument("metadata.name must be a non-empty string")
    if not isinstance(namespace, str):
        raise InvalidDocument(f"metadata.namespace of {name} must be a string")
    return (namespace, name), metadata


def agent_annotations(metadata: Mapping[str, object]) -> dict[str, str]:
    """The string annotations under the agent's prefix (``secrets-store.csi.k8s.io/``)."""
    annotations = metadata.get("annotations")
    if not isinstance(annotations, Mapping):
        return {}
    return {
        key: value
        for key, value in annotations.items()
        if isinstance(key, str) and key.startswith(ANNOTATION_PREFIX) and isinstance(value, str)
    }


def spec_fields(
    document: Mapping[str, object], key: Key
) -> tuple[str, dict[str, str], tuple[Mapping[str, object], ...]]:
    """``(spec.provider, spec.parameters, spec.secretObjects)``, each type-checked."""
    spec = document.get("spec") or {}
    if not isinstance(spec, Mapping):
        raise InvalidDocument("spec must be a mapping", key)
    provider = spec.get("provider") or ""
    if not isinstance(provider, str):
        raise InvalidDocument("spec.provider must be a string", key)
    return (
        sys.intern(provider),  # a handful of names shared by every class in the cluster
        _parameters(spec.get("parameters"), key),
        _objects(spec.get("secretObjects"), key),
    )


def decode(
    document: Mapping[str, object],
    default_namespace: str,
    uid: Callable[[Mapping[str, object], Key], str],
    generation: Callable[[Mapping[str, object], Key], int],
) -> SecretProviderClass:
    """The model of a class document; ``uid`` and ``generation`` say where those come from
    (the API's metadata, or standalone mode's stand-ins). InvalidDocument names the field.
    The keys of ``parameters`` and ``secret_objects`` are interned (``_with_interned_keys``)."""
    key, metadata = identity(document, default_namespace)
    provider, parameters, secret_objects = spec_fields(document, key)
    return SecretProviderClass(
        name=key[1],
        namespace=key[0],
        provider=provider,
        parameters=parameters,
        secret_objects=secret_objects,
        uid=uid(metadata, key),
        generation=generation(metadata, key),
        annotations=agent_annotations(metadata),
    )


def _parameters(value: object, key: Key) -> dict[str, str]:
    if value is None:
        return {}
    if not isinstance(value, Mapping):
        raise InvalidDocument("spec.parameters must be a mapping of strings", key)
    for name, item in value.items():
        # The CRD types parameters as map[string]string: quote numbers and booleans in YAML.
        if not isinstance(item, str):
            raise InvalidDocument(
                f'spec.parameters.{name}: Invalid value: "{_json_type(item)}": '
                "must be of type string (quote it in the YAML)",
                key,
            )
    return {sys.intern(str(name)): item for name, item in value.items()}


def _json_type(value: object) -> str:
    """The OpenAPI type the API server names when it refuses a value (never the value)."""
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "boolean"
    if isinstance(value, int) or (isinstance(value, float) and value.is_integer()):
        return "integer"
    if isinstance(value, float):
        return "number"
    if isinstance(value, str):
        return "string"
    return "object" if isinstance(value, Mapping) else "array"


def _objects(value: object, key: Key) -> tuple[Mapping[str, object], ...]:
    if value is None:
        return ()
    if not isinstance(value, list) or not all(isinstance(item, Mapping) for item in value):
        raise InvalidDocument("spec.secretObjects must be a list of mappings", key)
    return tuple(_with_interned_keys(item) for item in value)


def _with_interned_keys(mapping: Mapping[str, object]) -> dict[str, object]:
    """A copy whose keys, at every depth, are interned strings. Every class in the cluster
    is cached, and each document's parse makes its own copies of the same few keys
    (``secretName``, ``data``, ``objectName``, ``key``, ``roleName``...): shared, a class of
    three objects takes about a sixth less (docs/benchmarks.md, SPC cache size). Exact type
    checks, not isinstance: parsed JSON and YAML are plain dicts and lists, and this runs
    for every class on every list and watch event (about 1 µs per object, a third of what
    the isinstance form took)."""
    copy: dict[str, object] = {}
    for name, value in mapping.items():
        kept = value
        if type(value) is dict:
            kept = _with_interned_keys(value)
        elif type(value) is list:
            kept = [_with_interned_keys(x) if type(x) is dict else x for x in value]
        copy[sys.intern(name) if type(name) is str else name] = kept
    return copy
