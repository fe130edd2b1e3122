"""Fixtures for integration tests (registered by import; ``pytest_plugins`` is root-only)."""

from tests.support.jwt_signer import jwt_signer  # noqa: F401
from tests.support.openbao import openbao, openbao_tls  # noqa: F401
