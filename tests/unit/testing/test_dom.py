"""The messages the official client would send for clicks and submits (protocol section 1.4),
worked out from HTML."""

from __future__ import annotations

from typing import Any

import pytest

from livetemplate.testing.dom import click_message, convert, submit_message


@pytest.mark.parametrize(
    ("text", "value"),
    [
        ("7", 7),
        (" 7 ", 7),
        ("-2.5", -2.5),
        ("0012", "0012"),
        ("1e3", "1e3"),
        ("1.0", "1.0"),
        ("9007199254740993", "9007199254740993"),
        ("true", True),
        ("false", False),
        ("True", "True"),
        ("milk", "milk"),
        ("", ""),
    ],
)
def test_value_conversion(text: str, value: Any) -> None:
    assert convert(text) == value and type(convert(text)) is type(value)


def test_lvt_on_click_sends_its_data_attributes() -> None:
    html = '<div lvt-on:click="select" data-id="3" data-key="k" data-lvt-id="x" data-name="a b"><i>x</i></div>'
    assert click_message(html, "i") == {"action": "select", "data": {"id": 3, "name": "a b"}}


def test_an_orphan_button_sends_its_name_value_and_data() -> None:
    html = '<button name="delete" value="7" data-x="1">x</button>'
    assert click_message(html, "button") == {"action": "delete", "data": {"value": 7, "x": 1}}


def test_a_submit_button_submits_its_form() -> None:
    html = """<form name="f">
      <input name="title" value=" Hi ">
      <input name="secret" type="password" value="007">
      <input type="checkbox" name="done" checked>
      <input type="checkbox" name="tags" value="a" checked><input type="checkbox" name="tags" value="b">
      <input type="radio" name="size" value="s"><input type="radio" name="size" value="m" checked>
      <select name="pick"><option value="1">one</option><option value="2" selected>two</option></select>
      <textarea name="body">text</textarea>
      <input name="off" disabled value="x"><input type="file" name="f">
      <button name="publish" value="5" data-why="now">Go</button>
      <button type="button" name="other">no</button>
    </form>"""
    assert click_message(html, "button[name=publish]") == {
        "action": "publish",
        "data": {
            "title": " Hi ",
            "secret": "007",
            "done": True,
            "tags": ["a"],
            "size": "m",
            "pick": 2,
            "body": "text",
            "value": 5,
            "why": "now",
        },
        "submitter": "publish",
    }
    typed = submit_message(html, "form", {"title": "New", "done": False, "tags": ["a", "b"], "size": "s"})
    assert typed["action"] == "publish" and typed["submitter"] == "publish"  # Enter: the default button
    assert typed["data"]["title"] == "New" and typed["data"]["done"] is False
    assert typed["data"]["tags"] == ["a", "b"] and typed["data"]["size"] == "s"


@pytest.mark.parametrize(
    ("attributes", "action"),
    [('lvt-form:action="save" name="f"', "save"), ('lvt-on:submit="send"', "send"), ("", "submit")],
)
def test_how_a_form_names_its_action(attributes: str, action: str) -> None:
    assert submit_message(f"<form {attributes}><input name='a' value='1'></form>", "form", {})["action"] == action


def test_submitting_with_a_chosen_button() -> None:
    html = '<form><button name="save">S</button><button name="later" value="x">L</button></form>'
    assert submit_message(html, "form", {}, "button[name=later]") == {
        "action": "later",
        "data": {"value": "x"},
        "submitter": "later",
    }
    with pytest.raises(AssertionError, match=r"no element matches 'button\.gone'"):
        submit_message(html, "form", {}, "button.gone")
