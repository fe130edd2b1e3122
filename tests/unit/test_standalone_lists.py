"""A ``v1`` ``kind: List`` in the standalone directory (what ``kubectl get ... -o yaml`` prints)
is read as its items, each judged as a document of its own: classes, ServiceAccounts and Nodes
are served, a bad item is reported by its index and the others still served, a near miss in an
item is named by "not found". Before: the whole List was skipped without a word."""

from __future__ import annotations

import tracemalloc
from pathlib import Path
from typing import Any

import pytest
import structlog
import yaml

from agent.errors import InvalidSecretProviderClass, SecretProviderClassNotFound
from agent.providers.common.goyaml_limits import MAX_EVENTS
from agent.standalone.manifests import cap_problems, documents
from agent.standalone.nodes import DirectoryNodeLabels
from agent.standalone.spc_source import DirectorySecretProviderClassSource

GROUP = "secrets-store.csi.x-k8s.io"


def spc(name: str, **spec: Any) -> dict[str, Any]:
    """A class as ``kubectl get secretproviderclasses -o yaml`` prints it."""
    return {
        "apiVersion": f"{GROUP}/v1",
        "kind": "SecretProviderClass",
        "metadata": {
            "name": name,
            "namespace": "apps",
            "uid": f"uid-{name}",
            "generation": 2,
            "resourceVersion": "4711",
            "creationTimestamp": "2026-01-01T00:00:00Z",
        },
        "spec": {"provider": "fake", "parameters": {"objects": "- objectName: a"}} | spec,
    }


def listed(*items: object) -> str:
    return yaml.safe_dump(
        {
            "apiVersion": "v1",
            "kind": "List",
            "items": list(items),
            "metadata": {"resourceVersion": ""},
        }
    )


async def read(directory: Path) -> tuple[DirectorySecretProviderClassSource, dict[str, str]]:
    """The source after its first read, and the warnings of that read (file -> reason)."""
    source = DirectorySecretProviderClassSource(directory)
    with structlog.testing.capture_logs() as logs:
        await source.rescan()
    warnings = {e["file"]: e["reason"] for e in logs if e["event"] == "standalone.spc_invalid"}
    return source, warnings


async def test_a_list_of_two_classes_serves_both(tmp_path: Path) -> None:
    (tmp_path / "classes.yaml").write_text(listed(spc("db"), spc("cache")))
    source, warnings = await read(tmp_path)
    assert warnings == {}
    db, cache = await source.get("apps", "db"), await source.get("apps", "cache")
    assert (db.name, db.uid, db.generation) == ("db", "uid-db", 2)
    assert cache.parameters == {"objects": "- objectName: a"}


async def test_a_bad_item_is_reported_by_index_and_the_good_one_served(tmp_path: Path) -> None:
    bad = spc("db", parameters={"port": 5432})  # kubectl sends an integer: the CRD refuses it
    (tmp_path / "classes.yaml").write_text(listed(bad, spc("cache")))
    source, warnings = await read(tmp_path)
    assert list(warnings) == ["classes.yaml items[0]"]
    assert "spec.parameters.port" in warnings["classes.yaml items[0]"]
    assert (await source.get("apps", "cache")).name == "cache"
    with pytest.raises(InvalidSecretProviderClass) as invalid:
        await source.get("apps", "db")
    assert invalid.value.message.startswith(
        "secretproviderclass apps/db in classes.yaml items[0]: "
    )


async def test_lists_among_documents_are_named_by_document_and_index(tmp_path: Path) -> None:
    plain = yaml.safe_dump(spc("first"))
    (tmp_path / "many.yaml").write_text(
        plain
        + "---\n"
        + listed(spc("second"), {"apiVersion": f"{GROUP}/v1", "kind": "SecretProviderClass"})
    )
    source, warnings = await read(tmp_path)
    assert warnings == {"many.yaml (document 2) items[1]": "metadata must be a mapping"}
    assert [(await source.get("apps", n)).name for n in ("first", "second")] == ["first", "second"]


async def test_an_item_that_does_not_convert_is_reported_alone(tmp_path: Path) -> None:
    good = yaml.safe_dump(spc("cache"), default_flow_style=False)
    items = "\n".join("  " + line for line in good.splitlines())
    text = f"apiVersion: v1\nkind: List\nitems:\n- {{? null : x}}\n-\n{items}\n"
    (tmp_path / "classes.yaml").write_text(text)
    source, warnings = await read(tmp_path)
    assert list(warnings) == ["classes.yaml items[0]"]
    assert "null mapping key" in warnings["classes.yaml items[0]"]
    assert (await source.get("apps", "cache")).name == "cache"


async def test_items_that_are_not_objects_are_reported(tmp_path: Path) -> None:
    (tmp_path / "a.yaml").write_text(listed("text", spc("ok")))
    (tmp_path / "b.yaml").write_text("apiVersion: v1\nkind: List\nitems: {a: b}\n")
    (tmp_path / "c.yaml").write_text("apiVersion: v1\nkind: List\nitems: null\n")
    (tmp_path / "d.yaml").write_text("apiVersion: v1\nkind: List\nitems: [!!int abc]\n")
    (tmp_path / "e.yaml").write_text("apiVersion: v1\nkind: List\nitems: !!int abc\n")
    (tmp_path / "f.yaml").write_text("!!int abc\n")  # not a List: converted and reported
    source, warnings = await read(tmp_path)
    assert warnings == {
        "a.yaml items[0]": "must be an object (an item of a kind List)",
        "b.yaml": "items: must be a list of objects (kind List)",
        "d.yaml items[0]": "must be an object (an item of a kind List)",
        "e.yaml": "items: must be a list of objects (kind List)",
        "f.yaml": "f.yaml: cannot decode !!str as a !!int",
    }
    assert (await source.get("apps", "ok")).name == "ok"


async def test_service_accounts_and_nodes_in_a_list_are_read(tmp_path: Path) -> None:
    account = {
        "apiVersion": "v1",
        "kind": "ServiceAccount",
        "metadata": {"name": "web", "namespace": "apps", "annotations": {"a/b": "c"}},
    }
    node = {
        "apiVersion": "v1",
        "kind": "Node",
        "metadata": {"name": "node-a", "labels": {"topology.kubernetes.io/region": "eu-west-1"}},
    }
    (tmp_path / "cluster.yaml").write_text(listed(account, node))
    source, warnings = await read(tmp_path)
    assert warnings == {}
    assert await source.annotations("apps", "web") == {"a/b": "c"}
    labels = await DirectoryNodeLabels(source, "node-a").labels()
    assert labels == {"topology.kubernetes.io/region": "eu-west-1"}


async def test_a_near_miss_item_is_reported_and_named_by_not_found(tmp_path: Path) -> None:
    slip = spc("db") | {"kind": "SecretProviderClas"}
    (tmp_path / "classes.yaml").write_text(listed(spc("cache"), slip))
    source, warnings = await read(tmp_path)
    reason = warnings["classes.yaml items[1]"]
    assert reason.startswith('kind: Unsupported value: "SecretProviderClas"')
    with pytest.raises(SecretProviderClassNotFound) as missing:
        await source.get("apps", "db")
    assert f"(see classes.yaml items[1]: {reason})" in missing.value.message


async def test_a_class_in_a_list_and_in_another_file_is_defined_twice(tmp_path: Path) -> None:
    (tmp_path / "a.yaml").write_text(listed(spc("db")))
    (tmp_path / "b.yaml").write_text(yaml.safe_dump(spc("db")))
    source, _ = await read(tmp_path)
    with pytest.raises(InvalidSecretProviderClass) as invalid:
        await source.get("apps", "db")
    assert invalid.value.message == (
        "secretproviderclass apps/db is defined in both a.yaml items[0] and b.yaml"
    )


@pytest.mark.parametrize(
    ("text", "reason"),
    [
        ("apiVersion: v2\nkind: List\nitems: []\n", 'apiVersion: Unsupported value: "v2"'),
        ("kind: List\nitems: []\n", "apiVersion: Required value"),
        ("apiVersion: v1\nkind: list\nitems: []\n", 'kind: Unsupported value: "list"'),
    ],
)
async def test_a_slip_in_a_lists_kind_or_api_version_is_reported(
    tmp_path: Path, text: str, reason: str
) -> None:
    (tmp_path / "classes.yaml").write_text(text)
    _, warnings = await read(tmp_path)
    assert warnings["classes.yaml"].startswith(reason)
    assert "List" in warnings["classes.yaml"]


async def test_each_item_has_the_value_cap_of_a_document(tmp_path: Path) -> None:
    """YAML aliases can make a small document expand to a huge one; each document may expand to
    100,000 values. An item that passes the cap is reported alone, as a document would be."""
    good = yaml.safe_dump(spc("cache"), default_flow_style=False)
    items = "\n".join("  " + line for line in good.splitlines())
    levels = ["a: &a [x, x, x, x, x, x, x, x, x, x]"]
    for previous, name in zip("abcd", "bcde", strict=True):
        levels.append(f"{name}: &{name} [{', '.join([f'*{previous}'] * 10)}]")
    bomb = "\n".join("    " + line for line in levels)  # e: 100,000 values
    text = f"apiVersion: v1\nkind: List\nitems:\n- kind: ConfigMap\n  data:\n{bomb}\n-\n{items}\n"
    (tmp_path / "classes.yaml").write_text(text)
    source, warnings = await read(tmp_path)
    assert warnings == {
        "classes.yaml items[0]": (
            "classes.yaml items[0]: expands to more than 100000 values (aliases)"
        )
    }
    assert (await source.get("apps", "cache")).name == "cache"


async def test_a_file_of_many_bad_items_is_reported_in_a_few_lines(tmp_path: Path) -> None:
    """Each problem is a warning line, written on the event loop at every change of the
    directory. Before: one line per bad item, and a 2.8 MB List of 1.4 million numbers held
    the loop for 20 s logging them."""
    (tmp_path / "a.yaml").write_text(listed(*range(500), spc("db")))
    (tmp_path / "b.yaml").write_text(listed(7))  # another file's problems are its own
    source = DirectorySecretProviderClassSource(tmp_path)
    with structlog.testing.capture_logs() as logs:
        await source.rescan()
    lines = [(e["file"], e["reason"]) for e in logs if e["event"] == "standalone.spc_invalid"]
    item = "must be an object (an item of a kind List)"
    assert lines == [
        *((f"a.yaml items[{i}]", item) for i in range(20)),
        ("a.yaml", "480 more problems in this file, not logged one by one"),
        ("b.yaml items[0]", item),
    ]
    assert (await source.get("apps", "db")).name == "db"


async def test_a_dense_list_is_reported_unread_naming_the_cap(tmp_path: Path) -> None:
    """Before: a 2.8 MB List of 1.4 million numbers took 7 s and 840 MiB in the worker thread
    (PyYAML's nodes), then reported its items one by one. Now libyaml's events are counted
    first, without composing a node, and the file is refused above the cap."""
    numbers = ",".join(["1"] * MAX_EVENTS)
    (tmp_path / "dump.yaml").write_text(f"apiVersion: v1\nkind: List\nitems: [{numbers}]\n")
    (tmp_path / "classes.yaml").write_text(listed(spc("db")))
    source, warnings = await read(tmp_path)
    assert warnings == {
        "dump.yaml": (
            f"dump.yaml: more than {MAX_EVENTS} YAML events (scalars, aliases, starts and ends "
            "of mappings and lists; a document may hold 100000 values); not read"
        )
    }
    assert (await source.get("apps", "db")).name == "db"


async def test_aliases_of_one_item_cannot_multiply_its_cost(tmp_path: Path) -> None:
    """Each item has the value cap of a document, but all the items of a file share one
    budget: before, each of 2000 aliases of an item of 89,000 values was converted again
    (more than a minute, from 14 KB)."""
    anchors = ["a: &a [x, x, x, x, x, x, x, x, x, x]"]
    for previous, name in zip("abc", "bcd", strict=True):
        anchors.append(f"{name}: &{name} [{', '.join([f'*{previous}'] * 10)}]")
    data = ", ".join(f"k{i}: *d" for i in range(8))
    item = "{apiVersion: v1, kind: ConfigMap, data: {" + data + "}}"
    text = "apiVersion: v1\nkind: List\nanchors:\n" + "".join(f"  {a}\n" for a in anchors)
    text += f"items:\n- &big {item}\n" + "- *big\n" * 30
    (tmp_path / "classes.yaml").write_text(text)
    _, warnings = await read(tmp_path)
    expands = f"the text's aliases and << merges expand to more than {MAX_EVENTS} values"
    assert "classes.yaml items[2]" not in warnings  # three items of 89,000 values were read
    assert warnings["classes.yaml items[3]"] == f"classes.yaml items[3]: {expands}; not read"
    assert warnings["classes.yaml"] == "8 more problems in this file, not logged one by one"


def test_a_long_list_costs_little_more_than_its_nodes(tmp_path: Path) -> None:
    """PyYAML's nodes of a List of 100,000 numbers take 26 MiB; the items' Values and problems
    took as much again before, although only 20 problems are logged (tracemalloc peak: 52 MiB,
    now 28 MiB)."""
    path = tmp_path / "numbers.yaml"
    path.write_text("apiVersion: v1\nkind: List\nitems: [" + ",".join(["1"] * 100_000) + "]\n")
    problems: list[tuple[str, str]] = []
    tracemalloc.start()
    try:
        documents(path, problems)
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert peak < 36 * 1024 * 1024, f"peak {peak / 2**20:.0f} MiB"
    cap_problems(problems, 0, "numbers.yaml")
    assert problems[-1] == (
        "numbers.yaml",
        "99980 more problems in this file, not logged one by one",
    )
