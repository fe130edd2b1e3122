"""google-auth's synchronous transport interface, served by the event loop's aiohttp session.

google-auth calls ``request(url, method, body, headers, timeout)`` from the worker thread
that refreshes credentials; each call is handed to the event loop with
``run_coroutine_threadsafe`` and the thread waits for the answer. Imported only by adc.py when
an SPC uses provider-adc or key.json (it imports google-auth).
"""

from __future__ import annotations

import asyncio
from collections.abc import Mapping

import google.auth.exceptions
import google.auth.transport

from agent.providers.gcp.http import ApiFailure, GoogleHttp


class _Response(google.auth.transport.Response):
    def __init__(self, status: int, headers: Mapping[str, str], data: bytes) -> None:
        self._status, self._headers, self._data = status, headers, data

    @property
    def status(self) -> int:
        return self._status

    @property
    def headers(self) -> Mapping[str, str]:
        return self._headers

    @property
    def data(self) -> bytes:
        return self._data


class LoopRequest(google.auth.transport.Request):
    def __init__(self, loop: asyncio.AbstractEventLoop, http: GoogleHttp, timeout: float) -> None:
        self._loop = loop
        self._http = http
        self._timeout = timeout

    def __call__(
        self,
        url: str,
        method: str = "GET",
        body: bytes | str | None = None,
        headers: Mapping[str, str] | None = None,
        timeout: float | None = None,
        **kwargs: object,
    ) -> google.auth.transport.Response:
        data = body.encode() if isinstance(body, str) else body
        call = self._http.send(
            method,
            url,
            service="Google credentials",
            data=data,
            headers=dict(headers or {}),
            timeout=min(timeout or self._timeout, self._timeout),
        )
        try:
            reply = asyncio.run_coroutine_threadsafe(call, self._loop).result()
        except ApiFailure as failure:
            # google-auth expects TransportError for "no answer" (e.g. not on GCE).
            raise google.auth.exceptions.TransportError(  # type: ignore[no-untyped-call]
                failure.message
            ) from failure
        return _Response(reply.status, reply.headers, reply.body)
