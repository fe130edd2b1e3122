"""Cost of decoding as Go does (``agent.providers.common``) against the plain Python way.

Per publish or rotation the Vault provider parses its ``objects`` YAML, decodes each response
and, for a non-string key, writes JSON. This times each step with the shared Go-compatible code
and with what it replaced (PyYAML's SafeLoader, ``json.loads``, ``json.dumps``), interleaved
round by round so drift of the machine hits both sides alike.
``python -m bench.compat_bench --rounds 30``
"""

from __future__ import annotations

import argparse
import json
import statistics
import time
from collections.abc import Callable

import yaml

from agent.providers.common import gojson
from agent.providers.vault.objects import parse_objects

OBJECTS = "".join(
    f"- objectName: file-{i}\n  secretPath: secret/data/app/{i}\n  secretKey: key{i}\n"
    f"  filePermission: 0440\n"
    for i in range(10)
)
KV2 = json.dumps(
    {
        "request_id": "r",
        "lease_id": "",
        "renewable": False,
        "lease_duration": 0,
        "data": {
            "data": {f"key{i}": "v" * 64 for i in range(20)},
            "metadata": {"created_time": "2026-01-01T00:00:00Z", "version": 3},
        },
        "warnings": None,
    }
).encode()
LARGE = json.dumps({"data": {"data": {"blob": "x" * (1 << 20), "n": list(range(1000))}}}).encode()


def per_call_us(work: Callable[[], object], repeat: int) -> float:
    started = time.perf_counter()
    for _ in range(repeat):
        work()
    return (time.perf_counter() - started) / repeat * 1e6


def compare(
    name: str, new: Callable[[], object], old: Callable[[], object], args: argparse.Namespace
) -> None:
    news, olds = [], []
    for _ in range(args.rounds):  # interleaved: new, old, new, old ...
        news.append(per_call_us(new, args.repeat))
        olds.append(per_call_us(old, args.repeat))
    print(
        f"{name:<44} go-compatible {statistics.median(news):9.1f} µs   "
        f"before {statistics.median(olds):9.1f} µs"
    )


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--rounds", type=int, default=30)
    parser.add_argument("--repeat", type=int, default=50)
    args = parser.parse_args()
    loader = getattr(yaml, "CSafeLoader", yaml.SafeLoader)
    value = gojson.loads(KV2)["data"]["data"]
    plain = json.loads(KV2)["data"]["data"]
    compare(
        "objects YAML, 10 objects (parse_objects)",
        lambda: parse_objects(OBJECTS),
        lambda: yaml.load(OBJECTS, Loader=loader),  # noqa: S506 (safe loader)
        args,
    )
    compare(
        "KV v2 response, 1.5 KB (loads)", lambda: gojson.loads(KV2), lambda: json.loads(KV2), args
    )
    compare(
        "1 MiB response (loads)",
        lambda: gojson.loads(LARGE),
        lambda: json.loads(LARGE),
        argparse.Namespace(rounds=max(args.rounds // 5, 3), repeat=3),
    )
    compare(
        "20-key map as JSON (marshal vs json.dumps)",
        lambda: gojson.marshal(value),
        lambda: json.dumps(plain, separators=(",", ":")).encode(),
        args,
    )


if __name__ == "__main__":
    main()
