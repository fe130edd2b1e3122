"""Requests are signed as AWS checks them: moto with its IAM checks on (signature, then the
role's policy), which the shared moto server leaves off.

moto verifies SigV4 with botocore against the credentials its STS issued, so a request the
agent signed wrongly (a header signed and then changed, the wrong scope) fails here as it
would against AWS. moto cannot serve the unsigned AssumeRoleWithWebIdentity with checks on,
so each test lets exactly one action through unchecked: that login.
"""

from __future__ import annotations

import dataclasses
import json
import re
import urllib.request
from collections.abc import Iterator

import pytest

from agent.errors import ProviderError, ProviderUnavailable
from agent.providers.aws import AwsProvider
from agent.providers.aws.credentials import IdentityKey
from agent.providers.credential_cache import jwt_digest
from tests.support.aws import IRSA, ServiceAccounts, aws_provider, aws_request
from tests.support.moto import MotoServer, moto_process

ACCOUNT = "123456789012"
TRUST = {
    "Version": "2012-10-17",
    "Statement": [
        {
            "Effect": "Allow",
            "Principal": {"Federated": f"arn:aws:iam::{ACCOUNT}:oidc-provider/oidc.example"},
            "Action": "sts:AssumeRoleWithWebIdentity",
        }
    ],
}
READ = {
    "Version": "2012-10-17",
    "Statement": [
        {
            "Effect": "Allow",
            "Action": ["secretsmanager:GetSecretValue", "ssm:GetParameters"],
            "Resource": "*",
        }
    ],
}
OBJECTS = (
    "- {objectName: db, objectType: secretsmanager}\n"
    "- {objectName: /app/token, objectType: ssmparameter}\n"
    f"- {{objectName: 'arn:aws:secretsmanager:us-east-1:{ACCOUNT}:secret:db', objectAlias: arn}}\n"
)


@pytest.fixture(scope="module")
def checking_moto() -> Iterator[MotoServer]:
    with moto_process() as server:
        iam = server.client("iam")
        for role in ("reader", "nobody"):
            iam.create_role(RoleName=role, AssumeRolePolicyDocument=json.dumps(TRUST))
        iam.put_role_policy(RoleName="reader", PolicyName="read", PolicyDocument=json.dumps(READ))
        server.client("secretsmanager").create_secret(Name="db", SecretString="s3cret")
        server.client("ssm").put_parameter(Name="/app/token", Value="t0k", Type="SecureString")
        # moto loads its STS backend on the first call, seconds on a loaded machine: past the
        # tests' 5 s attempt timeout, the agent's retry would be the checked action (a 500).
        server.client("sts").assume_role_with_web_identity(
            RoleArn=f"arn:aws:iam::{ACCOUNT}:role/reader",
            RoleSessionName="warm-up",
            WebIdentityToken="header.payload.signature",
        )
        yield server


def checks_after(moto: MotoServer, free_actions: int | str) -> None:
    """moto's own switch: the next ``free_actions`` actions go unchecked, then all are."""
    request = urllib.request.Request(  # noqa: S310 (the test's own server)
        f"{moto.address}/moto-api/reset-auth",
        data=str(free_actions).encode(),
        method="POST",
        headers={"Content-Type": "text/plain"},
    )
    with urllib.request.urlopen(request, timeout=10):  # noqa: S310
        pass


@pytest.fixture
def checked(checking_moto: MotoServer) -> Iterator[MotoServer]:
    checks_after(checking_moto, 1)  # the login
    yield checking_moto
    checks_after(checking_moto, "inf")


def provider_for(moto: MotoServer, role: str) -> AwsProvider:
    accounts = ServiceAccounts()
    accounts.add("default", "web", f"arn:aws:iam::{ACCOUNT}:role/{role}")
    return aws_provider(moto.address, accounts)


async def test_secrets_parameters_and_arns_pass_the_signature_check(checked: MotoServer) -> None:
    provider = provider_for(checked, "reader")
    try:
        result = await provider.mount(aws_request(OBJECTS))
    finally:
        await provider.close()
    assert {f.path: f.contents for f in result.files} == {
        "db": b"s3cret",
        "_app_token": b"t0k",
        "arn": b"s3cret",
    }


async def test_a_role_without_the_permission_is_denied(checked: MotoServer) -> None:
    provider = provider_for(checked, "nobody")
    try:
        with pytest.raises(ProviderError) as info:
            await provider.mount(aws_request(OBJECTS))
    finally:
        await provider.close()
    assert not isinstance(info.value, ProviderUnavailable)
    assert "AccessDenied" in info.value.message
    # Secrets Manager and Parameter Store are asked side by side: the first refusal is reported.
    assert re.search(
        r"is not authorized to perform: (secretsmanager:GetSecretValue|ssm:GetParameters)",
        info.value.message,
    )


async def test_the_check_is_real_a_wrong_secret_key_does_not_match(checked: MotoServer) -> None:
    provider = provider_for(checked, "reader")
    request = aws_request("- {objectName: db, objectType: secretsmanager}")
    try:
        await provider.mount(request)
        # The same pod's cached credentials, with the secret key changed.
        role = f"arn:aws:iam::{ACCOUNT}:role/reader"
        token = request.identity.token_for(IRSA)
        assert token is not None
        key = IdentityKey("irsa", "default", "web", role, "uid-web-0", jwt_digest(token.token))
        cached = provider.identities.cache.get(key)
        assert cached is not None
        # Another first character: moto's keys are random, and one in 64 starts with "X".
        first = "Y" if cached.secret_key.startswith("X") else "X"
        wrong = dataclasses.replace(cached, secret_key=first + cached.secret_key[1:])
        provider.identities.cache.put(key, wrong, 3600)
        with pytest.raises(ProviderError, match="SignatureDoesNotMatch"):
            await provider.mount(request)
    finally:
        await provider.close()
