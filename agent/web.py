"""aiohttp endpoints: ``/metrics`` (upstream's ``--metrics-addr``), ``/healthz`` and ``/readyz``.

Each distinct listen address gets its own ``AppRunner`` + ``TCPSite``; when the health address
equals the metrics address every route is served by one site. Stopping cleans the runners up
in reverse start order, so nothing is left listening and no connection outlives the loop.

The health endpoints answer the way Kubernetes components' do: ``ok`` when every check passes;
``?verbose`` lists each check (``[+]name ok``) and ends ``<endpoint> check passed``; a failure
answers 503 listing each check (``[-]name failed: reason``); ``?exclude=<name>`` leaves one out;
``/readyz/<name>`` and ``/healthz/<name>`` run one check.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable, Iterable, Mapping

import structlog
from aiohttp import web

from agent.config import parse_listen_address
from agent.errors import ConfigError
from agent.log_redaction import scrub_text
from agent.metrics import Metrics

# True or "" passes; False fails ("not ok"); any other string fails with that reason.
Check = Callable[[], Awaitable[bool | str]]
Address = tuple[str, int]
Handler = Callable[[web.Request], Awaitable[web.Response]]
Site = tuple[str, Address, tuple[str, ...]]  # role, address, route groups

DEFAULT_CHECK_TIMEOUT = 2.0

log = structlog.get_logger(__name__)


class WebServer:
    """The agent's HTTP side; construct, ``await start()``, and ``await stop()`` on shutdown."""

    def __init__(
        self,
        *,
        metrics_addr: str,
        health_addr: str,
        metrics: Metrics,
        health_checks: Mapping[str, Check] | None = None,
        ready_checks: Mapping[str, Check] | None = None,
        check_timeout: float = DEFAULT_CHECK_TIMEOUT,
    ) -> None:
        self._metrics = metrics
        self._health_checks = dict(health_checks or {})
        self._ready_checks = dict(ready_checks or {})
        self._check_timeout = check_timeout
        # Parse eagerly so a bad flag fails at start-up, before anything else is running.
        self._plan = self._plan_sites(
            parse_listen_address(metrics_addr) if metrics_addr else None,
            parse_listen_address(health_addr) if health_addr else None,
        )
        self._runners: list[tuple[str, web.AppRunner]] = []

    @staticmethod
    def _plan_sites(metrics: Address | None, health: Address | None) -> list[Site]:
        if metrics is not None and metrics == health:
            return [("metrics", metrics, ("metrics", "health"))]
        plan: list[Site] = []
        if metrics is not None:
            plan.append(("metrics", metrics, ("metrics",)))
        if health is not None:
            plan.append(("health", health, ("health",)))
        return plan

    @property
    def bound_ports(self) -> dict[str, int]:
        """Actual ports by role (``metrics``, ``health``); useful after binding port 0."""
        ports: dict[str, int] = {}
        for role, runner in self._runners:
            addresses = runner.addresses
            if addresses:
                ports[role] = int(addresses[0][1])
        if "metrics" in ports and len(self._plan) == 1 and len(self._plan[0][2]) == 2:
            ports["health"] = ports["metrics"]
        return ports

    async def start(self) -> None:
        try:
            for role, (host, port), groups in self._plan:
                runner = web.AppRunner(self._build_app(groups), access_log=None)
                await runner.setup()
                self._runners.append((role, runner))
                try:
                    await web.TCPSite(runner, host or None, port).start()
                except OSError as exc:
                    raise ConfigError(f"cannot listen for {role} on {host}:{port}: {exc}") from exc
                log.info("web.listening", role=role, host=host or "*", port=self.bound_ports[role])
        except BaseException:
            await self.stop()
            raise

    async def stop(self) -> None:
        # Reverse order: whatever started last depends on the least and goes first.
        while self._runners:
            _, runner = self._runners.pop()
            await runner.cleanup()

    def _build_app(self, groups: tuple[str, ...]) -> web.Application:
        app = web.Application()
        if "metrics" in groups:
            app.router.add_get("/metrics", self._serve_metrics)
        if "health" in groups:
            for endpoint, checks in (
                ("healthz", self._health_checks),
                ("readyz", self._ready_checks),
            ):
                app.router.add_get(f"/{endpoint}", self._aggregate_handler(endpoint, checks))
                app.router.add_get(f"/{endpoint}/{{check}}", self._single_handler(endpoint, checks))
        return app

    async def _serve_metrics(self, _request: web.Request) -> web.Response:
        body, content_type = self._metrics.exposition()
        return web.Response(body=body, headers={"Content-Type": content_type})

    def _aggregate_handler(self, endpoint: str, checks: Mapping[str, Check]) -> Handler:
        async def serve(request: web.Request) -> web.Response:
            query = request.query
            return await self._run_checks(
                endpoint, checks, verbose="verbose" in query, exclude=query.getall("exclude", [])
            )

        return serve

    def _single_handler(self, endpoint: str, checks: Mapping[str, Check]) -> Handler:
        async def serve(request: web.Request) -> web.Response:
            name = request.match_info["check"]
            check = checks.get(name)
            if check is None:
                known = ", ".join(sorted(checks)) or "none"
                return web.Response(
                    status=404, text=f"no {endpoint} check named {name!r}; checks: {known}\n"
                )
            why = await self._run_one(name, check)
            if why:
                return web.Response(status=503, text=f"[-]{name} failed: {why}\n")
            return web.Response(text="ok\n")

        return serve

    async def _run_checks(
        self,
        endpoint: str,
        checks: Mapping[str, Check],
        *,
        verbose: bool = False,
        exclude: Iterable[str] = (),
    ) -> web.Response:
        """Kubernetes-style aggregate: ``ok``, or one ``[+]``/``[-]`` line per check.

        As kube-apiserver's ``/readyz``: ``?verbose`` lists every check even when all pass,
        ``?exclude=<name>`` (repeatable) skips one and says so, and an unknown excluded name
        earns a ``warn:`` line rather than an error.
        """
        excluded = set(exclude)
        names = sorted(name for name in checks if name not in excluded)
        results = await asyncio.gather(*(self._run_one(name, checks[name]) for name in names))
        outcome = dict(zip(names, results, strict=True))
        failed = [name for name, why in outcome.items() if why]
        if not failed and not verbose:
            return web.Response(text="ok\n")
        # One line per check, so a probe failure names its cause.
        lines = [
            f"[+]{name} excluded: ok"
            if name in excluded
            else (f"[-]{name} failed: {outcome[name]}" if outcome[name] else f"[+]{name} ok")
            for name in sorted(checks)
        ]
        if unknown := sorted(excluded - set(checks)):
            quoted = ", ".join(f'"{name}"' for name in unknown)
            lines.append(
                f"warn: some {endpoint} checks cannot be excluded: no matches for {quoted}"
            )
        if not failed:
            return web.Response(text="\n".join([*lines, f"{endpoint} check passed"]) + "\n")
        log.warning(f"web.{endpoint}_failed", failed=failed)
        lines.append(f"{endpoint} check failed")
        return web.Response(status=503, text="\n".join(lines) + "\n")

    async def _run_one(self, name: str, check: Check) -> str:
        """Empty string when the check passed, else a short one-line reason.

        The body is served unauthenticated, so the reason is never exception text and a check's
        own words go through the log scrubber (secret-shaped strings, registered values).
        """
        try:
            async with asyncio.timeout(self._check_timeout):
                passed = await check()
        except TimeoutError:
            return f"timed out after {self._check_timeout:g}s"
        except Exception as exc:
            # The exception message may quote request data; the log line is redacted, the
            # HTTP body only gets the type.
            log.warning("web.check_error", check=name, error=exc)
            return f"error {type(exc).__name__}"
        if isinstance(passed, str):
            return scrub_text(" ".join(passed.split()))
        return "" if passed else "not ok"
