"""Secret sync loads cryptography only for a kubernetes.io/tls Secret, and the Kubernetes
adapter's Secret store only in Kubernetes mode."""

from __future__ import annotations

import subprocess
import sys
import textwrap

SCRIPT = textwrap.dedent(
    """
    import os, sys, tempfile
    from functools import partial
    from agent.fs.confined import KubeletVolumes
    from agent.fs.named_files import read_named_files
    from agent.sync.data import read_volume_data
    from agent.sync.spec import parse_secret_objects
    from agent.targets import TargetRules

    kubelet = tempfile.mkdtemp()
    volumes = KubeletVolumes(TargetRules(kubelet))
    root = volumes.rules.target_for("uid", "v")
    os.makedirs(root)
    with open(os.path.join(root, "password"), "wb") as handle:
        handle.write(b"pw")
    opaque = parse_secret_objects(
        [{"secretName": "a", "type": "Opaque", "data": [{"objectName": "password", "key": "p"}]}]
    )
    built = read_volume_data(root, opaque.specs, partial(read_named_files, volumes))
    print("opaque", built[0].data == {"p": b"pw"}, "cryptography" in sys.modules)
    tls = parse_secret_objects([{"secretName": "t", "type": "kubernetes.io/tls", "data": [
        {"objectName": "password", "key": "tls.crt"},
        {"objectName": "password", "key": "tls.key"}]}])
    built = read_volume_data(root, tls.specs, partial(read_named_files, volumes))
    print("tls", bool(built[0].error), "cryptography" in sys.modules)
    print("k8s", "agent.k8s" in sys.modules, "kubernetes_asyncio" in sys.modules)
    """
)


def test_cryptography_waits_for_the_first_tls_secret() -> None:
    out = subprocess.run([sys.executable, "-c", SCRIPT], capture_output=True, text=True, check=True)
    assert out.stdout.split("\n")[:3] == ["opaque True False", "tls True True", "k8s False False"]
