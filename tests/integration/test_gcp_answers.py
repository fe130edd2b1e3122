"""GcpProvider against answers no healthy Google API gives: bodies cut short or too large,
redirects, and a large payload that arrives in many reads. Tokens come from the fake Google
Cloud; Secret Manager is a server that answers as each test says."""

from __future__ import annotations

from collections.abc import AsyncIterator, Awaitable, Callable

import pytest
from aiohttp import web

from agent.errors import ProviderError, ProviderUnavailable
from agent.providers.gcp import GcpProvider, http
from tests.fakes.gcp_model import Parameter
from tests.support.gcp import GcpWorld

NUMBER = "123456789"
SECRET = [{"resourceName": "projects/proj-a/secrets/s/versions/1", "fileName": "f"}]
Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]


class Answers:
    """A Secret Manager endpoint whose every answer comes from ``handler``."""

    def __init__(self) -> None:
        self.handler: Handler | None = None
        self.requests: list[str] = []
        self.url = ""

    async def dispatch(self, request: web.Request) -> web.StreamResponse:
        self.requests.append(request.path)
        assert self.handler is not None
        return await self.handler(request)


@pytest.fixture
async def answers() -> AsyncIterator[Answers]:
    server = Answers()
    app = web.Application()
    app.router.add_route("*", "/{tail:.*}", server.dispatch)
    runner = web.AppRunner(app, access_log=None)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    port = site._server.sockets[0].getsockname()[1]  # type: ignore[union-attr]
    server.url = f"http://127.0.0.1:{port}"
    try:
        yield server
    finally:
        await runner.cleanup()


def provider_for(gcp: GcpWorld, answers: Answers) -> GcpProvider:
    async def no_wait(_: float) -> None:
        return None

    return gcp.provider(env={"GCP_SECRET_MANAGER_ENDPOINT": answers.url}, sleep=no_wait)


async def test_a_one_mebibyte_parameter_arrives_whole(gcp: GcpWorld) -> None:
    # Parameter Manager's largest payload; its JSON answer (base64, twice) spans many reads.
    payload = bytes(range(256)) * 4096
    principal = gcp.cloud.ksa_principal("team-a", "web")
    gcp.cloud.state.parameters[(NUMBER, "", "big")] = Parameter({"v1": payload}, {principal})
    name = "projects/proj-a/locations/global/parameters/big/versions/v1"
    result = await gcp.provider().mount(gcp.request([{"resourceName": name, "fileName": "big"}]))
    assert result.files[0].contents == payload


async def test_a_body_cut_short_is_retried_then_reported(gcp: GcpWorld, answers: Answers) -> None:
    async def cut_short(request: web.Request) -> web.StreamResponse:
        response = web.StreamResponse(headers={"Content-Length": "1000"})
        response.content_type = "application/json"
        await response.prepare(request)
        await response.write(b'{"name": "projects/1/secrets/s/versions/1", "payl')
        assert request.transport is not None
        request.transport.close()
        return response

    answers.handler = cut_short
    with pytest.raises(ProviderUnavailable, match=r"secrets\[0\] .*ClientPayloadError"):
        await provider_for(gcp, answers).mount(gcp.request(SECRET))
    assert len(answers.requests) == http.RetryPolicy().attempts


@pytest.mark.parametrize("chunked", [False, True])
async def test_an_oversized_answer_is_refused_once(
    gcp: GcpWorld, answers: Answers, monkeypatch: pytest.MonkeyPatch, chunked: bool
) -> None:
    monkeypatch.setattr(http, "MAX_RESPONSE_BYTES", 64 * 1024)

    async def oversized(request: web.Request) -> web.StreamResponse:
        response = web.StreamResponse()
        if chunked:
            response.enable_chunked_encoding()
        else:
            response.content_length = 100 * 1024
        await response.prepare(request)
        for _ in range(100):
            await response.write(b"x" * 1024)
        await response.write_eof()
        return response

    answers.handler = oversized
    with pytest.raises(ProviderError, match="answer is larger than 65536 bytes") as info:
        await provider_for(gcp, answers).mount(gcp.request(SECRET))
    assert not isinstance(info.value, ProviderUnavailable)
    assert len(answers.requests) == 1


async def test_a_redirect_is_not_followed(gcp: GcpWorld, answers: Answers) -> None:
    async def redirect(request: web.Request) -> web.StreamResponse:
        if request.path.startswith("/elsewhere"):
            return web.json_response({"name": "projects/1/secrets/x/versions/1", "payload": {}})
        raise web.HTTPFound(f"{answers.url}/elsewhere")

    answers.handler = redirect
    with pytest.raises(ProviderError, match="answered HTTP 302: a redirect, not followed"):
        await provider_for(gcp, answers).mount(gcp.request(SECRET))
    assert answers.requests == ["/v1/projects/proj-a/secrets/s/versions/1:access"]
