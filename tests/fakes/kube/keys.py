"""Typed per-request storage keys (aiohttp ``RequestKey``)."""

from __future__ import annotations

from aiohttp import web

from tests.fakes.kube.faults import Fault
from tests.fakes.kube.paths import RequestInfo

INFO = web.RequestKey("info", RequestInfo)
FAULT = web.RequestKey("fault", Fault)
WARNING = web.RequestKey("warning", str)
