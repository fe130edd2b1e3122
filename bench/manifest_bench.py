"""What reading dense or aliased YAML costs: standalone manifest files
(``agent.standalone.manifests.documents``) and a provider's ``objects`` parameter (Vault's
``parse_objects``).

A typical file (the Vault and AWS SSM examples of docs/examples, two classes, 1.4 KB): the
median time of ``--rounds`` reads. Dense and aliased texts, each read once in a fresh process:
its time and its peak RSS (``ru_maxrss``) over the same process before the read.
``python -m bench.manifest_bench --rounds 3000``
"""

from __future__ import annotations

import argparse
import itertools
import json
import resource
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

EXAMPLES = Path(__file__).resolve().parent.parent / "docs" / "examples"
DENSE = 1_400_000
AT_CAP = 300_004  # goyaml_limits.MAX_EVENTS (not imported: the bench also runs older code)


def typical() -> str:
    return "---\n".join((EXAMPLES / name).read_text() for name in ("vault.yaml", "aws-ssm.yaml"))


def _levels(depth: int, fan: int) -> list[str]:
    """Anchors a, b, ...: each a list of ``fan`` aliases of the one before (fan**depth values)."""
    names = "abcdefghijk"[: depth + 1]
    levels = [f"a: &a [{', '.join(['x'] * fan)}]"]
    for previous, name in itertools.pairwise(names):
        levels.append(f"{name}: &{name} [{', '.join([f'*{previous}'] * fan)}]")
    return levels


def _merges(depth: int) -> str:
    """A mapping whose ``<<`` merges name the mapping inside them twice, ``depth`` deep."""
    text = "&m0 {k: v}"
    for level in range(1, depth + 1):
        text = f"&m{level} {{<<: [{text}, *m{level - 1}]}}"
    return text


def _numbers(count: int) -> str:
    return ",".join(["1"] * count)


def dense() -> dict[str, tuple[str, str]]:
    """Case name: (reader, text)."""
    data = ", ".join(f"k{i}: *d" for i in range(8))
    big = "{kind: ConfigMap, apiVersion: v1, data: {" + data + "}}"
    anchors = "\n".join("  " + line for line in _levels(4, 10))
    fields = ", ".join(f"f{i}: v" for i in range(1000))
    aliased = "".join(
        f"- {{objectName: o{i}, secretPath: p, secretArgs: *a}}\n" for i in range(2000)
    )
    return {
        "List of 1.4M numbers": (
            "manifest",
            f"apiVersion: v1\nkind: List\nitems: [{_numbers(DENSE)}]\n",
        ),
        "flow list of 1.4M numbers": ("manifest", f"kind: ConfigMap\ndata: [{_numbers(DENSE)}]\n"),
        "flow list at the event cap": ("manifest", f"data: [{_numbers(AT_CAP - 9)}]\n"),
        "List at the event cap": (
            "manifest",
            f"apiVersion: v1\nkind: List\nitems: [{_numbers(AT_CAP - 13)}]\n",
        ),
        "billion laughs (10 levels of 10)": (
            "manifest",
            "kind: ConfigMap\ndata:\n" + "\n".join("  " + line for line in _levels(9, 10)) + "\n",
        ),
        "List of 2000 aliases of an 89k-value item": (
            "manifest",
            f"apiVersion: v1\nkind: List\nanchors:\n{anchors}\nitems:\n- &big {big}\n"
            + "- *big\n" * 2000,
        ),
        "<< merges 22 deep": ("manifest", f"kind: ConfigMap\ndata: {_merges(22)}\n"),
        "vault objects: flow list of 700k numbers": ("vault", f"[{_numbers(DENSE // 2)}]"),
        "vault objects: 2000 whose secretArgs alias one 1000-key map": (
            "vault",
            f"- {{objectName: o, secretPath: p, secretArgs: &a {{{fields}}}}}\n" + aliased,
        ),
    }


def read_once(path: str, reader: str) -> None:
    """In a fresh process: read ``path``, print seconds, peak RSS growth (MiB), outcome."""
    from agent.errors import InvalidSecretProviderClass
    from agent.providers.vault.objects import parse_objects
    from agent.standalone.manifests import Unconverted, UnreadableManifest, documents

    before = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    problems: list[tuple[str, str]] = []
    started = time.perf_counter()
    try:
        if reader == "vault":
            outcome = f"{len(parse_objects(Path(path).read_text())[0])} objects"
        else:
            found = documents(Path(path), problems)
            converted = sum(not isinstance(document, Unconverted) for _, document in found)
            outcome = f"{converted} documents, {len(problems)} problems"
        if problems:
            outcome += f" (first: {problems[0][1][:90]})"
    except (UnreadableManifest, InvalidSecretProviderClass) as exc:
        reason = exc.reason if isinstance(exc, UnreadableManifest) else exc.message
        outcome = f"refused: {reason}"[:120]
    seconds = time.perf_counter() - started
    grown = (resource.getrusage(resource.RUSAGE_SELF).ru_maxrss - before) / 1024
    print(json.dumps({"seconds": seconds, "rss_mib": grown, "outcome": outcome}))


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--rounds", type=int, default=3000)
    parser.add_argument("--timeout", type=float, default=120.0)
    parser.add_argument("--read-once", nargs=2, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.read_once:
        read_once(*args.read_once)
        return
    from agent.standalone.manifests import documents

    with tempfile.TemporaryDirectory() as scratch:
        path = Path(scratch) / "classes.yaml"
        path.write_text(typical())
        samples = []
        for _ in range(args.rounds):
            started = time.perf_counter()
            documents(path, [])
            samples.append(time.perf_counter() - started)
        low, _, high = statistics.quantiles(samples, n=4)
        print(
            f"typical 2-class file, {path.stat().st_size} bytes: median "
            f"{statistics.median(samples) * 1e6:.0f} µs (quartiles {low * 1e6:.0f}-"
            f"{high * 1e6:.0f} µs, {args.rounds} reads)"
        )
        for name, (reader, text) in dense().items():
            path.write_text(text)
            command = [sys.executable, "-m", "bench.manifest_bench", "--read-once", str(path)]
            try:
                done = subprocess.run(
                    [*command, reader],
                    capture_output=True,
                    text=True,
                    timeout=args.timeout,
                    check=True,
                )
            except subprocess.TimeoutExpired:
                print(f"{name}, {len(text) / 1e6:.2f} MB: not done within {args.timeout:.0f} s")
                continue
            found = json.loads(done.stdout)
            print(
                f"{name}, {len(text) / 1e6:.2f} MB: {found['seconds']:.2f} s, peak RSS "
                f"+{found['rss_mib']:.0f} MiB; {found['outcome']}"
            )


if __name__ == "__main__":
    main()
