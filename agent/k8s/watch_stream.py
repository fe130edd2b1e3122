"""One watch response read as a stream of decoded events (``?watch=1``: one JSON object per
line), every failure translated (``api_errors``)."""

from __future__ import annotations

import json
from typing import Any

import aiohttp
from aiohttp.http_exceptions import LineTooLong

from agent.errors import ApiConnectionLost, ApiUnavailable
from agent.k8s import api_errors

Object = dict[str, Any]


class WatchStream:
    """Decoded events of one watch response, in order; ``None`` once the server ends it."""

    def __init__(self, response: aiohttp.ClientResponse, action: str) -> None:
        self._response = response
        self._action = action

    async def next(self) -> Object | None:
        action = self._action
        while True:
            try:
                line = await self._response.content.readline()
            except TimeoutError:
                raise ApiConnectionLost(
                    f"{action}: nothing received within the read timeout", how="read_timeout"
                ) from None
            except aiohttp.ClientPayloadError:  # the connection failed mid-stream
                raise api_errors.lost_connection(action, self._socket_error()) from None
            except LineTooLong as err:
                # Only a broken or hostile server sends one (the client's limit, 4 MiB, is far
                # above etcd's object size); its text quotes the line (API data): not repeated.
                limit = err.args[1] if len(err.args) > 1 else "its"
                raise ApiUnavailable(
                    f"{action}: a watch event is longer than the client's limit of {limit} bytes"
                ) from None
            except (aiohttp.ClientError, OSError, ValueError) as err:
                raise api_errors.from_exception(action, err) from None
            if not line:
                return None
            if line.strip():
                return self._decode(line)

    def _socket_error(self) -> OSError | None:
        """The kernel's error that ended the connection (ETIMEDOUT, ECONNRESET...), if any.
        aiohttp (3.9 to 3.14) keeps it, as a ClientOSError with its errno, on the connection's
        protocol, not on the payload error the read raises (whose text varies by release)."""
        connection = self._response.connection
        protocol = connection.protocol if connection is not None else None
        error = protocol.exception() if protocol is not None else None
        return error if isinstance(error, OSError) else None

    def _decode(self, line: bytes) -> Object:
        try:
            event = json.loads(line)
        except ValueError:
            raise ApiUnavailable(f"{self._action}: a watch event is not JSON") from None
        if not isinstance(event, dict):
            raise ApiUnavailable(f"{self._action}: a watch event is not an object")
        if event.get("type") == "ERROR":
            raise api_errors.from_status_object(self._action, event.get("object"))
        return event
