"""Entry point of the fake Kubernetes API server used by the agent's tests.

Import from here; the implementation lives in small modules under ``tests/fakes/kube/``:

- :class:`FakeKubeApi` (``server``): the HTTP(S) server, ``up()``/``down()``, ``url``,
  ``kubeconfig_path``, ``write_kubeconfig()``; ``.store`` (:class:`Cluster`: seed and read
  objects, compaction, bookmarks, dropping watches, garbage collection), ``.faults``
  (:class:`Faults`), ``.requests`` (:class:`RequestLog`), ``.issuer`` (TokenRequest/JWKS);
- fixtures ``kube_api`` and ``kube_api_options`` (registered in ``tests/conftest.py``);
- builders ``node``, ``pod``, ``replica_set``, ``secret_provider_class``, ``service_account``,
  ``secret``, ``owner_reference``.
"""

from tests.fakes.kube.cluster import Cluster
from tests.fakes.kube.deletion import DeleteResult
from tests.fakes.kube.faults import Fault, Faults
from tests.fakes.kube.fixtures import kube_api, kube_api_options
from tests.fakes.kube.objects import (
    CSI_DRIVER,
    NODE_LABEL,
    SPC_GROUP,
    node,
    owner_reference,
    pod,
    replica_set,
    secret,
    secret_provider_class,
    service_account,
)
from tests.fakes.kube.requests_log import RecordedRequest, RequestLog
from tests.fakes.kube.server import FakeKubeApi

__all__ = [
    "CSI_DRIVER",
    "NODE_LABEL",
    "SPC_GROUP",
    "Cluster",
    "DeleteResult",
    "FakeKubeApi",
    "Fault",
    "Faults",
    "RecordedRequest",
    "RequestLog",
    "kube_api",
    "kube_api_options",
    "node",
    "owner_reference",
    "pod",
    "replica_set",
    "secret",
    "secret_provider_class",
    "service_account",
]
