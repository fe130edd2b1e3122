"""Failover to ``failoverRegion``: taken on a regional failure (5xx, throttling after retries,
dropped connections, timeouts), never on a client fault. moto keeps each region's data apart;
a proxy in front of it makes the primary region misbehave."""

from __future__ import annotations

from collections.abc import AsyncIterator

import pytest

from agent.errors import ProviderError, ProviderThrottled, ProviderUnavailable
from agent.model import MountResult, ProviderRequest
from agent.providers.aws import AwsProvider
from agent.providers.aws.http import RetryPolicy, Timeouts
from tests.fakes.aws_fault_proxy import Fault, FaultProxy
from tests.support.aws import ServiceAccounts, Sleeps, aws_provider, aws_request
from tests.support.moto import MotoServer, unique

PRIMARY, SECONDARY = "us-east-1", "us-west-2"


@pytest.fixture
async def proxy(moto: MotoServer) -> AsyncIterator[FaultProxy]:
    proxy = FaultProxy(moto.address)
    await proxy.start()
    yield proxy
    await proxy.stop()


@pytest.fixture
def sleeps() -> Sleeps:
    return Sleeps()


@pytest.fixture
async def provider(proxy: FaultProxy, sleeps: Sleeps) -> AsyncIterator[AwsProvider]:
    accounts = ServiceAccounts()
    accounts.add("default", "web")
    # STS goes straight to moto: these tests are about the secret stores' regions.
    provider = aws_provider(
        proxy.address, accounts, sleeps=sleeps, AWS_ENDPOINT_URL_STS=proxy.upstream
    )
    yield provider
    await provider.close()


def secret_in_both(moto: MotoServer, name: str) -> None:
    moto.client("secretsmanager", PRIMARY).create_secret(Name=name, SecretString="primary")
    moto.client("secretsmanager", SECONDARY).create_secret(Name=name, SecretString="secondary")


def request_for(name: str, alias: str = "") -> ProviderRequest:
    extra = f", objectAlias: {alias}" if alias else ""
    return aws_request(
        f"- {{objectName: {name}, objectType: secretsmanager{extra}}}",
        region=PRIMARY,
        failoverRegion=SECONDARY,
    )


async def test_a_healthy_primary_is_the_only_region_asked(
    moto: MotoServer, proxy: FaultProxy, provider: AwsProvider
) -> None:
    name = unique("healthy")
    secret_in_both(moto, name)
    result = await provider.mount(request_for(name))
    assert result.files[0].contents == b"primary"
    assert proxy.calls(SECONDARY) == 0


@pytest.mark.parametrize("fault", ["unavailable", "throttle", "drop"])
async def test_regional_failures_fail_over_after_the_retries(
    moto: MotoServer, proxy: FaultProxy, provider: AwsProvider, sleeps: Sleeps, fault: Fault
) -> None:
    name = unique(fault)
    secret_in_both(moto, name)
    proxy.faults[PRIMARY] = fault
    result = await provider.mount(request_for(name))
    assert result.files[0].contents == b"secondary"
    assert proxy.calls(PRIMARY, "GetSecretValue") == 3  # the SDKs' standard attempts
    assert len(sleeps.slept) == 2
    assert all(0 <= delay <= 2 for delay in sleeps.slept)
    assert proxy.calls(SECONDARY, "GetSecretValue") == 1


@pytest.mark.parametrize(
    ("fault", "code"),
    [("deny", "AccessDeniedException"), ("not-found", "ResourceNotFoundException")],
)
async def test_client_faults_do_not_fail_over(
    moto: MotoServer, proxy: FaultProxy, provider: AwsProvider, fault: Fault, code: str
) -> None:
    name = unique(fault)
    secret_in_both(moto, name)
    proxy.faults[PRIMARY] = fault
    with pytest.raises(ProviderError) as info:
        await provider.mount(request_for(name))
    assert not isinstance(info.value, ProviderUnavailable)
    assert f"GetSecretValue in {PRIMARY}: {code}" in info.value.message
    assert proxy.calls(PRIMARY, "GetSecretValue") == 1  # not retried either
    assert proxy.calls(SECONDARY) == 0


async def test_a_failover_object_names_the_secret_in_the_second_region(
    moto: MotoServer, proxy: FaultProxy, provider: AwsProvider
) -> None:
    primary, secondary = unique("east"), unique("west")
    moto.client("secretsmanager", PRIMARY).create_secret(Name=primary, SecretString="east")
    moto.client("secretsmanager", SECONDARY).create_secret(Name=secondary, SecretString="west")
    request = aws_request(
        f"""
        - objectName: {primary}
          objectType: secretsmanager
          objectAlias: db
          failoverObject: {{objectName: {secondary}}}
        """,
        region=PRIMARY,
        failoverRegion=SECONDARY,
    )
    proxy.faults[PRIMARY] = "unavailable"
    result = await provider.mount(request)
    assert [(f.path, f.contents) for f in result.files] == [("db", b"west")]


async def test_both_regions_failing_names_both(
    moto: MotoServer, proxy: FaultProxy, provider: AwsProvider
) -> None:
    name = unique("down")
    proxy.faults[PRIMARY] = "unavailable"
    proxy.faults[SECONDARY] = "throttle"
    with pytest.raises(ProviderUnavailable) as info:
        await provider.mount(request_for(name))
    message = info.value.message
    assert f"secret {name} (objects[0]): failed in {PRIMARY} (ServiceUnavailable) and" in message
    assert f"GetSecretValue in {SECONDARY}: ThrottlingException" in message


async def test_without_a_failover_region_a_regional_failure_is_unavailable(
    proxy: FaultProxy, provider: AwsProvider
) -> None:
    proxy.faults[PRIMARY] = "unavailable"
    request = aws_request("- {objectName: anything, objectType: secretsmanager}", region=PRIMARY)
    with pytest.raises(ProviderUnavailable, match="ServiceUnavailable"):
        await provider.mount(request)  # kubelet retries an UNAVAILABLE publish


async def test_parameter_batches_fail_over_too(
    moto: MotoServer, proxy: FaultProxy, provider: AwsProvider
) -> None:
    names = [f"/{unique('fo')}/p{i}" for i in range(12)]
    for region in (PRIMARY, SECONDARY):
        for name in names:
            moto.client("ssm", region).put_parameter(Name=name, Value=region, Type="SecureString")
    proxy.faults[PRIMARY] = "unavailable"
    objects = "\n".join(f'- {{objectName: "{n}", objectType: ssmparameter}}' for n in names)
    result = await provider.mount(aws_request(objects, region=PRIMARY, failoverRegion=SECONDARY))
    assert {f.contents for f in result.files} == {SECONDARY.encode()}
    assert proxy.calls(SECONDARY, "GetParameters") == 2


async def test_a_hung_region_times_out_and_fails_over(moto: MotoServer, proxy: FaultProxy) -> None:
    name = unique("hung")
    secret_in_both(moto, name)
    proxy.faults[PRIMARY] = "slow"
    env = {"AWS_ENDPOINT_URL": proxy.address, "AWS_ENDPOINT_URL_STS": proxy.upstream}
    result = await mount_with(env, request_for(name), attempt=0.3, max_attempts=1)
    assert result.files[0].contents == b"secondary"


async def mount_with(
    env: dict[str, str],
    request: ProviderRequest,
    *,
    attempt: float,
    max_attempts: int = RetryPolicy().max_attempts,
) -> MountResult:
    """One mount by a provider with short attempt timeouts (for hung regions)."""
    accounts = ServiceAccounts()
    accounts.add("default", "web")
    provider = AwsProvider(
        service_accounts=accounts,
        env=env,
        timeout=3.0,
        retry=RetryPolicy(max_attempts=max_attempts, sleep=Sleeps()),
        timeouts=Timeouts(connect=1.0, attempt=attempt),
    )
    try:
        return await provider.mount(request)
    finally:
        await provider.close()


async def test_a_hung_primary_with_irsa_leaves_the_failover_region_time(
    moto: MotoServer, proxy: FaultProxy
) -> None:
    """STS and Secrets Manager both hang in the primary region: each step gives the primary a
    third of the time left (regions.py), so STS and the secret are both fetched from the
    failover region within the mount's 3 s, where three 1 s attempts per step would not fit."""
    name = unique("hung-irsa")
    secret_in_both(moto, name)
    proxy.faults[PRIMARY] = "slow"
    proxy.unsigned_faults = ["slow"]  # STS in the primary region, asked first
    result = await mount_with({"AWS_ENDPOINT_URL": proxy.address}, request_for(name), attempt=1.0)
    assert result.files[0].contents == b"secondary"
    sts = [seen for seen in proxy.seen if not seen.region]
    assert len(sts) == 2  # the hung primary once, then the failover region
    assert proxy.calls(PRIMARY, "GetSecretValue") == 1


async def test_throttling_that_outlasts_the_retries_is_reported_as_throttling(
    proxy: FaultProxy, provider: AwsProvider
) -> None:
    proxy.faults[PRIMARY] = "throttle"
    request = aws_request("- {objectName: anything, objectType: secretsmanager}", region=PRIMARY)
    with pytest.raises(ProviderThrottled, match="ThrottlingException") as info:
        await provider.mount(request)
    # Still UNAVAILABLE for kubelet; the rotation scheduler backs the aws provider off.
    assert isinstance(info.value, ProviderUnavailable)


async def test_an_oversized_answer_is_refused_unread_and_fails_over(
    moto: MotoServer, proxy: FaultProxy, provider: AwsProvider
) -> None:
    name = unique("big")
    secret_in_both(moto, name)
    proxy.faults[PRIMARY] = "oversized"  # 5 MiB of well-formed JSON: no secret is that large
    result = await provider.mount(request_for(name))
    assert result.files[0].contents == b"secondary"
    assert proxy.calls(PRIMARY) == 1  # not retried: the same answer would come again


async def test_an_oversized_answer_without_failover_is_unavailable(
    proxy: FaultProxy, provider: AwsProvider
) -> None:
    proxy.faults[PRIMARY] = "oversized"
    request = aws_request("- {objectName: big, objectType: secretsmanager}", region=PRIMARY)
    with pytest.raises(ProviderUnavailable) as info:
        await provider.mount(request)
    assert info.value.message == (
        f"secret big (objects[0]): Secrets Manager GetSecretValue in {PRIMARY}: "
        "InvalidResponse: answer larger than 4194304 bytes"
    )
