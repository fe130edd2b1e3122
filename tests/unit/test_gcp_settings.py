"""GCP provider settings from the environment, its lazy loading, and key extraction."""

from __future__ import annotations

import json
import subprocess
import sys

import pytest

from agent.errors import ConfigError, ProviderError
from agent.providers.gcp.extract import extract_json_key
from agent.providers.gcp.http import RetryPolicy
from agent.providers.gcp.settings import SECURETOKEN_URL, load_settings


def test_defaults_are_googles() -> None:
    settings = load_settings({})
    endpoints = settings.endpoints
    assert endpoints.secret_manager == "https://secretmanager.googleapis.com"
    assert endpoints.iam_credentials == "https://iamcredentials.googleapis.com"
    assert endpoints.token_exchange is None  # securetoken, or STS for a plain WIF audience
    assert endpoints.metadata == "http://169.254.169.254"
    assert settings.allow_node_publish_secret is False
    assert settings.cluster.identity_provider_prefix == "https://container.googleapis.com/v1"


def test_private_endpoints_and_upstream_variables() -> None:
    settings = load_settings(
        {
            "GCP_SECRET_MANAGER_ENDPOINT": "https://secretmanager-psc.p.googleapis.com/",
            "GCP_IAM_CREDENTIALS_ENDPOINT": "https://iamcredentials-psc.p.googleapis.com",
            "GAIA_TOKEN_EXCHANGE_ENDPOINT": SECURETOKEN_URL,
            "GCE_METADATA_HOST": "169.254.169.254:8080",
            "ALLOW_NODE_PUBLISH_SECRET": "T",
            "PROJECT": "p",
            "CLUSTER_NAME": "c",
            "CLUSTER_LOCATION": "l",
        }
    )
    assert settings.endpoints.secret_manager == "https://secretmanager-psc.p.googleapis.com"
    assert settings.endpoints.token_exchange == SECURETOKEN_URL
    assert settings.endpoints.metadata == "http://169.254.169.254:8080"
    assert settings.allow_node_publish_secret is True
    assert (settings.cluster.project, settings.cluster.name, settings.cluster.location) == (
        "p",
        "c",
        "l",
    )


@pytest.mark.parametrize(
    ("name", "value", "message"),
    [
        ("GCP_SECRET_MANAGER_ENDPOINT", "http://10.0.0.5", "plain http is only allowed"),
        ("GCP_SECRET_MANAGER_ENDPOINT", "https://a/b?c=d", "without a query"),
        ("GCP_SECRET_MANAGER_ENDPOINT", "https://user:pw@host", "must not carry credentials"),
        ("GCP_SECRET_MANAGER_ENDPOINT", "https://host:99999", "not a valid URL"),
        ("GCP_PARAMETER_MANAGER_REGIONAL_ENDPOINT", "https://pm.example", "{location}"),
        ("GCE_METADATA_HOST", "http://metadata", "without a scheme"),
        ("ALLOW_NODE_PUBLISH_SECRET", "yes", "must be true or false"),
    ],
)
def test_bad_values_name_the_variable(name: str, value: str, message: str) -> None:
    with pytest.raises(ConfigError) as info:
        load_settings({name: value})
    assert info.value.message.startswith(name)
    assert message in info.value.message


def test_loopback_http_is_allowed_for_a_local_proxy() -> None:
    for host in ("127.0.0.1:8080", "localhost", "[::1]:9000"):
        load_settings({"GCP_SECRET_MANAGER_ENDPOINT": f"http://{host}"})


def test_backoff_policy() -> None:
    policy = RetryPolicy()
    assert [policy.delay(n, None, lambda: 1.0) for n in range(6)] == [0.5, 1, 2, 4, 8, 8]
    assert policy.delay(0, None, lambda: 0.25) == 0.125
    assert policy.delay(3, 2.0, lambda: 1.0) == 2.0  # Retry-After wins
    assert policy.delay(3, 3600.0, lambda: 1.0) == 30.0  # but is capped


def test_json_key_extraction_follows_go() -> None:
    doc = json.dumps({"a": "x", "n": 1, "z": None, "o": {"k": "v"}, "s": "\ud800"}).encode()
    assert extract_json_key("secrets[0]", doc, "a") == b"x"
    assert extract_json_key("secrets[0]", doc, "s") == "\ufffd".encode()
    for key in ("n", "z", "o"):
        with pytest.raises(ProviderError, match=f"the value of '{key}' is not a string"):
            extract_json_key("secrets[0]", doc, key)
    for bad in (b"[1]", b"{", b'{"a": NaN}'):
        with pytest.raises(ProviderError, match=r"secrets\[0\]\.extractJSONKey"):
            extract_json_key("secrets[0]", bad, "a")


def test_importing_the_provider_loads_no_google_auth() -> None:
    code = (
        "import sys\n"
        "from agent.providers.registry import ProviderRegistry\n"
        "assert 'agent.providers.gcp' not in sys.modules\n"
        "import agent.providers.gcp\n"
        "loaded = sorted(m for m in sys.modules if m.startswith(('google.', 'requests')))\n"
        "print(','.join(loaded))\n"
    )
    out = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, check=True
    ).stdout.strip()
    assert out == ""


def test_google_access_tokens_are_scrubbed_from_messages() -> None:
    from agent.log_redaction import REDACTED, scrub_text

    text = "token ya29.a0AfB_byC4" + "x" * 40 + " rejected"
    assert scrub_text(text) == f"token {REDACTED} rejected"


def test_registry_builds_the_gcp_provider_lazily() -> None:
    code = (
        "import sys\n"
        "from agent.providers.registry import ProviderRegistry\n"
        "registry = ProviderRegistry(timeout=5, version_key=b'k', load_entry_points=False)\n"
        "assert 'gcp' in registry.names()\n"
        "assert 'agent.providers.gcp' not in sys.modules and 'google_crc32c' not in sys.modules\n"
        "provider = registry.get('gcp')\n"
        "print(type(provider).__name__, provider.name)\n"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "GcpProvider gcp"
