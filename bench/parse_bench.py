"""What a large SecretProviderClass costs each provider per publish, through common.parsed.

For every provider's embedded YAML (``objects`` or ``secrets``) of ``--objects`` entries:
the first parse (a new text: in a worker thread), a repeat (the cache), and the event loop's
worst lag while the first parse runs, measured by a 1 ms ticker on the loop. Rounds alternate
between the providers so drift of the shared machine hits them alike.
``python -m bench.parse_bench --objects 5000 --rounds 5``
"""

from __future__ import annotations

import argparse
import asyncio
import statistics
import time
import uuid
from collections.abc import Callable

from agent.providers.aws.config import objects_from as aws_objects
from agent.providers.azure.config import objects_from as azure_objects
from agent.providers.common.parsed import OFF_LOOP_ABOVE, ParseCache
from agent.providers.gcp.config import secrets_from as gcp_secrets
from agent.providers.vault.objects import parse_objects as vault_objects


def texts(count: int) -> dict[str, tuple[Callable[..., object], str, tuple[object, ...]]]:
    return {
        "vault": (
            vault_objects,
            "".join(
                f"- objectName: obj{i}\n  secretPath: secret/data/app{i}\n  secretKey: password\n"
                for i in range(count)
            ),
            (),
        ),
        "aws": (
            aws_objects,
            "".join(
                f"- objectName: secret-{i}\n  objectType: secretsmanager\n" for i in range(count)
            ),
            ("_", ("us-east-1",)),
        ),
        "azure": (
            azure_objects,
            "array:\n"
            + "".join(
                f"  - |\n    objectName: s{i}\n    objectType: secret\n" for i in range(count)
            ),
            (),
        ),
        "gcp": (
            gcp_secrets,
            "".join(
                f"- resourceName: projects/p/secrets/s{i}/versions/latest\n  path: s{i}\n"
                for i in range(count)
            ),
            (),
        ),
    }


async def worst_lag_during(work: asyncio.Future[object]) -> float:
    worst = 0.0
    while not work.done():
        started = time.perf_counter()
        await asyncio.sleep(0.001)
        worst = max(worst, time.perf_counter() - started - 0.001)
    await work
    return worst


async def one_round(
    parse: Callable[..., object], text: str, context: tuple[object, ...]
) -> tuple[float, float, float]:
    cache = ParseCache()
    text = f"# {uuid.uuid4().hex}\n{text}"
    started = time.perf_counter()
    lag = await worst_lag_during(asyncio.ensure_future(cache.parse(parse, text, *context)))
    first = time.perf_counter() - started
    started = time.perf_counter()
    await cache.parse(parse, text, *context)
    return first, time.perf_counter() - started, lag


async def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--objects", type=int, default=5000)
    parser.add_argument("--rounds", type=int, default=5)
    args = parser.parse_args()
    cases = texts(args.objects)
    results: dict[str, list[tuple[float, float, float]]] = {name: [] for name in cases}
    for _ in range(args.rounds):
        for name, (parse, text, context) in cases.items():
            results[name].append(await one_round(parse, text, context))
    for name, rounds in results.items():
        first, repeat, lag = (statistics.median(column) for column in zip(*rounds, strict=True))
        chars = len(cases[name][1])
        where = "off the loop" if chars > OFF_LOOP_ABOVE else "on the loop"
        print(
            f"{name:<6} {args.objects} entries, {chars / 1024:5.0f} KiB: first parse "
            f"{first * 1e3:6.1f} ms ({where}; worst loop lag {lag * 1e3:4.1f} ms), "
            f"repeat {repeat * 1e6:5.1f} µs"
        )


if __name__ == "__main__":
    asyncio.run(main())
