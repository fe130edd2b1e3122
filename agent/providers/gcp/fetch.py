"""Fetch one resource: Secret Manager ``AccessSecretVersion`` or Parameter Manager
``RenderParameterVersion``, through their documented REST methods.

``GET /v1/{name}:access`` answers ``{"name": <resolved version>, "payload": {"data": <base64>,
"dataCrc32c": <int64 as a decimal string>}}``. The checksum is verified (Secret Manager stores
one for every version); a mismatch means the bytes were damaged on the way and nothing is
written. ``name`` is the resolved version (``latest`` and aliases become the number, the
project ID its number): upstream reports it as the object's version, and so does the agent.

``GET /v1/{name}:render`` answers ``{"parameterVersion": <name>, "renderedPayload": <base64>}``.
"""

from __future__ import annotations

import base64
import binascii
from dataclasses import dataclass, field
from typing import Any

import google_crc32c

from agent.errors import ProviderError
from agent.providers.gcp.http import GoogleHttp
from agent.providers.gcp.resources import Resource
from agent.providers.gcp.settings import Endpoints


@dataclass(frozen=True, slots=True)
class Fetched:
    version: str  # the resolved version resource name
    payload: bytes = field(repr=False)


class CorruptPayload(ProviderError):
    """The payload does not match its CRC32C checksum."""


async def fetch(http: GoogleHttp, endpoints: Endpoints, resource: Resource, token: str) -> Fetched:
    """Raise ApiFailure for an API error, ProviderError for a malformed or corrupt answer."""
    reply = await http.json("GET", resource.url(endpoints), service=resource.service, token=token)
    if resource.api == "secretmanager":
        return _secret_version(resource, reply)
    return _parameter_version(resource, reply)


def _secret_version(resource: Resource, reply: dict[str, Any]) -> Fetched:
    payload = reply.get("payload")
    if not isinstance(payload, dict):
        raise _malformed(resource, "no payload")
    data = _base64(resource, payload.get("data", ""))
    expected = payload.get("dataCrc32c")
    if expected is not None:
        # proto3 JSON writes int64 as a string; accept a number too.
        try:
            checksum = int(expected)
        except (TypeError, ValueError):
            raise _malformed(resource, "dataCrc32c is not an integer") from None
        if google_crc32c.value(data) != checksum:
            raise CorruptPayload(
                "the payload does not match its CRC32C checksum (damaged in transit); refused"
            )
    return Fetched(_version(reply.get("name"), resource), data)


def _parameter_version(resource: Resource, reply: dict[str, Any]) -> Fetched:
    data = _base64(resource, reply.get("renderedPayload", ""))
    return Fetched(_version(reply.get("parameterVersion"), resource), data)


def _version(value: object, resource: Resource) -> str:
    if not isinstance(value, str) or not value:
        raise _malformed(resource, "no version name")
    return value


def _base64(resource: Resource, value: object) -> bytes:
    if not isinstance(value, str):
        raise _malformed(resource, "the payload is not base64 text")
    try:
        return base64.b64decode(value, validate=True)
    except (binascii.Error, ValueError):
        raise _malformed(resource, "the payload is not valid base64") from None


def _malformed(resource: Resource, why: str) -> ProviderError:
    return ProviderError(f"unexpected answer from {resource.service}: {why}")
