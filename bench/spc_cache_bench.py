"""What the cluster-wide SecretProviderClass cache holds per class, in bytes (tracemalloc).

Each class arrives as JSON the way ``kubectl apply`` leaves it (``managedFields`` and the
``last-applied-configuration`` annotation, which repeats the whole spec), is parsed, decoded
by the informer's decoder and kept under its key; the document is then dropped, as the
informer does. Reported: bytes per class kept, its JSON size for comparison, and the total
for the counts asked. ``python -m bench.spc_cache_bench --counts 1000 10000 50000``
"""

from __future__ import annotations

import argparse
import gc
import json
import tracemalloc

from agent.k8s.spcs import CacheEntry, decode_class


def document(index: int, objects: int) -> str:
    """One Vault class of ``objects`` secrets, one synced Secret, as kubectl apply stores it."""
    entries = "".join(
        f'- objectName: "key{o}"\n  secretPath: "secret/data/team{index}/app"\n'
        f'  secretKey: "key{o}"\n'
        for o in range(objects)
    )
    spec = {
        "provider": "vault",
        "parameters": {
            "roleName": f"team{index}-app",
            "vaultAddress": "https://vault.vault.svc:8200",
            "objects": entries,
        },
        "secretObjects": [
            {
                "secretName": f"team{index}-app",
                "type": "Opaque",
                "data": [{"objectName": f"key{o}", "key": f"key{o}"} for o in range(objects)],
            }
        ],
    }
    metadata = {
        "name": f"team{index}-app",
        "namespace": f"team{index}",
        "uid": f"00000000-0000-4000-8000-{index:012d}",
        "resourceVersion": str(100000 + index),
        "generation": 1,
        "creationTimestamp": "2026-11-30T00:00:00Z",
        "annotations": {
            "kubectl.kubernetes.io/last-applied-configuration": json.dumps({"spec": spec}),
        },
        "managedFields": [
            {
                "manager": "kubectl-client-side-apply",
                "operation": "Update",
                "apiVersion": "secrets-store.csi.x-k8s.io/v1",
                "time": "2026-11-30T00:00:00Z",
                "fieldsType": "FieldsV1",
                "fieldsV1": {"f:spec": {"f:parameters": {".": {}, "f:objects": {}}}},
            }
        ],
    }
    body = {
        "apiVersion": "secrets-store.csi.x-k8s.io/v1",
        "kind": "SecretProviderClass",
        "metadata": metadata,
        "spec": spec,
    }
    return json.dumps(body)


def measure(count: int, objects: int) -> tuple[float, float]:
    """(bytes kept per class, JSON bytes per class) for ``count`` classes."""
    texts = [document(i, objects) for i in range(count)]
    json_bytes = sum(len(t) for t in texts) / count
    gc.collect()
    tracemalloc.start()
    before = tracemalloc.get_traced_memory()[0]
    cache: dict[tuple[str, str], CacheEntry] = {}
    for text in texts:
        entry = decode_class(json.loads(text))
        cache[(entry.namespace, entry.name)] = entry
    gc.collect()
    kept = tracemalloc.get_traced_memory()[0] - before
    tracemalloc.stop()
    assert len(cache) == count
    return kept / count, json_bytes


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--counts", type=int, nargs="+", default=[1000, 10000, 50000])
    parser.add_argument("--objects", type=int, nargs="+", default=[3, 20])
    args = parser.parse_args()
    print("| classes | objects each | JSON per class | kept per class | cache total |")
    print("| --- | --- | --- | --- | --- |")
    for objects in args.objects:
        for count in args.counts:
            per_class, json_bytes = measure(count, objects)
            total = per_class * count / 2**20
            print(
                f"| {count} | {objects} | {json_bytes / 1024:.1f} KiB | "
                f"{per_class / 1024:.2f} KiB | {total:.1f} MiB |"
            )


if __name__ == "__main__":
    main()
