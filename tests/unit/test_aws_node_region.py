"""Where the AWS provider's primary region comes from, in ASCP's order (server/server.go
``getAwsRegions``, ``getRegionFromNode``): ``region``, else ``AWS_REGION``, else the node's
``topology.kubernetes.io/region`` label; the node is asked only when the first two are unset."""

from __future__ import annotations

from collections.abc import Mapping

import pytest

from agent.errors import ApiForbidden, ApiUnavailable, InvalidSecretProviderClass, NodeNotFound
from agent.providers.aws.config import parse_config
from agent.providers.aws.node_region import REGION_LABEL, NodeRegion, fallback_region

OBJECTS = "- {objectName: a, objectType: ssmparameter}"


class Node:
    """``ports.NodeLabelSource`` with fixed labels, or a fixed failure; counts its reads."""

    def __init__(
        self, labels: Mapping[str, str] | None = None, error: Exception | None = None
    ) -> None:
        self._labels, self._error, self.reads = dict(labels or {}), error, 0

    @property
    def node_name(self) -> str:
        return "node-a"

    async def labels(self) -> Mapping[str, str]:
        self.reads += 1
        if self._error is not None:
            raise self._error
        return self._labels


WEST = Node({REGION_LABEL: "eu-west-1"})


async def config_for(attributes: dict[str, str], env: dict[str, str], node: Node | None) -> object:
    found = await fallback_region({"objects": OBJECTS, **attributes}, env, node)
    return parse_config({"objects": OBJECTS, **attributes}, env, found).regions


async def test_the_parameter_wins_and_the_node_is_not_asked() -> None:
    node = Node({REGION_LABEL: "eu-west-1"})
    assert await config_for({"region": "us-east-1"}, {"AWS_REGION": "us-west-2"}, node) == (
        "us-east-1",
    )
    assert node.reads == 0


async def test_aws_region_comes_before_the_node_label_as_in_ascp() -> None:
    node = Node({REGION_LABEL: "eu-west-1"})
    assert await config_for({}, {"AWS_REGION": "us-west-2"}, node) == ("us-west-2",)
    assert node.reads == 0


async def test_the_node_label_when_nothing_else_says() -> None:
    regions = await config_for({"failoverRegion": "us-east-1"}, {}, WEST)
    assert regions == ("eu-west-1", "us-east-1")


async def test_a_bad_label_value_is_refused_naming_the_label() -> None:
    node = Node({REGION_LABEL: "eu west"})
    with pytest.raises(InvalidSecretProviderClass) as raised:
        await config_for({}, {}, node)
    assert raised.value.message == (
        f"{REGION_LABEL} label of node node-a: 'eu west' is not an AWS region name (e.g. us-east-1)"
    )


async def test_the_failover_region_may_not_repeat_the_nodes() -> None:
    with pytest.raises(InvalidSecretProviderClass, match="failover region cannot be the same"):
        await config_for({"failoverRegion": "eu-west-1"}, {}, WEST)


NONE_ANYWHERE = [
    (Node({"kubernetes.io/hostname": "node-a"}), f"node node-a has no {REGION_LABEL} label"),
    (Node(error=NodeNotFound("node node-a not found in /spc")), "node node-a not found in /spc"),
    (None, "the agent has no node to read labels from (standalone mode without --nodeid)"),
]


@pytest.mark.parametrize(("node", "why"), NONE_ANYWHERE)
async def test_no_region_anywhere_names_all_three_sources(node: Node | None, why: str) -> None:
    with pytest.raises(InvalidSecretProviderClass) as raised:
        await config_for({}, {}, node)
    assert raised.value.message == (
        "region: not set: the SecretProviderClass has no 'region' parameter, the agent's "
        f"environment has no AWS_REGION, and {why}; set one of the three"
    )


@pytest.mark.parametrize("error", [ApiForbidden, ApiUnavailable])
async def test_an_unreadable_node_keeps_its_kind_and_says_why_it_was_read(
    error: type[ApiForbidden],
) -> None:
    node = Node(error=error("get nodes node-a: HTTP 503", status=503))
    with pytest.raises(error) as raised:
        await fallback_region({}, {}, node)
    assert raised.value.message == (
        "region: not set by the SecretProviderClass nor by AWS_REGION, and the node's "
        f"{REGION_LABEL} label could not be read: get nodes node-a: HTTP 503"
    )
    assert raised.value.status == 503


def test_parse_config_without_a_node_lookup_says_so() -> None:
    with pytest.raises(InvalidSecretProviderClass, match="label was not read; set one of the"):
        parse_config({"objects": OBJECTS}, {}, None)
    assert parse_config({"objects": OBJECTS}, {}, NodeRegion("ap-south-1", "x")).regions == (
        "ap-south-1",
    )
