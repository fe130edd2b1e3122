"""A missing required parameter names the keys that look like it, for every built-in provider."""

from __future__ import annotations

import pytest

from agent.errors import InvalidSecretProviderClass
from agent.providers.aws.config import parse_config as aws_config
from agent.providers.azure.config import objects_text
from agent.providers.common.parameters import lookalikes, require_parameter
from agent.providers.gcp.config import parse_config as gcp_config
from agent.providers.vault.config import Defaults
from agent.providers.vault.config import parse_config as vault_config

CONTEXT = {
    "secretProviderClass": "app",
    "csi.storage.k8s.io/pod.name": "web-0",
    "csi.storage.k8s.io/serviceAccount.tokens": "{}",
}


@pytest.mark.parametrize("typo", ["objetcs", "object", "Objects", "objects "])
def test_near_misses_are_found(typo: str) -> None:
    assert lookalikes({**CONTEXT, typo: "x", "roleName": "r"}, "objects") == [typo]


def test_unrelated_and_volume_context_keys_are_not_suggested() -> None:
    assert lookalikes({**CONTEXT, "roleName": "r", "vaultAddress": "a"}, "objects") == []
    with pytest.raises(InvalidSecretProviderClass) as info:
        require_parameter({**CONTEXT, "roleName": "r"}, "objects", "a list")
    assert info.value.message == "objects: is required (a list)"


def test_a_present_parameter_is_returned_even_empty() -> None:
    assert require_parameter({"objects": ""}, "objects", "a list") == ""


def test_every_provider_names_the_misspelling() -> None:
    with pytest.raises(InvalidSecretProviderClass, match="has 'objetcs': misspelled"):
        vault_config({"objetcs": "- {}", "roleName": "r"}, "vault", Defaults("http://v"))
    with pytest.raises(InvalidSecretProviderClass, match="has 'objetcs': misspelled"):
        aws_config({"objetcs": "[]", "region": "us-east-1"}, {}, None)
    with pytest.raises(InvalidSecretProviderClass, match="has 'Objects': misspelled"):
        objects_text({"Objects": "array: []"})
    with pytest.raises(InvalidSecretProviderClass, match=r"^secrets: is required .*'secret'"):
        gcp_config({"secret": "[]"}, {}, allow_node_publish_secret=False)
