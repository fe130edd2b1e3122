"""What one YAML text may cost ``goyaml``: a text of more than MAX_EVENTS libyaml events is
refused before any node is composed (PyYAML's node graph takes about 300 bytes a value: a
2.8 MB flow list took 390 MiB before), and aliases or ``<<`` merges cannot make the values of
one text cost more than that either, across all its documents and conversions."""

from __future__ import annotations

import tracemalloc

import pytest
import yaml

from agent.providers.common import goyaml
from agent.providers.common.goyaml import Decoder, GoYAMLError, load, load_all
from agent.providers.common.goyaml_limits import COUNT_ABOVE, MAX_EVENTS, check_events

V3, V2, SIGS = Decoder.YAML_V3, Decoder.YAML_V2, Decoder.SIGS_YAML
TOO_MANY = f"doc: more than {MAX_EVENTS} YAML events"
EXPANDS = f"the text's aliases and << merges expand to more than {MAX_EVENTS} values"


def flow_list(count: int) -> str:
    """``k: [1, ...]``: ``count`` + 9 events (stream, document, mapping, list: a start and an
    end each; the key)."""
    return "k: [" + ",".join(["1"] * count) + "]\n"


@pytest.fixture
def no_composing(monkeypatch: pytest.MonkeyPatch) -> None:
    def composed(self: object) -> bool:
        raise AssertionError("a node was composed")

    monkeypatch.setattr(goyaml._Loader, "check_node", composed)


@pytest.mark.usefixtures("no_composing")
@pytest.mark.parametrize("read", [load, load_all])
def test_a_text_over_the_cap_is_refused_before_anything_is_composed(read: object) -> None:
    assert callable(read)
    with pytest.raises(GoYAMLError) as info:
        read(flow_list(MAX_EVENTS), SIGS, where="doc")
    assert info.value.message.startswith(TOO_MANY)
    assert info.value.message.endswith("a document may hold 100000 values); not read")


def test_a_text_at_the_cap_is_read_and_one_event_more_is_not() -> None:
    (document,) = load_all(flow_list(MAX_EVENTS - 9), V3, where="doc")
    assert len(document.struct().get("k").sequence()) == MAX_EVENTS - 9  # type: ignore[union-attr]
    with pytest.raises(GoYAMLError, match=f"^{TOO_MANY}"):
        load_all(flow_list(MAX_EVENTS - 8), V3, where="doc")


def test_refusing_a_dense_text_takes_little_memory() -> None:
    """Before: composing this 1.2 MB text took 162 MiB of Python objects (tracemalloc); now 1."""
    text = flow_list(600_000)
    tracemalloc.start()
    try:
        with pytest.raises(GoYAMLError, match=f"^{TOO_MANY}"):
            load_all(text, SIGS, where="doc")
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert peak < 8 * 1024 * 1024, f"peak {peak / 2**20:.0f} MiB"


def test_load_counts_its_first_document_only() -> None:
    """``yaml.Unmarshal`` reads the first document: what follows it, even a huge document and
    a syntax error, is not its business; ``load_all`` reads them all."""
    text = "a: 1\n---\n" + flow_list(MAX_EVENTS) + "---\n]: ["
    assert load(text, V3, where="doc").struct().string("a") == "1"
    with pytest.raises(GoYAMLError, match=f"^{TOO_MANY}"):
        load_all(text, V3, where="doc")


def test_whichever_comes_first_a_syntax_error_or_the_cap_is_reported() -> None:
    padding = "#" * COUNT_ABOVE + "\n"  # long enough to be counted
    with pytest.raises(GoYAMLError, match=r"^doc: invalid YAML at line 2, column 1$"):
        load_all(padding + "]: [\n" + flow_list(MAX_EVENTS), V3, where="doc")
    with pytest.raises(GoYAMLError, match=f"^{TOO_MANY}"):
        load_all(padding + flow_list(MAX_EVENTS) + "]: [\n", V3, where="doc")


def test_short_texts_are_not_counted() -> None:
    """libyaml makes at most two events a character (the densest text found: nine events of
    each ``[?]:,``): a text of COUNT_ABOVE characters stays far below the cap, so it is
    composed without counting, as before."""
    densest = "[" + "[?]:," * ((COUNT_ABOVE - 2) // 5) + "]"
    assert len(densest) <= COUNT_ABOVE
    assert sum(1 for _ in yaml.parse(densest, Loader=goyaml._Loader)) < 2 * COUNT_ABOVE

    def loader(text: str) -> object:
        raise AssertionError("counted")

    check_events(densest, "doc", loader, first=False)


def merges(depth: int) -> str:
    """A mapping whose ``<<`` merges name the mapping within them twice, ``depth`` deep:
    2**depth merges of one key."""
    text = "&m0 {k: v}"
    for level in range(1, depth + 1):
        text = f"&m{level} {{<<: [{text}, *m{level - 1}]}}"
    return f"data: {text}\n"


@pytest.mark.parametrize("decoder", [V3, V2, SIGS])
def test_merges_of_aliases_cannot_multiply_the_work(decoder: Decoder) -> None:
    """Before: 18 levels took 0.7 s, 22 levels 9 s and 600 MB, 25 never ended."""
    with pytest.raises(GoYAMLError, match=f"^doc.data: {EXPANDS}"):
        load(merges(30), decoder, where="doc").struct().get("data").any()  # type: ignore[union-attr]


def test_aliases_of_a_large_item_share_the_texts_budget() -> None:
    """Every use of an alias is read again: a Vault ``objects`` list of 400 aliases of one
    object of 1000 fields would take 400,000 field reads from 30 KB."""
    fields = ", ".join(f"f{i}: v" for i in range(1000))
    text = f"- &a {{objectName: a, {fields}}}\n" + "- *a\n" * 400
    with pytest.raises(GoYAMLError, match=f"^objects\\[\\d+\\]: {EXPANDS}"):
        [item.struct() for item in load(text, V3, where="objects").sequence()]


def test_the_budget_is_the_texts_not_each_documents() -> None:
    """Each document still converts to at most 100000 values; the documents of one text
    together to at most MAX_EVENTS, however often they are converted."""
    anchors = ["a: &a [x, x, x, x, x, x, x, x, x, x]"]
    for previous, name in zip("abcd", "bcde", strict=True):
        anchors.append(f"{name}: &{name} [{', '.join([f'*{previous}'] * 10)}]")
    text = "\n".join(anchors[:-1]) + "\ne: [*d, *d, *d]\n"  # 47,679 values
    (document,) = load_all(text, SIGS, where="doc")
    for _ in range(6):
        document.json()
    with pytest.raises(GoYAMLError, match=f"^doc: {EXPANDS}"):
        document.json()
