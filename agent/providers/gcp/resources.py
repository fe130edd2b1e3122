"""``resourceName`` values: which API serves them, where, and the REST URL to fetch them.

The upstream provider accepts four shapes (its ``util/constants.go``):

- ``projects/*/secrets/*/versions/*`` (Secret Manager, global)
- ``projects/*/locations/*/secrets/*/versions/*`` (Secret Manager, regional)
- ``projects/*/locations/global/parameters/*/versions/*`` (Parameter Manager, global)
- ``projects/*/locations/*/parameters/*/versions/*`` (Parameter Manager, regional)

Upstream's patterns are only anchored at the end; here the whole value must match, and each
segment must be a plausible ID. A location becomes part of a host name
(``secretmanager.<location>.rep.googleapis.com``), so it must be a DNS label: anything else
could send the pod's access token to a host of the SecretProviderClass author's choosing.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Literal
from urllib.parse import quote

from agent.errors import InvalidSecretProviderClass
from agent.providers.gcp.settings import Endpoints

Api = Literal["secretmanager", "parametermanager"]

# Longest location upstream accepts (util/constants.go: locationLengthLimit).
LOCATION_MAX = 30
_SHAPE = re.compile(
    r"projects/(?P<project>[^/]+)"
    r"(?:/locations/(?P<location>[^/]+))?"
    r"/(?P<collection>secrets|parameters)/(?P<id>[^/]+)"
    r"/versions/(?P<version>[^/]+)"
)
# Project IDs, numbers and legacy domain-scoped IDs ("example.com:app").
_PROJECT = re.compile(r"[A-Za-z0-9][A-Za-z0-9.:_-]{0,127}")
_LOCATION = re.compile(r"[a-z0-9](?:[a-z0-9-]*[a-z0-9])?")
_ID = re.compile(r"[A-Za-z0-9_-]{1,255}")
# A version number, "latest", or a version alias (letters first) for Secret Manager.
_SECRET_VERSION = re.compile(r"[1-9][0-9]{0,18}|[A-Za-z][A-Za-z0-9_-]{0,62}")
_PARAMETER_VERSION = re.compile(r"[A-Za-z0-9_-]{1,63}")
_SHAPES_HELP = (
    "projects/<project>/secrets/<secret>/versions/<version|latest>, "
    "projects/<project>/locations/<location>/secrets/<secret>/versions/<version|latest>, "
    "or projects/<project>/locations/<location>/parameters/<parameter>/versions/<version>"
)


@dataclass(frozen=True, slots=True)
class Resource:
    """One object to fetch: ``name`` is the resourceName exactly as written."""

    name: str
    api: Api
    location: str  # "" for the global endpoint

    def url(self, endpoints: Endpoints) -> str:
        """The REST method URL: ``.../v1/<name>:access`` or ``.../v1/<name>:render``."""
        if self.api == "secretmanager":
            base = endpoints.secret_manager_regional if self.location else endpoints.secret_manager
            method = "access"
        else:
            regional = endpoints.parameter_manager_regional
            base = regional if self.location else endpoints.parameter_manager
            method = "render"
        base = base.replace("{location}", self.location)
        # Every segment was checked against a character class; quoting keeps that promise
        # should the classes ever widen.
        path = "/".join(quote(segment, safe=":") for segment in self.name.split("/"))
        return f"{base}/v1/{path}:{method}"

    @property
    def service(self) -> str:
        return "Secret Manager" if self.api == "secretmanager" else "Parameter Manager"


def parse_resource(field: str, name: str) -> Resource:
    """Validate a resourceName; raise InvalidSecretProviderClass naming ``field``."""
    match = _SHAPE.fullmatch(name)
    if match is None:
        raise _invalid(field, name, f"must be one of {_SHAPES_HELP}")
    project, location = match["project"], match["location"] or ""
    if not _PROJECT.fullmatch(project):
        raise _invalid(field, name, f"{project!r} is not a valid project ID or number")
    if match["collection"] == "parameters":
        if not location:
            raise _invalid(field, name, "a parameter needs locations/<location>/ (or global)")
        _check_location(field, name, location)
        _check(field, name, "parameter ID", match["id"], _ID)
        _check(field, name, "parameter version", match["version"], _PARAMETER_VERSION)
        return Resource(name, "parametermanager", "" if location == "global" else location)
    if location:
        _check_location(field, name, location)
    _check(field, name, "secret ID", match["id"], _ID)
    version = match["version"]
    if not _SECRET_VERSION.fullmatch(version):
        raise _invalid(
            field,
            name,
            f"version {version!r} must be a version number, 'latest' or a version alias",
        )
    return Resource(name, "secretmanager", location)


def _check_location(field: str, name: str, location: str) -> None:
    if len(location) > LOCATION_MAX:
        raise _invalid(field, name, f"location {location!r} is longer than {LOCATION_MAX}")
    _check(field, name, "location", location, _LOCATION)


def _check(field: str, name: str, what: str, value: str, pattern: re.Pattern[str]) -> None:
    if not pattern.fullmatch(value):
        raise _invalid(field, name, f"{value!r} is not a valid {what}")


def _invalid(field: str, name: str, why: str) -> InvalidSecretProviderClass:
    shown = name if len(name) <= 300 else name[:300] + "..."
    return InvalidSecretProviderClass(f"{field}: invalid resourceName {shown!r}: {why}")
