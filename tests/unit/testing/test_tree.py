"""ClientTree against hand-checked expectations and, differentially, against the real client.

Every scenario below is a list of steps (a ``tree`` value, or ``RESET``) with the HTML the official
client (``@livetemplate/client`` 0.25.1, ``TreeRenderer``) produces after each step; ``ERROR`` means
the client throws. The same scenarios run through the real client in Node (``shared_oracle()``),
so the expectations document the client's actual behaviour, quirks included.
"""

from __future__ import annotations

import random
from pathlib import Path
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from livetemplate.testing import ClientTree
from tests.support import oracle as oracle_module
from tests.support.oracle import OracleError, TreeOracle, shared_oracle

RESET: dict[str, Any] = {"__reset__": True}  # a step marker, never sent
ERROR = "<error>"

LI = ['<li data-key="', '">', "</li>"]


def li(key: str, text: str) -> str:
    return f'<li data-key="{key}">{text}</li>'


def item(key: str, text: str, *, k: bool = True) -> dict[str, Any]:
    return {"0": key, "1": text, "_k": key} if k else {"0": key, "1": text}


def ul(*rows: str) -> str:
    return "<ul>" + "".join(rows) + "</ul>"


def keyed_list(*items: dict[str, Any], id_key: bool = True) -> dict[str, Any]:
    rng: dict[str, Any] = {"s": LI, "d": list(items)}
    if id_key:
        rng["m"] = {"idKey": "0"}
    return {"s": ["<ul>", "</ul>"], "0": rng}


Step = tuple[dict[str, Any], str]

SCENARIOS: dict[str, list[Step]] = {
    # --- protocol.md 2.6 -----------------------------------------------------------------------
    "scalar_change": [
        ({"s": ["<p>", "</p>"], "0": "a"}, "<p>a</p>"),
        ({"0": "b"}, "<p>b</p>"),
        ({}, "<p>b</p>"),
    ],
    "value_rendering": [
        (
            {
                "s": ["<i>", "</i><i>", "</i><i>", "</i><i>", "</i><i>", "</i>"],
                "0": 5,
                "1": True,
                "2": None,
                "3": "{{x}}",
                "4": "&lt;b&gt;",
            },
            "<i>5</i><i>true</i><i></i><i></i><i>&lt;b&gt;</i>",
        ),
        (
            {"0": 2.0, "1": False, "2": 1e21, "3": "{{x} }", "4": "{{"},
            "<i>2</i><i>false</i><i>1e+21</i><i>{{x} }</i><i>{{</i>",
        ),
        (
            {"0": 1.5, "1": -0.0, "2": 1e-7, "3": 123456789012345678901234, "4": 0.000001},
            "<i>1.5</i><i>0</i><i>1e-7</i><i>1.2345678901234569e+23</i><i>0.000001</i>",
        ),
        (
            {"0": 2**60, "1": 100.25, "2": -3, "3": 1e16, "4": "}}{{"},
            "<i>1152921504606847000</i><i>100.25</i><i>-3</i><i>10000000000000000</i><i>}}{{</i>",
        ),
    ],
    "branch_toggle_and_swap": [
        ({"s": ["<div>", "</div>"], "0": ""}, "<div></div>"),
        ({"0": {"s": ["<b>", "</b>"], "0": "x"}}, "<div><b>x</b></div>"),
        ({"0": ""}, "<div></div>"),
        ({"0": {"s": ["<b>", "</b>"], "0": "x"}}, "<div><b>x</b></div>"),
        ({"0": {"s": ["<i>", "|", "</i>"], "0": "p", "1": "q"}}, "<div><i>p|q</i></div>"),
        ({"0": {"s": ["<em>none</em>"]}}, "<div><em>none</em></div>"),  # lost slots: replaced
        ({"0": {"s": ["<i>", "|", "</i>"], "0": "p2"}}, "<div><i>p2|</i></div>"),  # so old "1" is gone
        ({"0": {"s": ["<u>", "</u>"], "0": "y"}}, "<div><u>y</u></div>"),
    ],
    "partial_branch_update_without_statics": [
        (
            {"s": ["<div>", "</div>"], "0": {"s": ["<b>", "-", "</b>"], "0": "x", "1": "y"}},
            "<div><b>x-y</b></div>",
        ),
        ({"0": {"1": "z"}}, "<div><b>x-z</b></div>"),
        ({"0": {"0": {"s": ["<i>", "</i>"], "0": "n"}}}, "<div><b><i>n</i>-z</b></div>"),
        ({"0": {"0": {"0": "m"}}}, "<div><b><i>m</i>-z</b></div>"),
        # statics re-sent with every slot present: still a merge, nested partials apply
        ({"0": {"s": ["<p>", "+", "</p>"], "0": {"0": "o"}, "1": "w"}}, "<div><p><i>o</i>+w</p></div>"),
    ],
    "all_six_ops_in_one_list": [
        (
            keyed_list(item("k1", "A"), item("k2", "B"), item("k3", "C"), item("k4", "D")),
            ul(li("k1", "A"), li("k2", "B"), li("k3", "C"), li("k4", "D")),
        ),
        (
            {
                "0": [
                    ["r", "k2"],
                    ["u", "k1", {"1": "A!"}],
                    ["a", item("k5", "E")],
                    ["p", [item("k0", "Z")]],
                    ["i", "k3", [item("k35", "F")]],
                    ["o", ["k5", "k3", "k35", "k1", "k0"]],
                ]
            },
            ul(li("k5", "E"), li("k3", "C"), li("k35", "F"), li("k1", "A!"), li("k0", "Z")),
        ),
    ],
    "key_via_id_key_only": [
        (
            keyed_list(item("k1", "A", k=False), item("k2", "B", k=False), item("k3", "C", k=False)),
            ul(li("k1", "A"), li("k2", "B"), li("k3", "C")),
        ),
        (
            {
                "0": [
                    ["r", "k2"],
                    ["u", "k3", {"1": "C!"}],
                    ["i", "k1", {"0": "k9", "1": "N"}],
                    ["o", ["k3", "k1", "k9"]],
                ]
            },
            ul(li("k3", "C!"), li("k1", "A"), li("k9", "N")),
        ),
    ],
    "no_key_at_all": [
        (
            keyed_list(item("x", "A", k=False), item("y", "B", k=False), id_key=False),
            ul(li("x", "A"), li("y", "B")),
        ),
        (
            {"0": [["r", "x"], ["u", "x", {"1": "Z"}], ["i", "x", {"0": "z", "1": "C"}]]},
            ul(li("x", "A"), li("y", "B")),
        ),  # keyed ops do nothing
        (
            {"0": [["a", item("w", "D", k=False)], ["p", item("v", "E", k=False)]]},
            ul(li("v", "E"), li("x", "A"), li("y", "B"), li("w", "D")),
        ),
        ({"0": [["o", ["x", "y"]]]}, ul()),  # but "o" keeps only keyed items: everything goes
    ],
    "legacy_four_element_insert": [
        (keyed_list(item("k1", "A")), ul(li("k1", "A"))),
        # the string "after" becomes an item; its slots read as the string's characters
        ({"0": [["i", "k1", "after", item("k2", "B")]]}, ul(li("k1", "A"), li("a", "f"))),
        ({"0": [["r", "a"]]}, ul(li("k1", "A"))),  # ... and its idKey slot is "a"
    ],
    "legacy_insert_at_start_dropped": [
        (keyed_list(item("k1", "A"), item("k2", "B")), ul(li("k1", "A"), li("k2", "B"))),
        ({"0": [["i", None, "start", item("k0", "Z")]]}, ul(li("k1", "A"), li("k2", "B"))),
    ],
    "ops_on_slot_that_held_empty_string": [
        ({"s": ["<ul>", "</ul>"], "0": ""}, "<ul></ul>"),
        ({"0": [["a", [item("k1", "A")], LI]]}, "<ul></ul>"),
        ({"0": {"s": LI, "d": [item("k1", "A")]}}, ul(li("k1", "A"))),
        ({"0": [["a", item("k2", "B")]]}, ul(li("k1", "A"), li("k2", "B"))),
    ],
    "empty_range_then_append_with_statics": [
        ({"s": ["<ul>", "</ul>"], "0": {"s": [""], "d": []}}, "<ul></ul>"),
        (
            {"0": [["a", [item("k1", "A", k=False), item("k2", "B", k=False)], LI, {"idKey": "0"}]]},
            ul(li("k1", "A"), li("k2", "B")),
        ),
        ({"0": [["r", "k1"]]}, ul(li("k2", "B"))),  # key found through the meta idKey of "a"
        ({"0": [["p", item("k0", "Z", k=False), ["<p>", ":", "</p>"]]]}, "<ul><p>k0:Z</p><p>k2:B</p></ul>"),
    ],
    "empty_range_renders_else": [
        (
            {"s": ["<ul>", "</ul>"], "0": {"s": LI, "d": [], "else": {"s": ["<li>none</li>"]}}},
            "<ul><li>none</li></ul>",
        ),
        ({"0": [["a", item("k1", "A")]]}, ul(li("k1", "A"))),
        ({"0": [["r", "k1"]]}, "<ul><li>none</li></ul>"),
    ],
    "full_tree_resent_over_state": [
        (
            {
                "s": ["<h1>", "</h1><ul>", "</ul>"],
                "0": "T",
                "1": {"s": LI, "d": [item("k1", "A"), item("k2", "B")], "m": {"idKey": "0"}},
            },
            "<h1>T</h1>" + ul(li("k1", "A"), li("k2", "B")),
        ),
        (
            {"0": "U", "1": [["r", "k1"], ["a", item("k3", "C")]]},
            "<h1>U</h1>" + ul(li("k2", "B"), li("k3", "C")),
        ),
        (
            {
                "s": ["<h1>", "</h1><ul>", "</ul>"],
                "0": "T",
                "1": {"s": LI, "d": [item("k1", "A"), item("k2", "B")], "m": {"idKey": "0"}},
            },
            "<h1>T</h1>" + ul(li("k1", "A"), li("k2", "B")),
        ),
    ],
    "range_to_subtree_without_range": [
        (
            {
                "s": ["<main>", "</main>"],
                "0": {"s": ["<ul>", "</ul>"], "0": {"s": LI, "d": [item("k1", "A")]}},
            },
            "<main>" + ul(li("k1", "A")) + "</main>",
        ),
        ({"0": {"s": ["<p>", "</p>"], "0": "empty"}}, "<main><p>empty</p></main>"),
        (
            {"0": {"s": ["<ul>", "</ul>"], "0": {"s": LI, "d": [item("k2", "B")]}}},
            "<main>" + ul(li("k2", "B")) + "</main>",
        ),
        ({"0": {"0": {"s": ["<b>gone</b>"]}}}, "<main><ul><b>gone</b></ul></main>"),  # bare range -> branch
    ],
    "nested_ops": [
        (
            {
                "s": ["<section>", "</section>"],
                "0": {"s": ["<ul>", "</ul>"], "0": {"s": LI, "d": [item("k1", "A"), item("k2", "B")]}},
            },
            "<section>" + ul(li("k1", "A"), li("k2", "B")) + "</section>",
        ),
        (
            {"0": {"0": [["r", "k1"], ["a", item("k3", "C")]]}},
            "<section>" + ul(li("k2", "B"), li("k3", "C")) + "</section>",
        ),
        ({"0": {"0": [["o", ["k3", "k2"]]]}}, "<section>" + ul(li("k3", "C"), li("k2", "B")) + "</section>"),
    ],
    "ops_inside_a_range_item": [
        (
            {
                "s": ["<div>", "</div>"],
                "0": {
                    "s": ['<p data-key="', '">', "</p>"],
                    "d": [{"0": "g1", "1": {"s": ["<i>", "</i>"], "d": [{"0": "x", "_k": "x"}]}, "_k": "g1"}],
                },
            },
            '<div><p data-key="g1"><i>x</i></p></div>',
        ),
        (
            {"0": [["u", "g1", {"1": [["a", {"0": "y", "_k": "y"}], ["p", {"0": "w", "_k": "w"}]]}]]},
            '<div><p data-key="g1"><i>w</i><i>x</i><i>y</i></p></div>',
        ),
    ],
    "u_into_nested_branch": [
        (
            {
                "s": ["<ul>", "</ul>"],
                "0": {
                    "s": LI,
                    "d": [
                        {"0": "k1", "1": {"s": ["<b>", "</b>"], "0": "A"}, "_k": "k1"},
                        {"0": "k2", "1": {"s": ["<b>", "</b>"], "0": "B"}, "_k": "k2"},
                    ],
                },
            },
            ul(li("k1", "<b>A</b>"), li("k2", "<b>B</b>")),
        ),
        ({"0": [["u", "k1", {"1": {"0": "A2"}}]]}, ul(li("k1", "<b>A2</b>"), li("k2", "<b>B</b>"))),
        (
            {"0": [["u", "k2", {"1": {"s": ["<i>done</i>"]}}]]},
            ul(li("k1", "<b>A2</b>"), li("k2", "<i>done</i>")),
        ),
        (
            {"0": [["u", "k2", {"1": {"s": ["<s>", "</s>"], "0": "C"}}]]},
            ul(li("k1", "<b>A2</b>"), li("k2", "<s>C</s>")),
        ),
    ],
    # A slot holding a *bare* range receives a statics node that itself contains a range: shouldFullReplace
    # says "merge" (both sides contain a range, the range node has no numeric keys), so the stale "d"
    # survives next to the new "s" and the node still renders as a range: the wrapper's statics are
    # applied to the old items, and the new inner range (and later ops on it) never show.
    "pitfall_bare_range_becomes_wrapper": [
        (
            {
                "s": ["<div>", "</div>"],
                "0": {"s": ["<li>", "</li>"], "d": [{"0": "a", "_k": "a"}, {"0": "b", "_k": "b"}]},
            },
            "<div><li>a</li><li>b</li></div>",
        ),
        (
            {"0": {"s": ["<ul>", "</ul>"], "0": {"s": ["<li>", "</li>"], "d": [{"0": "c", "_k": "c"}]}}},
            "<div><ul>a</ul><ul>b</ul></div>",
        ),
        ({"0": {"0": [["a", {"0": "d", "_k": "d"}]]}}, "<div><ul>a</ul><ul>b</ul></div>"),
        # range -> no range anywhere: replaced
        ({"0": {"s": ["<ol>", "</ol>"], "0": "plain"}}, "<div><ol>plain</ol></div>"),
    ],
    # --- further client behaviour ----------------------------------------------------------------
    "keyless_items_match_a_null_key": [
        (
            keyed_list(item("x", "A", k=False), item("y", "B", k=False), id_key=False),
            ul(li("x", "A"), li("y", "B")),
        ),
        ({"0": [["i", None, {"0": "n", "1": "N"}]]}, ul(li("x", "A"), li("n", "N"), li("y", "B"))),
        ({"0": [["r", None]]}, ul(li("n", "N"), li("y", "B"))),
    ],
    "underscore_k_wins_and_keys_compare_strictly": [
        (
            {
                "s": ["<ul>", "</ul>"],
                "0": {
                    "s": LI,
                    "m": {"idKey": "0"},
                    "d": [
                        {"0": "slot", "1": "A", "_k": "kk"},
                        {"0": 7, "1": "B"},
                        {"0": "k3", "1": "C", "_k": 3},
                    ],
                },
            },
            ul(li("slot", "A"), li("7", "B"), li("k3", "C")),
        ),
        ({"0": [["r", "slot"], ["r", "7"], ["r", 3]]}, ul(li("slot", "A"), li("7", "B"), li("k3", "C"))),
        ({"0": [["r", "kk"], ["r", 7], ["r", "k3"]]}, "<ul></ul>"),
    ],
    "reorder_drops_unlisted_and_repeats_duplicates": [
        (
            keyed_list(item("k1", "A"), item("k2", "B"), item("k3", "C")),
            ul(li("k1", "A"), li("k2", "B"), li("k3", "C")),
        ),
        ({"0": [["o", ["k3", "nope", "k1", "k3"]]]}, ul(li("k3", "C"), li("k1", "A"), li("k3", "C"))),
        ({"0": [["r", "k3"]]}, ul(li("k1", "A"), li("k3", "C"))),
    ],
    "append_statics_replace_range_statics": [
        (keyed_list(item("k1", "A")), ul(li("k1", "A"))),
        ({"0": [["a", item("k2", "B"), ["<p>", ":", "</p>"]]]}, "<ul><p>k1:A</p><p>k2:B</p></ul>"),
        ({"0": [["u", "k1", {"1": "A1"}], ["a", [], LI]]}, ul(li("k1", "A1"), li("k2", "B"))),
    ],
    "range_replaced_by_string_then_ops_replay_old_items": [
        (keyed_list(item("k1", "A")), ul(li("k1", "A"))),
        ({"0": ""}, "<ul></ul>"),
        ({"0": [["a", item("k2", "B")]]}, ul(li("k1", "A"), li("k2", "B"))),  # replayed on remembered items
        ({}, ul(li("k1", "A"), li("k2", "B"))),
    ],
    "nested_ops_without_range_replay_on_every_render": [
        (
            {
                "s": ["<x>", "</x>"],
                "0": {"s": ["[", "]"], "0": {"s": ["<li>", "</li>"], "d": [{"0": "a", "_k": "a"}]}},
            },
            "<x>[<li>a</li>]</x>",
        ),
        ({"0": {"0": ""}}, "<x>[]</x>"),
        ({"0": {"0": [["a", {"0": "b", "_k": "b"}]]}}, "<x>[<li>a</li><li>b</li>]</x>"),
        ({}, "<x>[<li>a</li><li>b</li><li>b</li>]</x>"),
        ({"0": {"0": "z"}}, "<x>[z]</x>"),
    ],
    "replayed_ops_skip_falsy_items": [
        (keyed_list(item("k1", "A")), ul(li("k1", "A"))),
        ({"0": ""}, "<ul></ul>"),
        ({"0": [["a", None], ["a", ""], ["a", item("k2", "B")]]}, ul(li("k1", "A"), li("k2", "B"))),
    ],
    "range_memory_follows_ops_that_were_not_rendered": [
        (keyed_list(item("k1", "A")), ul(li("k1", "A"))),
        ({"s": ["<x/>"], "0": [["a", item("k2", "B")]]}, "<x/>"),
        ({"0": ""}, "<x/>"),
        (
            {"s": ["<ul>", "</ul>"], "0": [["a", item("k3", "C")]]},
            ul(li("k1", "A"), li("k2", "B"), li("k3", "C")),
        ),
    ],
    # idKeys live in a table keyed by path; for ranges inside range items that path is
    # "<range>.item.<slot>", shared by every item: an "a" meta idKey sent for g1's inner list
    # makes a later keyless "r" work on g2's inner list, where the same op did nothing before.
    "inner_range_id_key_is_shared_by_all_items": [
        (
            {
                "s": ["<div>", "</div>"],
                "0": {
                    "s": ['<p data-key="', '">', "</p>"],
                    "d": [
                        {"0": "g1", "1": {"s": ["<i>", "</i>"], "d": [{"0": "x"}]}, "_k": "g1"},
                        {"0": "g2", "1": {"s": ["<i>", "</i>"], "d": [{"0": "y"}, {"0": "z"}]}, "_k": "g2"},
                    ],
                },
            },
            '<div><p data-key="g1"><i>x</i></p><p data-key="g2"><i>y</i><i>z</i></p></div>',
        ),
        (
            {"0": [["u", "g2", {"1": [["r", "y"]]}]]},
            '<div><p data-key="g1"><i>x</i></p><p data-key="g2"><i>y</i><i>z</i></p></div>',
        ),
        (
            {"0": [["u", "g1", {"1": [["a", {"0": "w"}, None, {"idKey": "0"}]]}]]},
            '<div><p data-key="g1"><i>x</i><i>w</i></p><p data-key="g2"><i>y</i><i>z</i></p></div>',
        ),
        (
            {"0": [["u", "g2", {"1": [["r", "y"]]}]]},
            '<div><p data-key="g1"><i>x</i><i>w</i></p><p data-key="g2"><i>z</i></p></div>',
        ),
    ],
    "root_is_never_replaced": [
        ({"s": ["a", "b", "c"], "0": "x", "1": "y"}, "axbyc"),
        ({"s": ["<p>", "</p>"], "0": "z"}, "<p>z</p>"),
        ({"s": ["", "", "!"]}, "zy!"),  # the root keeps slot "1" from the first tree
    ],
    "root_without_statics": [
        ({"1": "b", "0": "a", "10": "c", "2": {"s": ["<root><i>", "</i></root>"], "0": "d"}}, "ab<i>d</i>c"),
        # range items are not stripped of <root>; only statics nodes are
        ({"0": {"s": ["<root>", "</root>"], "d": [{}]}}, "<root></root>b<i>d</i>c"),
        ({"x": 1}, ""),
    ],
    "root_tags_and_other_objects": [
        (
            {
                "s": ["<root><p>", "</p><ro", "ot>|", "|", "|", "|", "</root>"],
                "0": "<root>x",
                "1": "",
                "2": {"foo": 1},
                "3": {"0": "a", "f": "x"},
                "4": {"s": ["<b>", "</b>"], "0": "y", "f": "fp"},
                "5": [{"s": ["<i>", "</i>"], "0": "z"}, "w", 5, None, ["v"]],
            },
            "<p>x</p>|||<b>y</b>|<i>z</i>w5v",
        ),
        ({"0": {"2": "b", "0": "a"}, "1": "-"}, "<p>ab</p><ro-ot>|||<b>y</b>|<i>z</i>w5v"),
        ({"s": ["<p>", "</p>"]}, "<p>ab</p>"),
    ],
    "reset_forgets_everything": [
        (keyed_list(item("k1", "A")), ul(li("k1", "A"))),
        (RESET, ""),
        ({"0": [["a", item("k2", "B")]]}, ""),
        ({"s": ["<ul>", "</ul>"], "0": ""}, "<ul></ul>"),
        ({"0": [["a", item("k3", "C")]]}, "<ul></ul>"),
    ],
    "null_item_breaks_rendering": [
        (keyed_list(item("k1", "A")), ul(li("k1", "A"))),
        ({"0": [["a", None]]}, ERROR),
        ({"0": {"s": ["<b>", "</b>"], "0": "ok"}}, "<ul><b>ok</b></ul>"),
    ],
}


def run_client_tree(steps: list[dict[str, Any]]) -> list[str]:
    tree = ClientTree()
    out = []
    for step in steps:
        if step is RESET:
            tree.reset()
            out.append(tree.html())
            continue
        try:
            tree.apply(step)
        except TypeError:
            out.append(ERROR)
        else:
            out.append(tree.html())
    return out


def run_oracle(steps: list[dict[str, Any]]) -> list[str]:
    session = shared_oracle().session()
    out = []
    try:
        for step in steps:
            if step is RESET:
                session.reset()
                out.append("")
                continue
            try:
                out.append(session.apply(step))
            except OracleError:
                out.append(ERROR)
    finally:
        session.close()
    return out


@pytest.mark.parametrize("name", SCENARIOS)
def test_scenario_client_tree(name: str) -> None:
    steps = SCENARIOS[name]
    assert run_client_tree([update for update, _ in steps]) == [html for _, html in steps]


@pytest.mark.parametrize("name", SCENARIOS)
def test_scenario_matches_real_client(name: str) -> None:
    steps = SCENARIOS[name]
    assert run_oracle([update for update, _ in steps]) == [html for _, html in steps]


def test_html_is_empty_before_any_update_and_apply_copies_its_input() -> None:
    tree = ClientTree()
    assert tree.html() == ""
    update: dict[str, Any] = {"s": ["<p>", "</p>"], "0": {"s": ["<b>", "</b>"], "0": "x"}}
    tree.apply(update)
    update["0"]["0"] = "mutated"
    tree.apply({})
    assert tree.html() == "<p><b>x</b></p>"


def test_accepts_tuples_and_read_only_mappings() -> None:
    from types import MappingProxyType

    tree = ClientTree()
    tree.apply(MappingProxyType({"s": ("<ul>", "</ul>"), "0": {"s": LI, "d": (item("k1", "A"),)}}))
    tree.apply({"0": (("a", item("k2", "B")),)})
    assert tree.html() == ul(li("k1", "A"), li("k2", "B"))


def test_oracle_reports_renderer_errors_and_keeps_going() -> None:
    session = shared_oracle().session()
    try:
        session.apply(keyed_list(item("k1", "A")))
        with pytest.raises(OracleError, match="Cannot read properties of null"):
            session.apply({"0": [["a", None]]})
        session.reset()
        assert session.apply({"s": ["<p>", "</p>"], "0": 1}) == "<p>1</p>"
    finally:
        session.close()


def test_oracle_fails_fast_when_node_hangs(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    script = tmp_path / "silent.js"
    script.write_text("process.stdin.resume();\n")
    monkeypatch.setattr(oracle_module, "SCRIPT", script)
    hung = TreeOracle(timeout=0.3)
    try:
        with pytest.raises(RuntimeError, match="no answer within"):
            hung.session().apply({})
    finally:
        hung.close()


def test_oracle_explains_missing_prerequisites(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(oracle_module, "RENDERER", tmp_path / "missing.js")
    with pytest.raises(RuntimeError, match="npm ci"):
        TreeOracle().session().apply({})
    monkeypatch.setattr("tests.support.oracle.shutil.which", lambda name: None)
    with pytest.raises(RuntimeError, match="Node"):
        TreeOracle().session().apply({})


# --- differential testing on generated trees --------------------------------------------------------

KEYS = ("k0", "k1", "k2", "k3", "k4", "k5")
SCALARS: tuple[Any, ...] = (
    "",
    "a",
    "b",
    "<b>x</b>",
    "{{x}}",
    "{{",
    "&lt;b&gt;",
    "<root>",
    "0",
    "7",
    0,
    5,
    -3,
    7,
    1.5,
    1e21,
    1e-7,
    True,
    False,
    None,
    2**60,
)
STATIC_BITS = (
    "",
    "<p>",
    "</p>",
    "<li>",
    "</li>",
    '<div class="x">',
    " ",
    "<root>",
    "</root>",
    "<ro",
    "ot>",
    "|",
)


def _is_range(node: Any) -> bool:
    return isinstance(node, dict) and isinstance(node.get("d"), list) and isinstance(node.get("s"), list)


def _has_statics(node: Any) -> bool:
    return isinstance(node, dict) and isinstance(node.get("s"), list)


class Gen:
    """Draws well-formed trees, and updates shaped after the state the client currently holds.

    Driven by a seeded PRNG (the seed comes from Hypothesis): thousands of small choices per case
    made through ``data.draw`` would cost most of the time budget; a failing seed reproduces exactly.
    """

    def __init__(self, seed: int) -> None:
        self.rng = random.Random(seed)

    def pick(self, options: tuple[Any, ...] | list[Any]) -> Any:
        return self.rng.choice(options)

    def num(self, lo: int, hi: int) -> int:
        return self.rng.randint(lo, hi)

    def chance(self, percent: int) -> bool:
        return self.rng.random() * 100 < percent

    # -- fresh nodes --

    def statics(self, slots: int) -> list[str]:
        return [self.pick(STATIC_BITS) for _ in range(slots + 1)]

    def node(self, depth: int) -> Any:
        kind = self.pick(("scalar", "statics", "range", "range") if depth > 0 else ("scalar",))
        if kind == "statics":
            return self.statics_node(depth)
        if kind == "range":
            return self.range_node(depth)
        return self.pick(SCALARS)

    def statics_node(self, depth: int, min_slots: int = 0) -> dict[str, Any]:
        slots = self.num(min_slots, 3)
        node: dict[str, Any] = {"s": self.statics(slots)}
        for i in range(slots):
            if not self.chance(10):
                node[str(i)] = self.node(depth - 1)
        return node

    def range_node(self, depth: int) -> dict[str, Any]:
        slots = self.pick((0, 1, 2, 2))
        mode = self.pick(("_k", "idKey", "both"))
        keys = self.rng.sample(KEYS, self.pick((0, 1, 1, 2, 2, 3, 4)))
        rows = [self.item(key, slots, mode, depth) for key in keys]
        node: dict[str, Any] = {"s": self.statics(slots), "d": rows}
        if mode != "_k":
            node["m"] = {"idKey": "0"}
        if self.chance(30):
            node["else"] = self.statics_node(depth - 1) if self.chance(70) else ""
        return node

    def item(self, key: str, slots: int, mode: str, depth: int) -> dict[str, Any]:
        row: dict[str, Any] = {str(i): self.node(depth - 1) for i in range(slots)}
        if slots and mode != "_k":
            row["0"] = key
        if mode != "idKey":
            row["_k"] = key
        return row

    def items(self, slots: int, depth: int) -> Any:
        mode = self.pick(("both", "both", "_k", "idKey"))
        rows = [self.item(self.pick(KEYS), slots, mode, depth) for _ in range(self.num(0, 2))]
        return rows[0] if len(rows) == 1 and self.chance(50) else rows

    # -- updates --

    def ops(self, current: Any, depth: int) -> list[Any]:
        slots = len(current["s"]) - 1 if _has_statics(current) else 2
        rows: dict[str, Any] = {}
        for row in current["d"] if _is_range(current) else []:
            key = row.get("_k") if isinstance(row, dict) and isinstance(row.get("_k"), str) else None
            key = key if key is not None else (row.get("0") if isinstance(row, dict) else None)
            if isinstance(key, str):
                rows.setdefault(key, row)
        known = list(rows) + list(KEYS)
        ops: list[Any] = []
        for _ in range(self.num(1, 4)):
            kind = self.pick(("r", "u", "u", "a", "p", "i", "o", "odd"))
            key = self.pick(list(rows)) if rows and self.chance(75) else self.pick(known)
            if kind == "r":
                ops.append(["r", key])
            elif kind == "u":
                row = rows.get(key)
                ops.append(
                    [
                        "u",
                        key,
                        {str(i): self.update_for(_slot(row, i), depth - 1) for i in range(slots) if self.chance(60)},
                    ]
                )
            elif kind in ("a", "p"):
                op: list[Any] = [kind, self.items(slots, depth)]
                if self.chance(25):
                    op.append(self.statics(self.num(0, 2)) if self.chance(70) else None)
                    if kind == "a" and self.chance(60):
                        op.append({"idKey": "0"})
                ops.append(op)
            elif kind == "i":
                ops.append(["i", key, self.items(slots, depth)])
            elif kind == "o":
                ops.append(["o", [self.pick(known) for _ in range(self.num(0, 6))]])
            else:
                ops.append(
                    self.pick(
                        (
                            ["i", None, "start", self.item("k9", slots, "both", 0)],
                            ["i", key, "after", self.item("k9", slots, "both", 0)],
                            ["r", None],
                            ["u", key],
                            ["x", key],
                            ["a", [], self.statics(1)],
                        )
                    )
                )
        return ops

    def update_for(self, current: Any, depth: int) -> Any:
        """A value to send for a slot whose client-side value is ``current``."""
        if _is_range(current):
            choice = self.pick(("ops",) * 5 + ("range", "statics", "scalar"))
        elif _has_statics(current):
            choice = self.pick(("partial",) * 3 + ("statics", "range", "scalar"))
        else:
            choice = self.pick(("statics", "statics", "range", "range", "scalar", "scalar", "ops"))
        if choice == "ops":
            return self.ops(current, depth)
        if choice == "range":
            return self.range_node(max(depth, 1))
        if choice == "statics":
            return self.statics_node(max(depth, 1))
        if choice == "scalar":
            return self.pick(SCALARS)
        return {
            str(i): self.update_for(current.get(str(i)), depth - 1)
            for i in range(len(current["s"]) - 1)
            if self.chance(50)
        }

    def root_update(self, tree: ClientTree) -> dict[str, Any]:
        root = tree._tree  # guidance only: the shapes the client currently holds
        choice = self.pick(("partial",) * 8 + ("statics", "range"))
        if choice == "range":
            return self.range_node(3)
        if choice == "statics" or not _has_statics(root):
            return self.statics_node(3, min_slots=1)
        return {str(i): self.update_for(root.get(str(i)), 3) for i in range(len(root["s"]) - 1) if self.chance(60)}


def _slot(row: Any, i: int) -> Any:
    return row.get(str(i)) if isinstance(row, dict) else None


@settings(max_examples=800, deadline=None, database=None)
@given(st.integers(min_value=0, max_value=2**64 - 1))
def test_random_sequences_match_real_client(seed: int) -> None:
    gen = Gen(seed)
    tree = ClientTree()
    session = shared_oracle().session()
    steps: list[Any] = []  # shown when the assertion fails
    try:
        for step_no in range(gen.num(3, 8)):
            if step_no and gen.chance(5):
                tree.reset()
                session.reset()
                steps.append("RESET")
                continue
            update = gen.root_update(tree) if step_no else gen.statics_node(3, min_slots=1)
            steps.append(update)
            try:
                expected = session.apply(update)
            except OracleError:
                with pytest.raises(TypeError):
                    tree.apply(update)
                return  # both threw; their partial states are not worth comparing further
            tree.apply(update)
            assert tree.html() == expected, steps
    finally:
        session.close()
