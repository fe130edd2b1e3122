"""The agent's one door to the Kubernetes API: plain JSON in and out, rate-limited in two
lanes, every failure translated once (``api_errors``).

Requests go through kubernetes_asyncio's ``ApiClient`` (auth headers, refresh hooks, TLS,
proxies) with ``_preload_content=False``: the response is read here as JSON and never turned
into generated model objects. Two token buckets, ``publish`` and ``background``, each with the
configured QPS and burst: what kubelet's call waits for (a SecretProviderClass missing from
the cache, service accounts, token requests, the HMAC key at start) never waits behind
informer relists, events, secret sync, or pod status writes (written behind the publish).
"""

from __future__ import annotations

import asyncio
import enum
import json
from collections.abc import AsyncIterator, Callable, Iterable, Mapping
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import urlsplit

import aiohttp

from agent import __version__
from agent.aio.ratelimit import TokenBucket
from agent.errors import ApiForbidden, ApiNotFound, ApiUnavailable
from agent.k8s import api_errors
from agent.k8s.keepalive import KeepAlive
from agent.k8s.lean_import import ApiClient, ApiException, ConfigException, Configuration
from agent.k8s.resources import Resource
from agent.k8s.watch_request import keep_alive, watch_query, watch_timeout
from agent.k8s.watch_stream import WatchStream
from agent.log_redaction import scrub_text

USER_AGENT = f"secrets-store-agent/{__version__}"
JSON = "application/json"
MERGE_PATCH = "application/merge-patch+json"

Object = dict[str, Any]
Observer = Callable[[str, str, str], None]  # (API host, HTTP method, status code or "<error>")


class Lane(enum.Enum):
    PUBLISH = "publish"
    BACKGROUND = "background"


@dataclass(frozen=True, slots=True)
class ApiSettings:
    """Client-side limits; each lane gets ``qps``/``burst`` of its own (0 qps: unlimited).
    ``keepalive``: TCP keepalive on a watch's connection (None: off)."""

    qps: float = 20.0
    burst: int = 30
    request_timeout: float = 10.0
    keepalive: KeepAlive | None = field(default_factory=KeepAlive)


class KubeApi:
    """Built without I/O; ``connect`` (in the agent's start) gives it its configuration."""

    def __init__(self, settings: ApiSettings | None = None, observer: Observer | None = None):
        self._settings = settings or ApiSettings()
        self._observer = observer
        self._lanes = {lane: TokenBucket(self._settings.qps, self._settings.burst) for lane in Lane}
        self._connected: ApiClient | None = None
        self.host = ""

    def connect(self, configuration: Configuration) -> None:
        """Open the HTTP session (inside the running loop: aiohttp's rule)."""
        client = ApiClient(configuration)
        client.user_agent = USER_AGENT
        # client-go's host label: host[:port], no scheme.
        self._connected, self.host = client, urlsplit(str(configuration.host)).netloc

    async def close(self) -> None:
        if self._connected is not None:
            await self._connected.close()
            self._connected = None

    @property
    def _client(self) -> ApiClient:
        if self._connected is None:
            raise ApiUnavailable("the Kubernetes API client is not connected")
        return self._connected

    # ---- verbs ----

    async def served(self, resource: Resource, lane: Lane) -> bool:
        """Discovery: does the server serve this resource in this version? (A group's
        version list is the union over its resources, so it cannot tell.)"""
        path = f"/apis/{resource.group}/{resource.version}" if resource.group else "/api/v1"
        try:
            document = await self._call("GET", path, f"discover {resource.api_version}", lane)
        except ApiNotFound:
            return False
        return any(
            isinstance(item, dict) and item.get("name") == resource.plural
            for item in document.get("resources") or ()
        )

    async def get(self, resource: Resource, namespace: str | None, name: str, lane: Lane) -> Object:
        action = f"get {resource.describe(namespace, name)}"
        return await self._call("GET", resource.path(namespace, name), action, lane)

    async def list(
        self,
        resource: Resource,
        lane: Lane,
        *,
        namespace: str | None = None,
        selectors: Mapping[str, str] | None = None,
        limit: int = 500,
        continue_token: str = "",
        not_older_than: str = "",
    ) -> Object:
        """One page. ``not_older_than``: a resourceVersion the answer must be at least as new
        as (``resourceVersionMatch=NotOlderThan``); a server that has not reached it answers
        504 ApiTooLargeResourceVersion. Without it the server reads its newest state."""
        query = [*(selectors or {}).items(), ("limit", str(limit))]
        if continue_token:
            query.append(("continue", continue_token))
        if not_older_than:
            query += [("resourceVersion", not_older_than), ("resourceVersionMatch", "NotOlderThan")]
        action = f"list {resource.describe(namespace, selectors=selectors)}"
        page = await self._call("GET", resource.path(namespace), action, lane, query=query)
        # A list always has ``items`` (maybe empty); without it a cache would take the page
        # for "nothing exists" and report every object deleted.
        if not isinstance(page.get("items"), list) or not isinstance(page.get("metadata"), dict):
            raise ApiUnavailable(f"{action}: the answer is not a list (no items and metadata)")
        return page

    async def create(self, resource: Resource, namespace: str, body: Object, lane: Lane) -> Object:
        name = body.get("metadata", {}).get("name") or "(generated name)"
        action = f"create {resource.describe(namespace, name)}"
        return await self._call("POST", resource.path(namespace), action, lane, body=body)

    async def create_subresource(
        self, resource: Resource, namespace: str, name: str, *, sub: str, body: Object, lane: Lane
    ) -> Object:
        action = f"create {resource.describe(namespace, name)}/{sub}"
        path = resource.path(namespace, name, sub)
        return await self._call("POST", path, action, lane, body=body)

    async def replace(
        self, resource: Resource, namespace: str, name: str, body: Object, lane: Lane
    ) -> Object:
        action = f"update {resource.describe(namespace, name)}"
        return await self._call("PUT", resource.path(namespace, name), action, lane, body=body)

    async def merge_patch(
        self, resource: Resource, namespace: str, name: str, patch: Object, lane: Lane
    ) -> Object:
        action = f"patch {resource.describe(namespace, name)}"
        path = resource.path(namespace, name)
        return await self._call("PATCH", path, action, lane, body=patch, content_type=MERGE_PATCH)

    async def delete(
        self,
        resource: Resource,
        namespace: str,
        name: str,
        lane: Lane,
        *,
        body: Object | None = None,
    ) -> Object:
        """``body``: DeleteOptions (e.g. ``preconditions``), when the caller needs them."""
        action = f"delete {resource.describe(namespace, name)}"
        path = resource.path(namespace, name)
        return await self._call("DELETE", path, action, lane, body=body)

    @asynccontextmanager
    async def watch(
        self,
        resource: Resource,
        resource_version: str,
        *,
        namespace: str | None = None,
        selectors: Mapping[str, str] | None = None,
        server_timeout: int = 300,
        read_margin: float = 30.0,
    ) -> AsyncIterator[WatchStream]:
        """A watch from ``resource_version`` with bookmarks; yields decoded watch events.

        The stream ends when the server closes it (``server_timeout``, its ``timeoutSeconds``);
        an ``ERROR`` event raises the translated Status (ApiGone for an expired resource
        version). ApiUnavailable: no answer within ``request_timeout`` (the apiserver answers
        a watch at once and sends events as they come), nothing received for
        ``server_timeout + read_margin`` s (a server that hangs), or a connection that failed:
        dropped, or found dead by TCP keepalive (``ApiSettings.keepalive``) while quiet.
        """
        action = f"watch {resource.describe(namespace, selectors=selectors)}"
        query = watch_query(resource_version, selectors, server_timeout)
        timeout = watch_timeout(self._settings.request_timeout, server_timeout, read_margin)
        await self._lanes[Lane.BACKGROUND].acquire()
        path = resource.path(namespace)
        try:
            async with asyncio.timeout(self._settings.request_timeout):
                response = await self._send("GET", path, action, query=query, timeout=timeout)
        except TimeoutError as err:
            raise api_errors.from_exception(action, err) from None
        try:
            if response.status >= 300:
                raise api_errors.from_response(
                    action, response.status, await response.read(), response.headers
                )
            keep_alive(response, self._settings.keepalive)
            yield WatchStream(response, action)
        finally:
            response.close()

    # ---- plumbing ----

    async def _call(
        self,
        method: str,
        path: str,
        action: str,
        lane: Lane,
        *,
        query: Iterable[tuple[str, str]] = (),
        body: Object | None = None,
        content_type: str = JSON,
    ) -> Object:
        await self._lanes[lane].acquire()
        timeout = self._settings.request_timeout
        try:
            async with asyncio.timeout(timeout):
                response = await self._send(
                    method, path, action, query=query, body=body, content_type=content_type
                )
                async with response:
                    data = await response.read()
        except TimeoutError as err:
            raise api_errors.from_exception(action, err) from None
        except (aiohttp.ClientError, OSError) as err:
            raise api_errors.from_exception(action, err) from None
        if response.status >= 300:
            raise api_errors.from_response(action, response.status, data, response.headers)
        try:
            document = json.loads(data) if data else {}
        except ValueError:
            raise ApiUnavailable(f"{action}: the answer is not JSON") from None
        if not isinstance(document, dict):
            raise ApiUnavailable(f"{action}: the answer is not a JSON object")
        return document

    async def _send(
        self,
        method: str,
        path: str,
        action: str,
        *,
        query: Iterable[tuple[str, str]] = (),
        body: Object | None = None,
        content_type: str = JSON,
        timeout: aiohttp.ClientTimeout | None = None,
    ) -> aiohttp.ClientResponse:
        headers = {"Accept": JSON, "Content-Type": content_type}
        try:
            response: aiohttp.ClientResponse = await self._client.call_api(
                path,
                method,
                query_params=list(query),
                header_params=headers,
                body=body,
                auth_settings=["BearerToken"],
                _preload_content=False,
                _request_timeout=timeout or self._settings.request_timeout,
            )
        except ApiException as err:
            # Releases after kubernetes_asyncio 36.1 raise for a non-2xx answer even with
            # _preload_content=False (its commit c1a69be0); earlier ones return the response.
            self._observe(method, str(err.status or "<error>"))
            raise api_errors.from_client_exception(
                action, err.status, err.reason, err.body, err.headers
            ) from None
        except ConfigException as err:  # an exec plugin or token file failed
            self._observe(method, "<error>")
            # Its text may quote the plugin's stderr: scrubbed and cut like a Status message.
            detail = scrub_text(" ".join(str(err).split()))[: api_errors.MAX_MESSAGE_CHARS]
            raise ApiForbidden(f"{action}: cannot obtain credentials: {detail}") from None
        except (aiohttp.ClientError, OSError, TimeoutError) as err:
            self._observe(method, "<error>")
            raise api_errors.from_exception(action, err) from None
        except ValueError as err:  # aiohttp refused a header: nothing was sent
            self._observe(method, "<error>")
            authorization = self._client.configuration.api_key.get("BearerToken")
            raise api_errors.refused_request(action, err, str(authorization or "")) from None
        self._observe(method, str(response.status))
        return response

    def _observe(self, method: str, code: str) -> None:
        if self._observer is not None:
            self._observer(self.host, method, code)
