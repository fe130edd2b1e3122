"""GcpProvider against the fake Google Cloud over real HTTP: parameters, files, versions,
workload identity federation, impersonation and token caching."""

from __future__ import annotations

import json
import time

import pytest

from agent.errors import InvalidSecretProviderClass, ProviderError, ServiceAccountNotFound
from agent.model import MountResult
from tests.support.gcp import PROJECT, GcpWorld

NUMBER = "123456789"


def files(result: MountResult) -> dict[str, bytes]:
    return {f.path: f.contents for f in result.files}


def modes(result: MountResult) -> dict[str, int]:
    return {f.path: f.mode for f in result.files}


def versions(result: MountResult) -> list[tuple[str, str]]:
    return [(v.id, v.version) for v in result.versions]


class Clock:
    def __init__(self) -> None:
        self.now = time.time()

    def __call__(self) -> float:
        return self.now


async def test_latest_and_pinned_versions_with_resolved_names(gcp: GcpWorld) -> None:
    state = gcp.cloud.state
    state.add_secret_version(PROJECT, "db", b"one")
    state.add_secret_version(PROJECT, "db", b"two")
    gcp.grant(PROJECT, "db")
    provider = gcp.provider()
    secrets = """
- resourceName: projects/proj-a/secrets/db/versions/latest
  fileName: current
- resourceName: projects/proj-a/secrets/db/versions/1
  fileName: first
"""
    result = await provider.mount(gcp.request(secrets))
    assert files(result) == {"current": b"two", "first": b"one"}
    assert modes(result) == {"current": 0o644, "first": 0o644}
    # Upstream: id is the resourceName as written, version the resolved name (project number).
    assert versions(result) == [
        ("projects/proj-a/secrets/db/versions/latest", f"projects/{NUMBER}/secrets/db/versions/2"),
        ("projects/proj-a/secrets/db/versions/1", f"projects/{NUMBER}/secrets/db/versions/1"),
    ]


async def test_path_wins_over_file_name_nested_paths_and_modes(gcp: GcpWorld) -> None:
    gcp.cloud.state.add_secret_version(PROJECT, "tls", b"key")
    gcp.grant(PROJECT, "tls")
    provider = gcp.provider()
    secrets = """
- resourceName: projects/proj-a/secrets/tls/versions/1
  fileName: ignored
  path: certs/tls.key
  mode: 0400
- resourceName: projects/proj-a/secrets/tls/versions/1
  fileName: decimal
  mode: 288
"""
    result = await provider.mount(gcp.request(secrets, default_mode=0o640))
    assert modes(result) == {"certs/tls.key": 0o400, "decimal": 0o440}
    # The same resource for two files is fetched once: both files see the same version.
    assert gcp.cloud.count(":access") == 1


async def test_regional_secret_uses_the_regional_endpoint(gcp: GcpWorld) -> None:
    gcp.cloud.state.add_secret_version(PROJECT, "eu", b"regional", location="europe-west4")
    gcp.grant(PROJECT, "eu")
    provider = gcp.provider()
    name = "projects/proj-a/locations/europe-west4/secrets/eu/versions/latest"
    result = await provider.mount(gcp.request([{"resourceName": name, "fileName": "eu"}]))
    assert files(result) == {"eu": b"regional"}
    assert versions(result) == [
        (name, f"projects/{NUMBER}/locations/europe-west4/secrets/eu/versions/1")
    ]
    assert gcp.cloud.requests[-1][1].startswith("/regional/europe-west4/v1/")


async def test_version_alias(gcp: GcpWorld) -> None:
    state = gcp.cloud.state
    state.add_secret_version(PROJECT, "api", b"old")
    state.add_secret_version(PROJECT, "api", b"new")
    state.secrets[(NUMBER, "", "api")].aliases["stable"] = 1
    gcp.grant(PROJECT, "api")
    provider = gcp.provider()
    name = "projects/proj-a/secrets/api/versions/stable"
    result = await provider.mount(gcp.request([{"resourceName": name, "fileName": "api"}]))
    assert files(result) == {"api": b"old"}
    assert versions(result) == [(name, f"projects/{NUMBER}/secrets/api/versions/1")]


async def test_extract_json_and_yaml_keys(gcp: GcpWorld) -> None:
    state = gcp.cloud.state
    state.add_secret_version(PROJECT, "json", json.dumps({"user": "alice", "n": 1}).encode())
    state.add_secret_version(PROJECT, "yaml", b"user: bob\nport: 5432\n")
    gcp.grant(PROJECT, "json")
    gcp.grant(PROJECT, "yaml")
    provider = gcp.provider()
    secrets = [
        {
            "resourceName": "projects/proj-a/secrets/json/versions/1",
            "fileName": "j",
            "extractJSONKey": "user",
        },
        {
            "resourceName": "projects/proj-a/secrets/yaml/versions/1",
            "fileName": "y",
            "extractYAMLKey": "user",
        },
    ]
    result = await provider.mount(gcp.request(secrets))
    assert files(result) == {"j": b"alice", "y": b"bob"}
    bad = [
        {
            "resourceName": "projects/proj-a/secrets/json/versions/1",
            "fileName": "n",
            "extractJSONKey": "n",
        }
    ]
    with pytest.raises(
        ProviderError, match=r"secrets\[0\]\.extractJSONKey: the value of 'n' is not a string"
    ):
        await provider.mount(gcp.request(bad))
    missing = [
        {
            "resourceName": "projects/proj-a/secrets/yaml/versions/1",
            "fileName": "x",
            "extractYAMLKey": "nope",
        }
    ]
    with pytest.raises(ProviderError, match=r"secrets\[0\]\.extractYAMLKey: key 'nope' not found"):
        await provider.mount(gcp.request(missing))


DB = [{"resourceName": "projects/proj-a/secrets/db/versions/1", "fileName": "pw"}]


def impersonating(gcp: GcpWorld, gsa: str = "app@proj-a.iam.gserviceaccount.com") -> str:
    """team-a/web is annotated with ``gsa``, which may read secret db and is impersonable by
    the pool principal of team-a/web."""
    gcp.accounts.add("team-a", "web", **{"iam.gke.io/gcp-service-account": gsa})
    gcp.cloud.state.add_secret_version(PROJECT, "db", b"pw")
    gcp.cloud.state.secrets[(NUMBER, "", "db")].readers.add(f"serviceAccount:{gsa}")
    gcp.cloud.state.token_creators[gsa] = {gcp.cloud.ksa_principal("team-a", "web")}
    return gsa


async def test_impersonation_through_the_service_account_annotation(gcp: GcpWorld) -> None:
    gsa = impersonating(gcp)
    provider = gcp.provider()
    request = gcp.request(DB)
    assert files(await provider.mount(request)) == {"pw": b"pw"}
    assert gcp.cloud.count("identitybindingtoken") == 1
    assert gcp.cloud.count(":generateAccessToken") == 1
    # Another pod of another service account without the grant is refused by IAM.
    gcp.accounts.add("team-b", "web", **{"iam.gke.io/gcp-service-account": gsa})
    with pytest.raises(
        ProviderError,
        match=r"impersonating app@proj-a.iam.gserviceaccount.com .*team-b/web.*PERMISSION_DENIED",
    ):
        await provider.mount(gcp.request(request.attributes["secrets"], namespace="team-b"))


async def test_impersonation_through_delegates(gcp: GcpWorld) -> None:
    final, middle = "final@proj-a.iam.gserviceaccount.com", "mid@proj-b.iam.gserviceaccount.com"
    gcp.accounts.add(
        "team-a",
        "web",
        **{
            "iam.gke.io/gcp-service-account": final,
            "iam.gke.io/gcp-service-account-delegates": json.dumps([middle]),
        },
    )
    state = gcp.cloud.state
    state.add_secret_version(PROJECT, "db", b"pw")
    state.secrets[(NUMBER, "", "db")].readers.add(f"serviceAccount:{final}")
    state.token_creators[middle] = {gcp.cloud.ksa_principal("team-a", "web")}
    state.token_creators[final] = {f"serviceAccount:{middle}"}
    provider = gcp.provider()
    request = gcp.request(DB)
    assert files(await provider.mount(request)) == {"pw": b"pw"}
    gcp.accounts.add(
        "team-a",
        "web",
        **{
            "iam.gke.io/gcp-service-account": final,
            "iam.gke.io/gcp-service-account-delegates": "mid",
        },
    )
    with pytest.raises(
        ProviderError,
        match="gcp-service-account-delegates of service account team-a/web: must be a JSON array",
    ):
        await provider.mount(request)


async def test_tokens_cached_until_shortly_before_expiry(gcp: GcpWorld) -> None:
    impersonating(gcp)
    clock = Clock()
    gcp.cloud.clock = clock
    provider = gcp.provider(clock=clock)
    request = gcp.request(DB)
    for _ in range(3):
        await provider.mount(request)
    assert (gcp.cloud.count("identitybindingtoken"), gcp.cloud.count("generateAccessToken")) == (
        1,
        1,
    )
    clock.now += 3600 - 200  # still valid, but within the refresh margin: refreshed
    await provider.mount(request)
    assert (gcp.cloud.count("identitybindingtoken"), gcp.cloud.count("generateAccessToken")) == (
        2,
        2,
    )
    # A new pod token (kubelet refreshed it) buys a new federated token.
    await provider.mount(
        gcp.request(request.attributes["secrets"], tokens={"proj-a.svc.id.goog": gcp.pod_token()})
    )
    assert gcp.cloud.count("identitybindingtoken") == 3


async def test_federated_token_without_annotation_is_the_pool_principal(gcp: GcpWorld) -> None:
    gcp.cloud.state.add_secret_version(PROJECT, "db", b"pw")
    gcp.grant(PROJECT, "db", namespace="team-a", account="web")
    gcp.accounts.add("team-b", "other")
    provider = gcp.provider()
    secrets = [{"resourceName": "projects/proj-a/secrets/db/versions/1", "fileName": "pw"}]
    assert files(await provider.mount(gcp.request(secrets))) == {"pw": b"pw"}
    assert gcp.cloud.count(":generateAccessToken") == 0
    with pytest.raises(
        ProviderError,
        match=r"^secrets\[0\] projects/proj-a/secrets/db/versions/1: Secret Manager answered "
        r"HTTP 403 PERMISSION_DENIED: Permission 'secretmanager\.versions\.access' denied",
    ):
        await provider.mount(gcp.request(secrets, namespace="team-b", account="other"))


async def test_missing_service_account_or_token(gcp: GcpWorld) -> None:
    provider = gcp.provider()
    secrets = [{"resourceName": "projects/proj-a/secrets/db/versions/1", "fileName": "pw"}]
    gcp.accounts.accounts.clear()
    with pytest.raises(ServiceAccountNotFound, match="team-a/web"):
        await provider.mount(gcp.request(secrets))
    gcp.accounts.add("team-a", "web")
    with pytest.raises(
        ProviderError,
        match=r"no service account token for audience 'identitynamespace:.*' or "
        r"'proj-a\.svc\.id\.goog' \(tokens present for: vault\)",
    ):
        await provider.mount(gcp.request(secrets, tokens={"vault": "x"}))
    assert gcp.cloud.requests == []


SM = "projects/p/secrets/s/versions/1"


@pytest.mark.parametrize(
    ("secrets", "message"),
    [
        (
            "- resourceName: projects/p/secrets/s\n  fileName: a",
            r"secrets\[0\]\.resourceName: invalid resourceName 'projects/p/secrets/s'",
        ),
        (
            "- resourceName: projects/p/secrets/s/versions/1.5\n  fileName: a",
            r"version '1.5' must be a version number, 'latest' or a version alias",
        ),
        (
            f"- resourceName: {SM}\n  fileName: ../escape",
            r"secrets\[0\]\.fileName: invalid file path '../escape'",
        ),
        (
            f"- resourceName: {SM}\n  path: /etc/passwd",
            r"secrets\[0\]\.path: invalid file path '/etc/passwd': must be a relative path",
        ),
        (
            "- resourceName: projects/p/locations/evil.example#/secrets/s/versions/1\n"
            "  fileName: a",
            r"'evil.example#' is not a valid location",
        ),
        (f"- resourceName: {SM}", r"secrets\[0\]: fileName or path is required"),
        ("resourceName: x", r"secrets: must be a list, not a mapping"),
        ("- just a string", r"secrets\[0\]: must be a mapping"),
        (
            f"- {{resourceName: {SM}, fileName: a}}\n- {{resourceName: {SM}, path: a, mode: 0400}}",
            r"secrets\[1\]\.path: 'a' is also the file of secrets\[0\]",
        ),
        (
            f"- {{resourceName: {SM}, fileName: a, extractJSONKey: k, extractYAMLKey: k}}",
            r"secrets\[0\]: extractJSONKey and extractYAMLKey cannot both be set",
        ),
    ],
)
async def test_invalid_parameters_fail_before_any_request(
    gcp: GcpWorld, secrets: str, message: str
) -> None:
    with pytest.raises(InvalidSecretProviderClass, match=message):
        await gcp.provider().mount(gcp.request(secrets))
    assert gcp.cloud.requests == []


async def test_unknown_auth_and_missing_secrets_parameter(gcp: GcpWorld) -> None:
    provider = gcp.provider()
    with pytest.raises(InvalidSecretProviderClass, match=r"auth: unknown value 'workload'"):
        await provider.mount(gcp.request("[]", auth="workload"))
    request = gcp.request("[]")
    del request.attributes["secrets"]  # type: ignore[attr-defined]
    with pytest.raises(InvalidSecretProviderClass, match=r"^secrets: is required"):
        await provider.mount(request)
    assert gcp.cloud.requests == []
