"""Typed lists (``SecretProviderClassList``, ``ServiceAccountList``, ``NodeList``: what the API
returns for a list, e.g. ``kubectl get --raw``) and lists inside lists in the standalone
directory are read as kubectl's resource builder flattens them: each object an item, a typed
list's items without ``kind`` and ``apiVersion`` taking the list's, a bad item reported by its
index path. Real files in a temporary directory, read by the real standalone source.

Before: a typed list was skipped (a ``SecretProviderClassList`` and a ``ServiceAccountList``
reported as a misspelled ``SecretProviderClass`` and ``ServiceAccount``, a ``NodeList`` without
a word), and a List inside a List was reported, not read."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
import yaml

from agent.errors import SecretProviderClassNotFound
from agent.providers.common.goyaml_limits import MAX_EVENTS, MAX_VALUES
from agent.standalone.lists import MAX_LIST_DEPTH, MAX_LIST_ITEMS
from agent.standalone.nodes import DirectoryNodeLabels
from tests.unit.test_standalone_lists import read

GROUP = "secrets-store.csi.x-k8s.io"
REGION = "topology.kubernetes.io/region"


def spc_item(name: str) -> dict[str, Any]:
    """A class as the API returns it inside a SecretProviderClassList: no kind, no apiVersion."""
    return {
        "metadata": {"name": name, "namespace": "apps", "uid": f"uid-{name}", "generation": 3},
        "spec": {"provider": "fake", "parameters": {"objects": "- objectName: a"}},
    }


def spc(name: str) -> dict[str, Any]:
    return {"apiVersion": f"{GROUP}/v1", "kind": "SecretProviderClass"} | spc_item(name)


def typed_list(kind: str, api_version: str, *items: object) -> dict[str, Any]:
    return {
        "apiVersion": api_version,
        "kind": kind,
        "metadata": {"resourceVersion": "4711"},
        "items": list(items),
    }


def v1_list(*items: object) -> dict[str, Any]:
    return typed_list("List", "v1", *items)


def nested(depth: int, item: dict[str, Any]) -> dict[str, Any]:
    """``item`` inside ``depth`` v1 Lists."""
    for _ in range(depth):
        item = v1_list(item)
    return item


@pytest.mark.parametrize("version", ["v1", "v1alpha1"])
async def test_a_secret_provider_class_list_from_the_api_serves_its_items(
    tmp_path: Path, version: str
) -> None:
    """``kubectl get --raw /apis/secrets-store.csi.x-k8s.io/<version>/secretproviderclasses``:
    the items carry neither kind nor apiVersion."""
    listed = typed_list("SecretProviderClassList", f"{GROUP}/{version}", spc_item("db"))
    listed["items"].append(spc_item("cache"))
    (tmp_path / "raw.json").write_text("{}")  # not a manifest name: not read
    (tmp_path / "raw.yaml").write_text(yaml.safe_dump(listed))
    source, warnings = await read(tmp_path)
    assert warnings == {}
    db = await source.get("apps", "db")
    assert (db.name, db.uid, db.generation, db.provider) == ("db", "uid-db", 3, "fake")
    assert (await source.get("apps", "cache")).parameters == {"objects": "- objectName: a"}


async def test_typed_lists_of_service_accounts_and_nodes_are_read(tmp_path: Path) -> None:
    account = {"metadata": {"name": "web", "namespace": "apps", "annotations": {"a/b": "c"}}}
    node = {"metadata": {"name": "node-a", "labels": {REGION: "eu-west-1"}}}
    (tmp_path / "accounts.yaml").write_text(
        yaml.safe_dump(typed_list("ServiceAccountList", "v1", account))
    )
    (tmp_path / "nodes.yaml").write_text(yaml.safe_dump(typed_list("NodeList", "v1", node)))
    source, warnings = await read(tmp_path)
    assert warnings == {}
    assert await source.annotations("apps", "web") == {"a/b": "c"}
    assert await DirectoryNodeLabels(source, "node-a").labels() == {REGION: "eu-west-1"}


async def test_a_typed_lists_item_takes_its_type_only_when_it_names_neither(
    tmp_path: Path,
) -> None:
    """kubectl's decoder gives an item the list's kind and apiVersion only when both are
    missing (absent, null or ""); an item that names one keeps what it names."""
    account = {"apiVersion": "v1", "kind": "ServiceAccount", "metadata": {"name": "web"}}
    half = spc_item("half") | {"kind": "SecretProviderClass"}  # no apiVersion: not inferred
    empty = spc_item("empty") | {"kind": "", "apiVersion": None}
    listed = typed_list("SecretProviderClassList", f"{GROUP}/v1", account, half, empty)
    (tmp_path / "mixed.yaml").write_text(yaml.safe_dump(listed))
    source, warnings = await read(tmp_path)
    assert await source.annotations("default", "web") == {}
    assert (await source.get("apps", "empty")).name == "empty"
    assert list(warnings) == ["mixed.yaml items[1]"]
    assert warnings["mixed.yaml items[1]"].startswith("apiVersion: Required value")
    with pytest.raises(SecretProviderClassNotFound) as missing:
        await source.get("apps", "half")
    assert "(see mixed.yaml items[1]: apiVersion: Required value" in missing.value.message


async def test_lists_inside_lists_are_read_and_a_bad_item_named_by_its_index_path(
    tmp_path: Path,
) -> None:
    classes = typed_list("SecretProviderClassList", f"{GROUP}/v1", spc_item("c"), "text")
    outer = v1_list(spc("a"), v1_list(spc("b") | {"spec": 7}, spc("b2")), classes)
    (tmp_path / "all.yaml").write_text(
        yaml.safe_dump(spc("first")) + "---\n" + yaml.safe_dump(outer)
    )
    source, warnings = await read(tmp_path)
    assert warnings == {
        "all.yaml (document 2) items[1].items[0]": "spec must be a mapping",
        "all.yaml (document 2) items[2].items[1]": (
            "must be an object (an item of a kind SecretProviderClassList)"
        ),
    }
    for name in ("first", "a", "b2", "c"):
        assert (await source.get("apps", name)).name == name


async def test_lists_nest_at_most_the_bound_deep(tmp_path: Path) -> None:
    (tmp_path / "deep.yaml").write_text(yaml.safe_dump(nested(MAX_LIST_DEPTH, spc("deep"))))
    too_deep = nested(MAX_LIST_DEPTH + 1, spc("deeper"))
    (tmp_path / "deeper.yaml").write_text(yaml.safe_dump(v1_list(spc("ok"), *too_deep["items"])))
    source, warnings = await read(tmp_path)
    path = ".".join(["items[1]"] + ["items[0]"] * (MAX_LIST_DEPTH - 1))
    why = f"lists nest at most {MAX_LIST_DEPTH} deep: this kind List is not read"
    assert warnings == {f"deeper.yaml {path}": why}
    assert (await source.get("apps", "deep")).name == "deep"
    assert (await source.get("apps", "ok")).name == "ok"
    with pytest.raises(SecretProviderClassNotFound):
        await source.get("apps", "deeper")


async def test_a_file_whose_lists_hold_too_many_items_is_refused_whole(tmp_path: Path) -> None:
    """Aliases repeat one nested List of 1,000 items 101 times (a 2 KB file, within the YAML
    budget): 101,101 items, over the bound of as many as a document may hold values. The file
    is reported in one line, like a file over the YAML event cap; the other files are read."""
    assert MAX_LIST_ITEMS == MAX_VALUES
    inner = "{kind: List, apiVersion: v1, items: [" + ", ".join(["{}"] * 1000) + "]}"
    text = f"apiVersion: v1\nkind: List\nitems:\n- &inner {inner}\n" + "- *inner\n" * 100
    text += "- " + yaml.safe_dump(spc("lost"), default_flow_style=True)
    (tmp_path / "many.yaml").write_text(text)
    (tmp_path / "ok.yaml").write_text(yaml.safe_dump(spc("ok")))
    source, warnings = await read(tmp_path)
    reason = f"its lists hold more than {MAX_LIST_ITEMS} items (nested lists included); not read"
    assert warnings == {"many.yaml": reason}
    assert (await source.get("apps", "ok")).name == "ok"
    with pytest.raises(SecretProviderClassNotFound) as missing:
        await source.get("apps", "lost")
    assert f"(unreadable files: many.yaml: {reason})" in missing.value.message


async def test_a_list_past_the_yaml_budget_is_reported_not_raised(tmp_path: Path) -> None:
    """All the documents of a file share one conversion budget (goyaml_limits.Budget), and a
    list's items are paid for when they are read. Before: a List met after the budget was
    nearly spent raised out of the read, and every lookup (also of other files' classes) failed
    with the budget's error."""
    levels = ["a: &a [x, x, x, x, x, x, x, x, x, x]"]
    for previous, name in zip("abcd", "bcde", strict=True):
        levels.append(f"{name}: &{name} [{', '.join([f'*{previous}'] * 10)}]")
    bomb = "kind: ConfigMap\ndata:\n" + "".join(f"  {line}\n" for line in levels)
    filler = "kind: ConfigMap\ndata: [" + ", ".join(["1"] * 60_000) + "]\n"
    many = "apiVersion: v1\nkind: List\nitems: [" + ", ".join(["{}"] * 50_000) + "]\n"
    (tmp_path / "spent.yaml").write_text("---\n".join([bomb, bomb, filler, many]))
    (tmp_path / "ok.yaml").write_text(yaml.safe_dump(spc("ok")))
    source, warnings = await read(tmp_path)
    expands = f"the text's aliases and << merges expand to more than {MAX_EVENTS} values"
    assert (
        warnings["spent.yaml (document 4)"] == f"spent.yaml (document 4).items: {expands}; not read"
    )
    assert (await source.get("apps", "ok")).name == "ok"


@pytest.mark.parametrize(
    ("text", "reason"),
    ids=["api-version", "kind", "kind-case"],
    argvalues=[
        (
            f"apiVersion: {GROUP}/v2\nkind: SecretProviderClassList\nitems: []\n",
            f'apiVersion: Unsupported value: "{GROUP}/v2": the agent reads kind '
            f"SecretProviderClassList as {GROUP}/v1 or {GROUP}/v1alpha1; document skipped",
        ),
        (
            f"apiVersion: {GROUP}/v1\nkind: SecretProviderClasList\nitems: []\n",
            'kind: Unsupported value: "SecretProviderClasList": the agent reads '
            f"SecretProviderClassList (apiVersion {GROUP}/v1 or {GROUP}/v1alpha1); "
            "document skipped",
        ),
        (
            "apiVersion: v1\nkind: serviceaccountlist\nitems: []\n",
            'kind: Unsupported value: "serviceaccountlist": the agent reads ServiceAccountList '
            "(apiVersion v1); document skipped",
        ),
    ],
)
async def test_a_slip_in_a_typed_lists_kind_or_api_version_names_the_list(
    tmp_path: Path, text: str, reason: str
) -> None:
    """Before: reported as a slip from SecretProviderClass or ServiceAccount."""
    (tmp_path / "classes.yaml").write_text(text)
    _, warnings = await read(tmp_path)
    assert warnings == {"classes.yaml": reason}
