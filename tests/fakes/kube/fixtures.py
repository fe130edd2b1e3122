"""pytest fixtures: ``kube_api`` starts a fake API server per test on a free port and stops
it afterwards; override ``kube_api_options`` in a test module (or parametrize it indirectly)
to pass :class:`FakeKubeApi` options such as ``tls=True`` or ``token="..."``."""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest

from tests.fakes.kube.server import FakeKubeApi
from tests.support.jwt_signer import JwtSigner


@pytest.fixture
def kube_api_options() -> dict[str, Any]:
    return {}


@pytest.fixture
async def kube_api(
    tmp_path_factory: pytest.TempPathFactory,
    kube_api_options: dict[str, Any],
    jwt_signer: JwtSigner,
) -> AsyncIterator[FakeKubeApi]:
    """A running fake; tokens it issues are signed by the session's ``jwt_signer``."""
    options = {"signer": jwt_signer, **kube_api_options}
    workdir: Path = tmp_path_factory.mktemp("kube-api")
    async with FakeKubeApi.running(workdir, **options) as kube:
        yield kube
        kube.faults.clear()
