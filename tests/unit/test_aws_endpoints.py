"""Where AWS calls go: the SDKs' environment variables, then botocore's endpoint rule sets
(partitions, FIPS, dual-stack), and which Pod Identity Agent address is tried."""

from __future__ import annotations

import pytest

from agent.errors import ProviderError
from agent.providers.aws.endpoints import (
    SECRETS_MANAGER,
    SSM,
    STS,
    AwsEnvironment,
    EndpointResolver,
)
from agent.providers.aws.identity import POD_IDENTITY_ENDPOINTS, agent_endpoints


def url(env: dict[str, str], service: object, region: str = "us-east-1") -> str:
    resolver = EndpointResolver(AwsEnvironment.from_env(env))
    return resolver.resolve(service, region).url  # type: ignore[arg-type]


def test_regional_endpoints_per_partition() -> None:
    assert url({}, SECRETS_MANAGER) == "https://secretsmanager.us-east-1.amazonaws.com"
    assert url({}, SSM, "cn-north-1") == "https://ssm.cn-north-1.amazonaws.com.cn"
    assert url({}, STS, "eu-west-1") == "https://sts.eu-west-1.amazonaws.com"


def test_fips_and_dual_stack() -> None:
    fips = {"AWS_USE_FIPS_ENDPOINT": "true"}
    assert url(fips, SECRETS_MANAGER) == "https://secretsmanager-fips.us-east-1.amazonaws.com"
    dual = {"AWS_USE_DUALSTACK_ENDPOINT": "true"}
    assert url(dual, SSM, "eu-west-1") == "https://ssm.eu-west-1.api.aws"


def test_service_specific_endpoint_wins_over_the_global_one() -> None:
    env = {
        "AWS_ENDPOINT_URL": "http://127.0.0.1:1",
        "AWS_ENDPOINT_URL_SECRETS_MANAGER": "https://vpce-1.secretsmanager.example",
    }
    assert url(env, SECRETS_MANAGER) == "https://vpce-1.secretsmanager.example"
    assert url(env, SSM) == "http://127.0.0.1:1"
    assert url(env, STS) == "http://127.0.0.1:1"


def test_configured_endpoints_can_be_ignored() -> None:
    env = {"AWS_ENDPOINT_URL": "http://127.0.0.1:1", "AWS_IGNORE_CONFIGURED_ENDPOINT_URLS": "true"}
    assert url(env, SSM) == "https://ssm.us-east-1.amazonaws.com"


def test_signing_scope_is_the_service_and_region() -> None:
    endpoint = EndpointResolver(AwsEnvironment()).resolve(SECRETS_MANAGER, "eu-central-1")
    assert (endpoint.signing_name, endpoint.signing_region) == ("secretsmanager", "eu-central-1")


def test_a_configuration_the_rules_refuse_is_a_provider_error() -> None:
    env = {"AWS_ENDPOINT_URL": "http://127.0.0.1:1", "AWS_USE_FIPS_ENDPOINT": "true"}
    with pytest.raises(ProviderError, match="no Secrets Manager endpoint for region us-east-1"):
        url(env, SECRETS_MANAGER)


def test_credentials_in_the_environment_are_not_configuration() -> None:
    env = AwsEnvironment.from_env({"AWS_ACCESS_KEY_ID": "AKIA", "AWS_SECRET_ACCESS_KEY": "x"})
    assert env == AwsEnvironment()  # nothing of the node's own identity is kept


@pytest.mark.parametrize(
    ("address_type", "expected"),
    [
        ("auto", [POD_IDENTITY_ENDPOINTS["ipv4"], POD_IDENTITY_ENDPOINTS["ipv6"]]),
        ("ipv4", [POD_IDENTITY_ENDPOINTS["ipv4"]]),
        ("ipv6", [POD_IDENTITY_ENDPOINTS["ipv6"]]),
    ],
)
def test_pod_identity_agent_addresses(address_type: str, expected: list[str]) -> None:
    assert agent_endpoints(address_type) == expected  # type: ignore[arg-type]
    assert agent_endpoints(address_type, "http://127.0.0.1:9/v1") == ["http://127.0.0.1:9/v1"]  # type: ignore[arg-type]
