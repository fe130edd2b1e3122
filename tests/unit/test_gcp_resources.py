"""resourceName validation and REST URLs (upstream's four shapes, stricter segments)."""

from __future__ import annotations

import pytest

from agent.errors import InvalidSecretProviderClass
from agent.providers.gcp.resources import parse_resource
from agent.providers.gcp.settings import Endpoints

ENDPOINTS = Endpoints()


@pytest.mark.parametrize(
    ("name", "api", "location", "url"),
    [
        (
            "projects/p-1/secrets/db/versions/latest",
            "secretmanager",
            "",
            "https://secretmanager.googleapis.com/v1/projects/p-1/secrets/db/versions/latest:access",
        ),
        (
            "projects/123/secrets/db_2/versions/7",
            "secretmanager",
            "",
            "https://secretmanager.googleapis.com/v1/projects/123/secrets/db_2/versions/7:access",
        ),
        (
            "projects/p/locations/us-east1/secrets/db/versions/stable",
            "secretmanager",
            "us-east1",
            "https://secretmanager.us-east1.rep.googleapis.com/v1/projects/p/locations/us-east1"
            "/secrets/db/versions/stable:access",
        ),
        (
            "projects/p/locations/global/parameters/cfg/versions/v1",
            "parametermanager",
            "",
            "https://parametermanager.googleapis.com/v1/projects/p/locations/global"
            "/parameters/cfg/versions/v1:render",
        ),
        (
            "projects/p/locations/europe-west4/parameters/cfg/versions/2024-01",
            "parametermanager",
            "europe-west4",
            "https://parametermanager.europe-west4.rep.googleapis.com/v1/projects/p/locations"
            "/europe-west4/parameters/cfg/versions/2024-01:render",
        ),
        (
            "projects/example.com:app/secrets/db/versions/1",
            "secretmanager",
            "",
            "https://secretmanager.googleapis.com/v1/projects/example.com:app/secrets/db"
            "/versions/1:access",
        ),
    ],
)
def test_valid_names(name: str, api: str, location: str, url: str) -> None:
    resource = parse_resource("secrets[0].resourceName", name)
    assert (resource.name, resource.api, resource.location) == (name, api, location)
    assert resource.url(ENDPOINTS) == url


@pytest.mark.parametrize(
    ("name", "why"),
    [
        ("", "must be one of"),
        ("projects/p/secrets/db", "must be one of"),
        ("projects/p/secrets/db/versions/", "must be one of"),
        ("x/projects/p/secrets/db/versions/1", "must be one of"),  # upstream's regex allows it
        ("projects/p/secrets/db/versions/1/extra", "must be one of"),
        ("projects/p/secrets/db/versions/0", "version '0'"),
        ("projects/p/secrets/db/versions/-1", "version '-1'"),
        ("projects/p/secrets/db/versions/1.5", "version '1.5'"),
        ("projects/p/secrets/d b/versions/1", "'d b' is not a valid secret ID"),
        ("projects/p?x/secrets/db/versions/1", "is not a valid project"),
        ("projects/p/locations/Evil.com/secrets/db/versions/1", "not a valid location"),
        ("projects/p/locations/a:443/secrets/db/versions/1", "not a valid location"),
        ("projects/p/locations/" + "a" * 31 + "/secrets/db/versions/1", "longer than 30"),
        ("projects/p/parameters/cfg/versions/1", "a parameter needs locations/"),
        (
            "projects/p/locations/global/parameters/cfg/versions/a.b",
            "not a valid parameter version",
        ),
    ],
)
def test_invalid_names_name_the_field(name: str, why: str) -> None:
    with pytest.raises(InvalidSecretProviderClass) as info:
        parse_resource("secrets[3].resourceName", name)
    assert info.value.message.startswith("secrets[3].resourceName: invalid resourceName")
    assert why in info.value.message


def test_custom_endpoints_replace_the_location_placeholder() -> None:
    endpoints = Endpoints(
        secret_manager="https://sm.psc.example",
        secret_manager_regional="https://sm-{location}.psc.example/base",
    )
    regional = parse_resource("f", "projects/p/locations/us-west1/secrets/s/versions/1")
    assert regional.url(endpoints) == (
        "https://sm-us-west1.psc.example/base/v1/projects/p/locations/us-west1/secrets/s"
        "/versions/1:access"
    )
