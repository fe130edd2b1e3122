"""Parse upstream's flat attribute map into a validated AWS mount configuration.

Parameter names and meanings are ASCP's (``server/server.go``): ``region``, ``failoverRegion``,
``pathTranslation``, ``usePodIdentity``, ``preferredAddressType`` and ``objects``. Everything is
checked before any request is sent; messages name the parameter.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass, replace
from typing import Literal

from agent.errors import InvalidSecretProviderClass
from agent.providers.aws.node_region import REGION_LABEL, NodeRegion
from agent.providers.aws.objects import AwsObject, parse_objects
from agent.providers.common.gostrconv import parse_bool
from agent.providers.common.goyaml import Decoder, load
from agent.providers.common.parameters import require_parameter

AddressType = Literal["auto", "ipv4", "ipv6"]

# A region becomes a host name label in the endpoint: refuse anything that could not be one.
_REGION = re.compile(r"^[a-z0-9](?:[a-z0-9-]{0,62})$")
DEFAULT_TRANSLATION = "_"

OBJECTS_SHAPE = "a YAML list of objectName, objectType ..."


@dataclass(frozen=True, slots=True)
class AwsConfig:
    regions: tuple[str, ...]  # primary, then the failover region if any
    use_pod_identity: bool
    address_type: AddressType
    objects: tuple[AwsObject, ...]
    warnings: tuple[str, ...] = ()
    path_translation: str = DEFAULT_TRANSLATION  # "" when off


def parse_config(
    attributes: Mapping[str, str], env: Mapping[str, str], node: NodeRegion | None = None
) -> AwsConfig:
    """Validate the attributes; raise InvalidSecretProviderClass naming the parameter.

    The primary region is the ``region`` parameter, else ``AWS_REGION`` in the agent's
    environment, else the node's ``topology.kubernetes.io/region`` label (ASCP's order; the
    provider reads it into ``node``: node_region.py).
    """
    settings = parse_settings(attributes, env, node)
    text = require_parameter(attributes, "objects", OBJECTS_SHAPE)
    objects = objects_from(text, *objects_context(settings))
    return replace(settings, objects=objects)


def parse_settings(
    attributes: Mapping[str, str], env: Mapping[str, str], node: NodeRegion | None = None
) -> AwsConfig:
    """Every parameter but ``objects`` (left empty: see :func:`objects_from`)."""
    warnings: list[str] = []
    regions = _regions(attributes, env, node)
    translate = _translation(attributes.get("pathTranslation", ""))
    use_pod_identity = _bool("usePodIdentity", attributes.get("usePodIdentity", ""))
    address_type = _address_type(attributes.get("preferredAddressType", ""), warnings)
    return AwsConfig(regions, use_pod_identity, address_type, (), tuple(warnings), translate)


def objects_context(settings: AwsConfig) -> tuple[str, tuple[str, ...]]:
    """What :func:`objects_from` needs besides the text: path translation and regions."""
    return settings.path_translation, settings.regions


def objects_from(text: str, translate: str, regions: tuple[str, ...]) -> tuple[AwsObject, ...]:
    """The ``objects`` parameter, validated; pure, so its result may be cached by text."""
    # ASCP decodes with sigs.k8s.io/yaml (YAML 1.1 typing, then encoding/json rules).
    document = load(text, Decoder.SIGS_YAML, where="objects")
    objects = parse_objects(document, translate, regions)
    if not objects:
        raise InvalidSecretProviderClass("objects: no objects configured")
    return objects


def _regions(
    attributes: Mapping[str, str], env: Mapping[str, str], node: NodeRegion | None
) -> tuple[str, ...]:
    region = attributes.get("region", "")
    key = "region"
    if not region:
        region, key = env.get("AWS_REGION", ""), "AWS_REGION"
    if not region and node is not None:
        region, key = node.region, node.source
    if not region:
        raise InvalidSecretProviderClass(_no_region(node))
    _check_region(key, region)
    failover = attributes.get("failoverRegion", "")
    if not failover:
        return (region,)
    _check_region("failoverRegion", failover)
    if failover == region:
        raise InvalidSecretProviderClass(
            f"failoverRegion: {region}: failover region cannot be the same as the primary region"
        )
    return (region, failover)


def _no_region(node: NodeRegion | None) -> str:
    why = node.missing if node is not None else f"the node's {REGION_LABEL} label was not read"
    return (
        "region: not set: the SecretProviderClass has no 'region' parameter, the agent's "
        f"environment has no AWS_REGION, and {why}; set one of the three"
    )


def _check_region(key: str, region: str) -> None:
    if not _REGION.fullmatch(region):
        raise InvalidSecretProviderClass(
            f"{key}: {region[:64]!r} is not an AWS region name (e.g. us-east-1)"
        )


def _translation(value: str) -> str:
    if not value:
        return DEFAULT_TRANSLATION
    if value.lower() == "false":
        return ""
    # Go's len counts bytes: ASCP refuses a multi-byte character, and so do we.
    if len(value.encode()) != 1:
        raise InvalidSecretProviderClass(
            "pathTranslation: pathTranslation must be either 'False' or a single character string"
        )
    return value


def _bool(key: str, value: str) -> bool:
    """strconv.ParseBool, which ASCP uses for usePodIdentity; empty means false."""
    parsed = parse_bool(value) if value else False
    if parsed is not None:
        return parsed
    raise InvalidSecretProviderClass(
        f"{key}: failed to parse usePodIdentity value {value[:32]!r} (use true or false)"
    )


def _address_type(value: str, warnings: list[str]) -> AddressType:
    lowered = value.lower()
    if lowered in ("", "auto"):
        return "auto"
    if lowered == "ipv4":
        return "ipv4"
    if lowered == "ipv6":
        return "ipv6"
    # ASCP quietly falls back to auto; say so, since the value was probably meant.
    warnings.append(f"preferredAddressType: unknown value {value[:32]!r}, using auto")
    return "auto"
