"""GcpProvider failure modes against the fake: CRC32C mismatch, 403/404/400, throttling with
backoff, concurrency of fetches, and every failure reported at once."""

from __future__ import annotations

import asyncio
import time

import pytest

from agent.errors import ProviderError, ProviderThrottled, ProviderUnavailable
from agent.providers.gcp.fetch import CorruptPayload
from tests.support.gcp import PROJECT, GcpWorld

NUMBER = "123456789"


def one(name: str, file: str = "f") -> list[dict[str, str]]:
    return [{"resourceName": name, "fileName": file}]


class Sleeps:
    """An injected sleep: records each backoff delay instead of waiting."""

    def __init__(self) -> None:
        self.delays: list[float] = []

    async def __call__(self, delay: float) -> None:
        self.delays.append(delay)


async def test_corrupted_payload_is_refused(gcp: GcpWorld) -> None:
    gcp.cloud.state.add_secret_version(PROJECT, "db", b"password")
    gcp.grant(PROJECT, "db")
    gcp.cloud.corrupt.add("db")
    provider = gcp.provider()
    with pytest.raises(CorruptPayload, match="does not match its CRC32C checksum"):
        await provider.mount(gcp.request(one("projects/proj-a/secrets/db/versions/1")))
    gcp.cloud.corrupt.clear()
    result = await provider.mount(gcp.request(one("projects/proj-a/secrets/db/versions/1")))
    assert result.files[0].contents == b"password"


async def test_not_found_and_disabled_versions_name_the_field(gcp: GcpWorld) -> None:
    state = gcp.cloud.state
    state.project_readers[NUMBER] = {gcp.cloud.ksa_principal("team-a", "web")}
    state.add_secret_version(PROJECT, "db", b"x", state="DISABLED")
    provider = gcp.provider()
    secrets = [
        {"resourceName": "projects/proj-a/secrets/db/versions/latest", "fileName": "a"},
        {"resourceName": "projects/proj-a/secrets/gone/versions/1", "fileName": "b"},
        {"resourceName": "projects/proj-a/secrets/db/versions/7", "fileName": "c"},
    ]
    with pytest.raises(ProviderError) as info:
        await provider.mount(gcp.request(secrets))
    message = info.value.message
    assert type(info.value) is ProviderError  # final, not "retry later"
    assert message.startswith("3 of 3 secrets failed: ")
    assert (
        "secrets[0] projects/proj-a/secrets/db/versions/latest: Secret Manager answered HTTP 400 "
        f"FAILED_PRECONDITION: Secret Version [projects/{NUMBER}/secrets/db/versions/1] is in "
        "DISABLED state." in message
    )
    assert (
        "secrets[1] projects/proj-a/secrets/gone/versions/1: Secret Manager answered HTTP 404 "
        f"NOT_FOUND: Secret [projects/{NUMBER}/secrets/gone] not found or has no versions."
        in message
    )
    assert (
        "secrets[2] projects/proj-a/secrets/db/versions/7: Secret Manager answered HTTP 404"
        in message
    )


async def test_throttling_is_retried_with_retry_after(gcp: GcpWorld) -> None:
    gcp.cloud.state.add_secret_version(PROJECT, "db", b"pw")
    gcp.grant(PROJECT, "db")
    sleeps = Sleeps()
    provider = gcp.provider(sleep=sleeps)
    gcp.cloud.fail(":access", 429, times=2, retry_after="3")
    result = await provider.mount(gcp.request(one("projects/proj-a/secrets/db/versions/1")))
    assert result.files[0].contents == b"pw"
    assert sleeps.delays == [3.0, 3.0]
    assert gcp.cloud.count(":access") == 3


async def test_backoff_without_retry_after_grows_and_is_bounded(gcp: GcpWorld) -> None:
    gcp.cloud.state.add_secret_version(PROJECT, "db", b"pw")
    gcp.grant(PROJECT, "db")
    sleeps = Sleeps()
    provider = gcp.provider(sleep=sleeps)
    provider._http._rand = lambda: 1.0  # the top of each jitter window
    gcp.cloud.fail(":access", 429, times=10)
    with pytest.raises(
        ProviderThrottled, match="HTTP 429 RESOURCE_EXHAUSTED: Quota exceeded"
    ) as info:
        await provider.mount(gcp.request(one("projects/proj-a/secrets/db/versions/1")))
    assert sleeps.delays == [0.5, 1.0, 2.0, 4.0]  # five attempts in all
    assert gcp.cloud.count(":access") == 5
    assert info.value.retry_after is None  # the rotation scheduler backs off on its own


async def test_throttling_that_outlasts_the_retries_carries_the_hint(gcp: GcpWorld) -> None:
    gcp.cloud.state.add_secret_version(PROJECT, "db", b"pw")
    gcp.grant(PROJECT, "db")
    provider = gcp.provider(sleep=Sleeps())
    gcp.cloud.fail(":access", 429, times=10, retry_after="7")
    with pytest.raises(ProviderThrottled) as info:
        await provider.mount(gcp.request(one("projects/proj-a/secrets/db/versions/1")))
    assert isinstance(info.value, ProviderUnavailable)  # kubelet still sees UNAVAILABLE
    assert info.value.retry_after == 7.0


async def test_a_retry_after_past_the_deadline_reports_the_throttling_at_once(
    gcp: GcpWorld,
) -> None:
    """A 429 storm whose Retry-After outlasts the mount: Google's answer is reported when it
    comes (the mount's deadline is 0.95 s here), not a generic timeout after waiting."""
    gcp.cloud.state.add_secret_version(PROJECT, "db", b"pw")
    gcp.grant(PROJECT, "db")
    provider = gcp.provider(timeout=1.0)  # real sleeps: a wait would be a real one
    gcp.cloud.fail(":access", 429, times=10, retry_after="5")
    started = time.monotonic()
    with pytest.raises(ProviderUnavailable) as info:
        await provider.mount(gcp.request(one("projects/proj-a/secrets/db/versions/1")))
    assert "answered HTTP 429 RESOURCE_EXHAUSTED: Quota exceeded" in info.value.message
    assert "(not retried: waiting 5s would pass the mount's deadline)" in info.value.message
    assert gcp.cloud.count(":access") == 1
    assert time.monotonic() - started < 0.9  # said before the deadline, not at it


async def test_token_exchange_throttling_and_server_errors_are_retried(gcp: GcpWorld) -> None:
    gcp.cloud.state.add_secret_version(PROJECT, "db", b"pw")
    gcp.grant(PROJECT, "db")
    provider = gcp.provider(sleep=Sleeps())
    gcp.cloud.fail("identitybindingtoken", 503, times=1)
    gcp.cloud.fail(":access", 500, times=1)
    result = await provider.mount(gcp.request(one("projects/proj-a/secrets/db/versions/1")))
    assert result.files[0].contents == b"pw"


async def test_objects_are_fetched_concurrently(gcp: GcpWorld) -> None:
    names = [f"s{i}" for i in range(6)]
    for name in names:
        gcp.cloud.state.add_secret_version(PROJECT, name, name.encode())
        gcp.grant(PROJECT, name)
    # No answer until all six requests are in flight at once: a sequential fetch never ends.
    gcp.cloud.hold_access_until(len(names))
    provider = gcp.provider()
    secrets = [
        {"resourceName": f"projects/proj-a/secrets/{n}/versions/1", "fileName": n} for n in names
    ]
    async with asyncio.timeout(20):
        result = await provider.mount(gcp.request(secrets))
    assert {f.path: f.contents for f in result.files} == {n: n.encode() for n in names}
    assert gcp.cloud.max_in_flight == len(names)


async def test_bad_token_exchange_is_reported(gcp: GcpWorld) -> None:
    provider = gcp.provider()
    wrong_audience = gcp.signer.sign(namespace="team-a", service_account="web", audience="vault")
    request = gcp.request(
        one("projects/proj-a/secrets/db/versions/1"), tokens={"proj-a.svc.id.goog": wrong_audience}
    )
    with pytest.raises(
        ProviderError,
        match=r"exchanging the pod's token for 'identitynamespace:proj-a\.svc\.id\.goog:https://"
        r"container\.googleapis\.com/v1/projects/proj-a/locations/us-central1/clusters/c1': "
        r"token exchange \(STS\) answered HTTP 400 invalid_grant",
    ):
        await provider.mount(request)


@pytest.mark.parametrize("impersonated", [False, True])
async def test_a_refused_cached_token_is_dropped(gcp: GcpWorld, impersonated: bool) -> None:
    """Google forgets every token it issued (revoked): each 401 drops the token that met it,
    so mounts recover at once instead of failing until the cached copies expire."""
    gcp.cloud.state.add_secret_version(PROJECT, "db", b"pw")
    gcp.grant(PROJECT, "db")
    if impersonated:
        gsa = "app@proj-a.iam.gserviceaccount.com"
        gcp.accounts.add("team-a", "web", **{"iam.gke.io/gcp-service-account": gsa})
        gcp.cloud.state.secrets[(NUMBER, "", "db")].readers.add(f"serviceAccount:{gsa}")
        gcp.cloud.state.token_creators[gsa] = {gcp.cloud.ksa_principal("team-a", "web")}
    provider = gcp.provider()
    request = gcp.request(one("projects/proj-a/secrets/db/versions/1"))
    await provider.mount(request)
    gcp.cloud.state.tokens.clear()
    with pytest.raises(ProviderError, match="Secret Manager answered HTTP 401 UNAUTHENTICATED"):
        await provider.mount(request)
    if impersonated:  # the federated token that bought the impersonated one is refused next
        with pytest.raises(ProviderError, match="IAM Credentials answered HTTP 401"):
            await provider.mount(request)
    assert (await provider.mount(request)).files[0].contents == b"pw"
    assert gcp.cloud.count("identitybindingtoken") == 2


async def test_unreachable_endpoint_is_unavailable(gcp: GcpWorld) -> None:
    provider = gcp.provider(
        env={"GCP_SECRET_MANAGER_ENDPOINT": "http://127.0.0.1:9"}, sleep=Sleeps()
    )
    gcp.cloud.state.add_secret_version(PROJECT, "db", b"pw")
    gcp.grant(PROJECT, "db")
    with pytest.raises(
        ProviderUnavailable, match="Secret Manager unreachable: ClientConnectorError"
    ):
        await provider.mount(gcp.request(one("projects/proj-a/secrets/db/versions/1")))


async def test_requests_go_through_the_proxy_from_the_environment(
    gcp: GcpWorld, monkeypatch: pytest.MonkeyPatch
) -> None:
    gcp.cloud.state.add_secret_version(PROJECT, "db", b"pw")
    gcp.grant(PROJECT, "db")
    # Every Google endpoint is unreachable (127.0.0.2:9); only the proxy (the fake) answers.
    monkeypatch.setenv("HTTP_PROXY", gcp.cloud.url)
    monkeypatch.delenv("NO_PROXY", raising=False)
    monkeypatch.delenv("no_proxy", raising=False)
    unreachable = "http://127.0.0.2:9"
    env = {
        "GAIA_TOKEN_EXCHANGE_ENDPOINT": f"{unreachable}/v1/identitybindingtoken",
        "GCP_SECRET_MANAGER_ENDPOINT": unreachable,
    }
    provider = gcp.provider(env=env)
    result = await provider.mount(gcp.request(one("projects/proj-a/secrets/db/versions/1")))
    assert result.files[0].contents == b"pw"
    monkeypatch.setenv("NO_PROXY", "127.0.0.2")
    bypassing = gcp.provider(env=env, sleep=Sleeps())
    with pytest.raises(ProviderUnavailable, match="unreachable"):
        await bypassing.mount(gcp.request(one("projects/proj-a/secrets/db/versions/1")))
