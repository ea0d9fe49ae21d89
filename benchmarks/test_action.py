"""The action counter's client and server: every action is answered, in order."""

from __future__ import annotations

import json

from benchmarks.action import act, serving


def test_the_counted_server_answers_each_action_in_turn() -> None:
    with serving([]) as (_, port):
        replies = [json.loads(reply) for reply in act(port, 5)]
    assert [reply["tree"]["0"] for reply in replies] == ["1", "2", "3", "4", "5"]
    assert all(reply["meta"] == {"success": True, "errors": {}, "action": "increment"} for reply in replies)
