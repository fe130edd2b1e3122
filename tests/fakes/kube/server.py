"""The fake kube-apiserver: an aiohttp server on a real TCP port (HTTP, or HTTPS with a test
CA) in front of a :class:`~tests.fakes.kube.cluster.Cluster`.

    async with FakeKubeApi.running(tmp_path) as kube:
        kube.store.put(pod("web-0", node="node-a"))
        ... point a client at kube.url or kube.kubeconfig_path ...
        kube.faults.fail(500, verb="create", resource="secretproviderclasspodstatuses")
        await kube.down(); await kube.up()      # API outage: connections refused, then back
        assert kube.requests.count(verb="get", resource="secretproviderclasses") == 0

Every request passes one middleware, in this order: recorded in :attr:`requests`, bearer
token checked (when ``token`` is set; health, version and OIDC discovery stay anonymous),
:attr:`faults` applied, then served. Errors are ``Status`` bodies with the real reasons. A
request to a deprecated version (SPC ``v1alpha1``) gets the CRD's ``Warning`` header.
"""

from __future__ import annotations

import contextlib
import json
import socket
from collections.abc import AsyncIterator, Callable
from pathlib import Path
from typing import Any

from aiohttp import web

from tests.fakes.kube import discovery
from tests.fakes.kube.builtin import builtin_types
from tests.fakes.kube.cluster import Cluster
from tests.fakes.kube.crds import load_crds
from tests.fakes.kube.events import event_types
from tests.fakes.kube.faults import Faults
from tests.fakes.kube.handlers import ResourceHandlers
from tests.fakes.kube.http_util import json_response
from tests.fakes.kube.keys import FAULT, INFO, WARNING
from tests.fakes.kube.kubeconfig import write_kubeconfig
from tests.fakes.kube.meta import Clock, utc_now
from tests.fakes.kube.paths import RequestInfo, parse_request
from tests.fakes.kube.registry import TypeRegistry
from tests.fakes.kube.requests_log import RecordedRequest, RequestLog
from tests.fakes.kube.status import ApiError, path_not_found, unauthorized
from tests.fakes.kube.streaming import Cadence
from tests.fakes.kube.tls import ServerTls, make_server_tls
from tests.fakes.kube.tokens import TokenIssuer
from tests.fakes.kube.watching import WatchSettings
from tests.support.jwt_signer import JwtSigner

Object = dict[str, Any]
ANONYMOUS_PATHS = (
    "/healthz",
    "/livez",
    "/readyz",
    "/version",
    "/.well-known/openid-configuration",
    "/openid/v1/jwks",
)


class FakeKubeApi:
    def __init__(
        self,
        workdir: Path,
        *,
        tls: bool = False,
        token: str | None = None,
        client_certs: bool = False,
        signer: JwtSigner | None = None,
        gc: bool = True,
        history_limit: int = 10_000,
        watch_timeout: float = 1800.0,
        bookmark_interval: float | None = 60.0,
        bookmark_before_end: float = 2.0,
        crd_paths: list[Path] | None = None,
        clock: Clock = utc_now,
        host: str = "127.0.0.1",
    ) -> None:
        """``workdir`` receives the kubeconfig (and the TLS files). ``token``: require
        ``Authorization: Bearer <token>``. ``client_certs`` (with ``tls``): require a client
        certificate from the fake's CA (the kubeconfig carries it inline). ``gc``: synchronous
        ownerReference garbage collection. ``history_limit``: changes kept for watches/continue
        before compaction.
        ``watch_timeout``: seconds a watch without ``timeoutSeconds`` stays open.
        ``bookmark_interval``, ``bookmark_before_end``: the watch cache's bookmark schedule
        (every minute from a watch's start, the last 2 s before its end; ``None``: only on
        :meth:`Cluster.bookmark`); each is sent only if the resource's watch cache has moved
        past the watch's version (a change of that resource, or :meth:`Cluster.progress`).
        ``crd_paths``: CRD files or directories (default: the chart's)."""
        self.workdir = workdir
        self.host = host
        self.token = token
        types = TypeRegistry([*builtin_types(), *event_types(), *load_crds(crd_paths)])
        self.store = Cluster(types, gc=gc, history_limit=history_limit, clock=clock)
        self.faults = Faults()
        self.requests = RequestLog()
        self.issuer = TokenIssuer(signer or JwtSigner())
        self.tls: ServerTls | None = make_server_tls(workdir / "pki") if tls else None
        if client_certs and self.tls is None:
            raise ValueError("client_certs needs tls=True")
        self.client_certs = client_certs
        self._handlers = ResourceHandlers(
            self.store,
            self.issuer,
            WatchSettings(watch_timeout, Cadence(bookmark_interval, bookmark_before_end)),
        )
        self._runner: web.AppRunner | None = None
        self.port = 0
        self.kubeconfig_path = workdir / "kubeconfig"

    # ---- lifecycle ----

    @classmethod
    @contextlib.asynccontextmanager
    async def running(cls, workdir: Path, **options: Any) -> AsyncIterator[FakeKubeApi]:
        kube = cls(workdir, **options)
        await kube.up()
        try:
            yield kube
        finally:
            await kube.down()

    @property
    def url(self) -> str:
        scheme = "https" if self.tls else "http"
        return f"{scheme}://{self.host}:{self.port}"

    @property
    def is_up(self) -> bool:
        return self._runner is not None

    async def up(self) -> None:
        """Start serving (again, on the same port after :meth:`down`)."""
        if self._runner is not None:
            return
        sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        sock.bind((self.host, self.port))
        self.port = sock.getsockname()[1]
        app = web.Application(middlewares=[self._middleware], client_max_size=8 * 1024 * 1024)
        app.router.add_route("*", "/{tail:.*}", self._dispatch)
        app.on_response_prepare.append(_add_warning)
        # handler_cancellation: a watch whose client went away ends (and unsubscribes) at once.
        runner = web.AppRunner(
            app, access_log=None, shutdown_timeout=0.5, handler_cancellation=True
        )
        await runner.setup()
        context = self.tls.server_context(self.client_certs) if self.tls else None
        await web.SockSite(runner, sock, ssl_context=context).start()
        self._runner = runner
        if not self.kubeconfig_path.exists():
            self.write_kubeconfig(self.kubeconfig_path)

    async def down(self) -> None:
        """Stop serving: open watches are reset, new connections refused."""
        if self._runner is None:
            return
        self.store.drop_watches(reset=True)
        runner, self._runner = self._runner, None
        await runner.cleanup()

    def write_kubeconfig(
        self, path: Path, *, token: str | None = None, namespace: str = "default"
    ) -> Path:
        """A kubeconfig for this server (default token: the one the server requires)."""
        return write_kubeconfig(
            path,
            self.url,
            token=token or self.token,
            ca_path=self.tls.ca_path if self.tls else None,
            client_cert=(self.tls.client_cert_path, self.tls.client_key_path)
            if self.tls and self.client_certs
            else None,
            namespace=namespace,
        )

    # ---- request path ----

    @web.middleware
    async def _middleware(self, request: web.Request, handler: Any) -> web.StreamResponse:
        info = parse_request(request.method, request.path, request.query)
        entry = RecordedRequest(
            info,
            dict(request.query),
            request.headers.get("User-Agent", ""),
            request.content_type,
            await _peek_json(request),
        )
        self.requests.record(entry)
        request[INFO] = info
        try:
            self._authenticate(request)
            fault = self.faults.match(info)
            if fault is not None:
                await fault.pause()
                if fault.reset and fault.drop_after_events is None:
                    _reset(request)
                    return web.Response(status=500)
                if fault.body is not None:
                    headers = {"Content-Type": fault.content_type}
                    entry.status = fault.status or 200
                    return web.Response(body=fault.body, status=entry.status, headers=headers)
                if fault.status:
                    raise fault.error(info)
                request[FAULT] = fault
            response: web.StreamResponse = await handler(request)
        except ApiError as error:
            response = json_response(error.body(), error.code, error.headers)
        entry.status = response.status
        return response

    def _authenticate(self, request: web.Request) -> None:
        if self.token is None or request.path in ANONYMOUS_PATHS:
            return
        if request.headers.get("Authorization") != f"Bearer {self.token}":
            raise unauthorized()

    async def _dispatch(self, request: web.Request) -> web.StreamResponse:
        info = request[INFO]
        if info.is_resource:
            _deprecation(request, self.store.types, info)
            return await self._handlers.handle(request, info)
        if request.method != "GET":
            raise path_not_found()
        body = self._non_resource(request.path.rstrip("/") or "/")
        if isinstance(body, str):
            return web.Response(text=body)
        if body is None:
            raise path_not_found()
        return json_response(body)

    def _non_resource(self, path: str) -> Object | str | None:
        static: dict[str, Callable[[], Object | str]] = {
            "/healthz": lambda: "ok",
            "/livez": lambda: "ok",
            "/readyz": lambda: "ok",
            "/version": lambda: dict(discovery.SERVER_VERSION),
            "/.well-known/openid-configuration": lambda: _oidc_configuration(
                self.issuer.signer.issuer, self.url
            ),
            "/openid/v1/jwks": self.issuer.jwks,
            "/api": lambda: discovery.api_versions(f"{self.host}:{self.port}"),
            "/apis": lambda: discovery.api_group_list(self.store.types),
        }
        if path in static:
            return static[path]()
        return discovery.for_path(self.store.types, path)


def _reset(request: web.Request) -> None:
    if request.transport is not None:
        request.transport.abort()


async def _peek_json(request: web.Request) -> Any:
    if not request.can_read_body:
        return None
    raw = await request.read()  # aiohttp keeps it for the handler
    try:
        return json.loads(raw)
    except ValueError:
        return None


def _deprecation(request: web.Request, types: TypeRegistry, info: RequestInfo) -> None:
    rtype = types.find(info.group, info.version, info.resource)
    version = rtype.version(info.version) if rtype else None
    if rtype and version and version.deprecated:
        text = version.deprecation_warning or (
            f"{rtype.api_version(info.version)} {rtype.kind} is deprecated"
        )
        request[WARNING] = f'299 - "{text}"'


async def _add_warning(request: web.Request, response: web.StreamResponse) -> None:
    warning = request.get(WARNING)
    if warning:
        response.headers["Warning"] = warning


def _oidc_configuration(issuer: str, url: str) -> Object:
    return {
        "issuer": issuer,
        "jwks_uri": f"{url}/openid/v1/jwks",
        "response_types_supported": ["id_token"],
        "subject_types_supported": ["public"],
        "id_token_signing_alg_values_supported": ["RS256"],
    }
