"""The other identities: a node-publish secret ``key.json``, the agent's own ADC
(``provider-adc``: a key file or the GCE metadata server), and workload identity pools found
through the metadata server or a fleet / federation ``external_account`` file."""

from __future__ import annotations

import json
import sys
from pathlib import Path

import pytest
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import rsa

from agent.errors import ConfigError, InvalidSecretProviderClass, ProviderError
from tests.support.gcp import AUDIENCE, CLUSTER, LOCATION, POOL, PROJECT, GcpWorld

NUMBER = "123456789"
SECRET = [{"resourceName": "projects/proj-a/secrets/db/versions/1", "fileName": "pw"}]


@pytest.fixture(scope="module")
def sa_key() -> rsa.RSAPrivateKey:
    return rsa.generate_private_key(public_exponent=65537, key_size=2048)


def key_json(world: GcpWorld, key: rsa.RSAPrivateKey, email: str, **overrides: str) -> str:
    pem = key.private_bytes(
        serialization.Encoding.PEM,
        serialization.PrivateFormat.PKCS8,
        serialization.NoEncryption(),
    ).decode()
    world.cloud.service_account_keys[email] = key.public_key()
    info = {
        "type": "service_account",
        "project_id": PROJECT,
        "private_key_id": "k1",
        "private_key": pem,
        "client_email": email,
        "client_id": "1",
        "token_uri": f"{world.cloud.url}/token",
    }
    return json.dumps(info | overrides)


def readable_by(world: GcpWorld, principal: str) -> None:
    world.cloud.state.add_secret_version(PROJECT, "db", b"pw")
    world.cloud.state.secrets[(NUMBER, "", "db")].readers.add(principal)


async def test_node_publish_key_json(gcp: GcpWorld, sa_key: rsa.RSAPrivateKey) -> None:
    email = "ci@proj-a.iam.gserviceaccount.com"
    readable_by(gcp, f"serviceAccount:{email}")
    secret = {"key.json": key_json(gcp, sa_key, email)}
    provider = gcp.provider(env={"ALLOW_NODE_PUBLISH_SECRET": "true"})
    for _ in range(2):
        result = await provider.mount(gcp.request(SECRET, node_publish=secret, tokens={}))
        assert result.files[0].contents == b"pw"
    assert gcp.cloud.count("/token") == 1  # cached until shortly before expiry
    assert gcp.cloud.count("identitybindingtoken") == 0
    with pytest.raises(
        InvalidSecretProviderClass,
        match=r"auth: 'pod-adc' and a node-publish secret key\.json are both set",
    ):
        await provider.mount(gcp.request(SECRET, node_publish=secret, auth="pod-adc"))


async def test_key_json_ignored_unless_allowed(gcp: GcpWorld, sa_key: rsa.RSAPrivateKey) -> None:
    readable_by(gcp, gcp.cloud.ksa_principal("team-a", "web"))
    secret = {"key.json": key_json(gcp, sa_key, "ci@proj-a.iam.gserviceaccount.com")}
    provider = gcp.provider()  # ALLOW_NODE_PUBLISH_SECRET unset: upstream's default false
    result = await provider.mount(gcp.request(SECRET, node_publish=secret))
    assert result.files[0].contents == b"pw"
    assert gcp.cloud.count("/token") == 0
    assert gcp.cloud.count("identitybindingtoken") == 1


async def test_key_json_must_be_a_service_account_key(
    gcp: GcpWorld, sa_key: rsa.RSAPrivateKey
) -> None:
    provider = gcp.provider(env={"ALLOW_NODE_PUBLISH_SECRET": "true"})
    external = json.dumps(
        {"type": "external_account", "credential_source": {"file": "/etc/shadow"}}
    )
    with pytest.raises(ProviderError, match="credentials type 'external_account' is not accepted"):
        await provider.mount(gcp.request(SECRET, node_publish={"key.json": external}))
    remote = key_json(
        gcp, sa_key, "x@p.iam.gserviceaccount.com", token_uri="http://203.0.113.9/token"
    )
    with pytest.raises(
        ProviderError, match="token_uri: plain http is only allowed to a loopback host"
    ):
        await provider.mount(gcp.request(SECRET, node_publish={"key.json": remote}))
    assert gcp.cloud.requests == []


async def test_key_json_unknown_account_is_reported(
    gcp: GcpWorld, sa_key: rsa.RSAPrivateKey
) -> None:
    text = key_json(gcp, sa_key, "gone@proj-a.iam.gserviceaccount.com")
    gcp.cloud.service_account_keys.clear()
    provider = gcp.provider(env={"ALLOW_NODE_PUBLISH_SECRET": "true"})
    with pytest.raises(
        ProviderError,
        match=r"node-publish secret key\.json \(service account gone@proj-a\.iam\.gserviceaccount"
        r"\.com\): .*account not found",
    ):
        await provider.mount(gcp.request(SECRET, node_publish={"key.json": text}))


async def test_provider_adc_from_a_key_file(
    gcp: GcpWorld, sa_key: rsa.RSAPrivateKey, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    email = "agent@proj-a.iam.gserviceaccount.com"
    readable_by(gcp, f"serviceAccount:{email}")
    path = tmp_path / "adc.json"
    path.write_text(key_json(gcp, sa_key, email))
    for name, value in gcp.env.items():
        monkeypatch.setenv(name, value)
    monkeypatch.setenv("GOOGLE_APPLICATION_CREDENTIALS", str(path))
    provider = gcp.provider()
    result = await provider.mount(gcp.request(SECRET, auth="provider-adc", tokens={}))
    assert result.files[0].contents == b"pw"
    assert "google.auth" in sys.modules


async def test_provider_adc_from_the_metadata_server(
    gcp: GcpWorld, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    readable_by(gcp, f"serviceAccount:{gcp.cloud.node_service_account}")
    for name, value in gcp.env.items():
        monkeypatch.setenv(name, value)
    monkeypatch.delenv("GOOGLE_APPLICATION_CREDENTIALS", raising=False)
    monkeypatch.setenv("CLOUDSDK_CONFIG", str(tmp_path))  # no gcloud credentials either
    provider = gcp.provider()
    result = await provider.mount(gcp.request(SECRET, auth="provider-adc", tokens={}))
    assert result.files[0].contents == b"pw"
    assert gcp.cloud.count("/computeMetadata/v1/instance/service-accounts/default/token") == 1


async def test_gke_pool_from_the_metadata_server(gcp: GcpWorld) -> None:
    readable_by(gcp, gcp.cloud.ksa_principal("team-a", "web"))
    gcp.cloud.metadata.update(
        {
            "project/project-id": PROJECT,
            "instance/attributes/cluster-name": CLUSTER,
            "instance/attributes/cluster-location": LOCATION,
        }
    )
    provider = gcp.provider(env={"PROJECT": "", "CLUSTER_NAME": "", "CLUSTER_LOCATION": ""})
    for _ in range(2):
        assert (await provider.mount(gcp.request(SECRET))).files[0].contents == b"pw"
    assert gcp.cloud.count("/computeMetadata/v1/project/project-id") == 1  # resolved once


async def test_a_garbled_metadata_answer_is_refused_and_not_kept(gcp: GcpWorld) -> None:
    # A captive proxy or a broken metadata server answering 200 with something else.
    readable_by(gcp, gcp.cloud.ksa_principal("team-a", "web"))
    gcp.cloud.metadata["project/project-id"] = "<html><body>Sign in</body></html>"
    provider = gcp.provider(env={"PROJECT": ""})
    with pytest.raises(
        ProviderError,
        match=r"GKE: metadata server \(project/project-id\): the answer is not an identifier",
    ):
        await provider.mount(gcp.request(SECRET))
    gcp.cloud.metadata["project/project-id"] = PROJECT
    assert (await provider.mount(gcp.request(SECRET))).files[0].contents == b"pw"


async def test_federation_audience_from_an_external_account_file(
    gcp: GcpWorld, tmp_path: Path
) -> None:
    wif = (
        "//iam.googleapis.com/projects/42/locations/global/workloadIdentityPools/pool/providers/k8s"
    )
    assert gcp.cloud.sts is not None
    gcp.cloud.sts.audience = wif
    gcp.cloud.sts.token_audiences = frozenset({wif})
    readable_by(gcp, gcp.cloud.ksa_principal("team-a", "web"))
    path = tmp_path / "wif.json"
    path.write_text(
        json.dumps(
            {
                "type": "external_account",
                "audience": wif,
                "subject_token_type": "urn:ietf:params:oauth:token-type:jwt",
                "token_url": f"{gcp.cloud.url}/v1/token",
                "credential_source": {"file": "/var/run/secrets/tokens/gcp-ksa/token"},
            }
        )
    )
    # Not on GKE (no cluster settings, no metadata answers); no exchange endpoint set:
    # the file's token_url (STS) is used for a plain federation audience.
    env = {
        "PROJECT": "",
        "CLUSTER_NAME": "",
        "CLUSTER_LOCATION": "",
        "GAIA_TOKEN_EXCHANGE_ENDPOINT": "",
        "GOOGLE_APPLICATION_CREDENTIALS": str(path),
    }
    provider = gcp.provider(env=env)
    tokens = {wif: gcp.pod_token(audience=wif)}
    assert (await provider.mount(gcp.request(SECRET, tokens=tokens))).files[0].contents == b"pw"
    assert gcp.cloud.count("/v1/token") == 1


async def test_no_pool_anywhere_is_reported(gcp: GcpWorld) -> None:
    provider = gcp.provider(env={"PROJECT": "", "CLUSTER_NAME": "", "CLUSTER_LOCATION": ""})
    with pytest.raises(
        ProviderError,
        match=r"cannot determine the workload identity pool: GKE: metadata server "
        r"\(project/project-id\): HTTP 404; GOOGLE_APPLICATION_CREDENTIALS: not set",
    ):
        await provider.mount(gcp.request(SECRET))


def test_bad_settings_name_the_variable(gcp: GcpWorld) -> None:
    cases = {
        "ALLOW_NODE_PUBLISH_SECRET": ("yes", "ALLOW_NODE_PUBLISH_SECRET: must be true or false"),
        "GCP_SECRET_MANAGER_ENDPOINT": (
            "http://secretmanager.internal",
            "plain http is only allowed to a loopback host",
        ),
        "GCP_SECRET_MANAGER_REGIONAL_ENDPOINT": (
            "https://sm.internal",
            r"must contain the placeholder \{location\}",
        ),
        "GAIA_TOKEN_EXCHANGE_ENDPOINT": ("ftp://x", "must be an https:// URL"),
    }
    for name, (value, message) in cases.items():
        with pytest.raises(
            ConfigError,
            match=f"{name}: .*{message}" if name != "ALLOW_NODE_PUBLISH_SECRET" else message,
        ):
            gcp.provider(env={name: value})


async def test_parameter_manager_render(gcp: GcpWorld) -> None:
    from tests.fakes.gcp_model import Parameter

    principal = gcp.cloud.ksa_principal("team-a", "web")
    gcp.cloud.state.parameters[(NUMBER, "", "cfg")] = Parameter({"v1": b"a: 1\n"}, {principal})
    gcp.cloud.state.parameters[(NUMBER, "europe-west4", "cfg")] = Parameter(
        {"v2": b"b"}, {principal}
    )
    secrets = [
        {
            "resourceName": "projects/proj-a/locations/global/parameters/cfg/versions/v1",
            "fileName": "g",
        },
        {
            "resourceName": "projects/proj-a/locations/europe-west4/parameters/cfg/versions/v2",
            "fileName": "r",
        },
    ]
    result = await gcp.provider().mount(gcp.request(secrets))
    assert {f.path: f.contents for f in result.files} == {"g": b"a: 1\n", "r": b"b"}
    assert [v.version for v in result.versions] == [
        f"projects/{NUMBER}/locations/global/parameters/cfg/versions/v1",
        f"projects/{NUMBER}/locations/europe-west4/parameters/cfg/versions/v2",
    ]


def test_pool_audience_constant_matches_upstreams_derivation() -> None:
    assert (
        f"identitynamespace:{POOL}:https://container.googleapis.com/v1/projects/{PROJECT}"
        f"/locations/{LOCATION}/clusters/{CLUSTER}"
    ) == AUDIENCE
