"""The Dockerfile's invariants. ``docker build`` cannot run on the project's machines, so the
image is checked by what its recipe says: it runs exactly the file scripts/build makes, on a
base with no shell, package manager or compiler, as root for mount(2), with signals reaching
the agent directly."""

from __future__ import annotations

import json
import re
import shlex
from dataclasses import dataclass
from pathlib import Path

import pytest

from agent.config import Settings, parse_listen_address

REPO = Path(__file__).resolve().parents[2]
ONE_FILE = "dist/secrets-store-agent"
BASES_WITHOUT_SHELL_OR_LIBC = ("gcr.io/distroless/static-debian12",)


@dataclass(frozen=True)
class Instruction:
    keyword: str
    arguments: str


def instructions(text: str) -> list[Instruction]:
    """Dockerfile instructions with continuation lines joined and comments dropped."""
    logical, current = [], ""
    for line in text.splitlines():
        if line.lstrip().startswith("#") or not line.strip():
            continue
        current += line.rstrip().removesuffix("\\") + " " if line.endswith("\\") else line
        if not line.endswith("\\"):
            logical.append(current.strip())
            current = ""
    return [Instruction(*[*part.split(maxsplit=1), ""][:2]) for part in logical]


@pytest.fixture(scope="module")
def dockerfile() -> list[Instruction]:
    return instructions((REPO / "Dockerfile").read_text())


def only(found: list[Instruction], keyword: str) -> Instruction:
    matching = [i for i in found if i.keyword.upper() == keyword]
    assert len(matching) == 1, f"expected one {keyword}, found {len(matching)}"
    return matching[0]


def test_one_stage_on_a_base_without_shell_package_manager_or_libc(
    dockerfile: list[Instruction],
) -> None:
    image = only(dockerfile, "FROM").arguments.split()
    assert len(image) == 1, "no build stage: the file comes from scripts/build"
    assert image[0].split(":")[0].split("@")[0] in BASES_WITHOUT_SHELL_OR_LIBC


def test_nothing_is_installed_compiled_or_fetched(dockerfile: list[Instruction]) -> None:
    keywords = {i.keyword.upper() for i in dockerfile}
    assert not keywords & {"RUN", "ADD", "SHELL", "ONBUILD"}


def test_copies_exactly_the_built_file_and_runs_it(dockerfile: list[Instruction]) -> None:
    flags, (source, destination) = _copy_parts(only(dockerfile, "COPY").arguments)
    assert source == ONE_FILE
    assert flags == ["--chmod=0555"], "read and execute only, for everyone"
    entrypoint = json.loads(only(dockerfile, "ENTRYPOINT").arguments)
    assert entrypoint == [destination], "exec form: the agent is PID 1 and receives SIGTERM"
    assert json.loads(only(dockerfile, "CMD").arguments) == ["serve"]


def test_scripts_build_writes_the_file_the_image_copies() -> None:
    build = (REPO / "scripts" / "build").read_text()
    name = re.search(r"^name=(\S+)$", build, re.MULTILINE)
    assert name and f"dist/{name[1]}" == ONE_FILE
    assert re.search(r"^out=dist/\$name$", build, re.MULTILINE)


def test_build_context_is_only_the_file() -> None:
    lines = [
        line
        for line in (REPO / ".dockerignore").read_text().splitlines()
        if line.strip() and not line.startswith("#")
    ]
    assert lines == ["*", f"!{ONE_FILE}"]


def test_runs_as_root_for_mount_with_certificates_and_a_temporary_dir(
    dockerfile: list[Instruction],
) -> None:
    assert only(dockerfile, "USER").arguments == "0:0"
    env = dict(
        pair.split("=", 1)
        for i in dockerfile
        if i.keyword.upper() == "ENV"
        for pair in shlex.split(i.arguments)
    )
    assert env == {"SSL_CERT_FILE": "/etc/ssl/certs/ca-certificates.crt", "TMPDIR": "/tmp"}


def test_exposes_the_agents_default_ports(dockerfile: list[Instruction]) -> None:
    defaults = Settings()
    ports = {parse_listen_address(a)[1] for a in (defaults.metrics_addr, defaults.health_addr)}
    exposed = {int(p) for p in only(dockerfile, "EXPOSE").arguments.split()}
    assert exposed == ports


def _copy_parts(arguments: str) -> tuple[list[str], list[str]]:
    words = shlex.split(arguments)
    return [w for w in words if w.startswith("--")], [w for w in words if not w.startswith("--")]
