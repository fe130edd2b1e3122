"""The node's region, for a SecretProviderClass that names none.

ASCP's order (``server/server.go`` ``getAwsRegions`` and ``getRegionFromNode``): the ``region``
parameter, else ``AWS_REGION`` in the provider's environment, else the
``topology.kubernetes.io/region`` label of the node the pod runs on. ASCP reads the pod to find
its node, then the node; this agent serves only its own node (``--nodeid``), so it reads that
Node alone (``ports.NodeLabelSource``, cached by the adapter). Like ASCP, the deprecated
``failure-domain.beta.kubernetes.io/region`` label is not read.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass

from agent.errors import KubernetesApiError, NodeNotFound
from agent.ports import NodeLabelSource

REGION_LABEL = "topology.kubernetes.io/region"


@dataclass(frozen=True, slots=True)
class NodeRegion:
    """What the node said: ``region`` ("" when it gave none), ``source`` (names the label in
    messages), and ``missing``, why there is none."""

    region: str
    source: str
    missing: str = ""


async def fallback_region(
    attributes: Mapping[str, str], env: Mapping[str, str], nodes: NodeLabelSource | None
) -> NodeRegion | None:
    """The node's region when neither ``region`` nor ``AWS_REGION`` is set; None otherwise
    (the node is then not asked).

    Raises the KubernetesApiError of a failed read (ApiForbidden names the RBAC rule needed),
    in the ``region`` parameter's terms.
    """
    if attributes.get("region") or env.get("AWS_REGION"):
        return None
    if nodes is None:
        missing = "the agent has no node to read labels from (standalone mode without --nodeid)"
        return NodeRegion("", REGION_LABEL, missing)
    source = f"{REGION_LABEL} label of node {nodes.node_name}"
    try:
        labels = await nodes.labels()
    except NodeNotFound as err:
        return NodeRegion("", source, err.message)
    except KubernetesApiError as err:
        raise err.reworded(
            "region: not set by the SecretProviderClass nor by AWS_REGION, and the node's "
            f"{REGION_LABEL} label could not be read: {err.message}"
        ) from None
    region = labels.get(REGION_LABEL, "")
    missing = "" if region else f"node {nodes.node_name} has no {REGION_LABEL} label"
    return NodeRegion(region, source, missing)
