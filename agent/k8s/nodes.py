"""This agent's own Node through the API: its labels, for providers that read the node's
topology (the AWS provider's region, as ASCP reads ``topology.kubernetes.io/region``).

``KubeNodeLabels`` implements ``ports.NodeLabelSource`` with one GET of
``/api/v1/nodes/<--nodeid>``, made only when a provider first asks (a node without such
volumes never reads its Node), then kept: a node's region and zone are set when it registers
and do not change. A publish waits for the first read, so it goes on the publish lane; after
``REFRESH_SECONDS`` the next ask is answered from the cache and a refresh runs behind it on the
background lane, so no publish ever waits for a refresh. A failed first read is not kept:
the next ask tries again, but callers that queued behind a failing read get its error rather
than each sending one more request.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable, Coroutine, Mapping
from typing import Any

import structlog

from agent.errors import ApiForbidden, ApiNotFound, KubernetesApiError, NodeNotFound
from agent.k8s.api import KubeApi, Lane
from agent.k8s.resources import NODES

log = structlog.get_logger(__name__)

REFRESH_SECONDS = 600.0  # the labels that matter are set at registration; a refresh is cheap
RETRY_SECONDS = 60.0  # after a failed refresh, the cached labels serve this long before the next
FORBIDDEN_HINT = (
    "the agent may not read its Node; the chart's ClusterRole grants it (rule: nodes get, "
    "installed with rbac.install=true); without the chart, grant get on nodes to the agent's "
    "service account"
)

Spawn = Callable[[Coroutine[Any, Any, None], str], None]


class KubeNodeLabels:
    """``spawn`` runs the background refresh (the adapter's task set, closed at its stop)."""

    def __init__(
        self,
        api: KubeApi,
        node_name: str,
        spawn: Spawn,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self._api = api
        self._node_name = node_name
        self._spawn = spawn
        self._clock = clock
        self._labels: Mapping[str, str] | None = None
        self._refresh_at = 0.0
        self._refreshing = False
        self._lock = asyncio.Lock()
        self._attempts = 0  # reads finished, so a queued caller can tell one ended meanwhile
        self._last_error: KubernetesApiError | NodeNotFound | None = None

    @property
    def node_name(self) -> str:
        return self._node_name

    async def labels(self) -> Mapping[str, str]:
        if self._labels is None:
            return await self._first_read()
        if self._clock() >= self._refresh_at and not self._refreshing:
            self._refreshing = True
            self._spawn(self._refresh(), "node-labels")
        return self._labels

    async def _first_read(self) -> Mapping[str, str]:
        attempts = self._attempts
        async with self._lock:
            if self._labels is not None:
                return self._labels
            if self._attempts != attempts and self._last_error is not None:
                raise self._last_error  # the read this caller queued behind has just failed
            self._last_error = None  # a cancelled read leaves none: the next caller reads
            try:
                return self._keep(await self._read(Lane.PUBLISH))
            except (KubernetesApiError, NodeNotFound) as err:
                self._last_error = err
                raise
            finally:
                self._attempts += 1

    async def _refresh(self) -> None:
        try:
            self._keep(await self._read(Lane.BACKGROUND))
        except (KubernetesApiError, NodeNotFound) as err:
            # The labels read before still stand: a node does not move between regions.
            self._refresh_at = self._clock() + RETRY_SECONDS
            log.warning("node_labels.refresh_failed", node=self._node_name, error=err.message)
        finally:
            self._refreshing = False

    def _keep(self, labels: Mapping[str, str]) -> Mapping[str, str]:
        self._labels, self._last_error = labels, None
        self._refresh_at = self._clock() + REFRESH_SECONDS
        return labels

    async def _read(self, lane: Lane) -> Mapping[str, str]:
        try:
            document = await self._api.get(NODES, None, self._node_name, lane)
        except ApiNotFound:
            raise NodeNotFound(
                f"node {self._node_name} not found (--nodeid must be the node's name: the chart "
                "passes spec.nodeName)"
            ) from None
        except ApiForbidden as err:
            raise err.reworded(f"{err.message}: {FORBIDDEN_HINT}") from None
        metadata = document.get("metadata")
        raw = metadata.get("labels") if isinstance(metadata, dict) else None
        return {str(k): str(v) for k, v in raw.items()} if isinstance(raw, dict) else {}
