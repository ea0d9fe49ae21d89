"""The messages the official client sends for a click or a form submit, worked out from
the HTML a page shows (protocol section 1.4), for the in-process test client.

Covered: ``lvt-on:click`` elements, named buttons outside forms, and form submits (action
from ``lvt-form:action``, ``lvt-on:submit``, the submitter's name, the form's name, else
``submit``; fields with the client's value conversion, checkboxes, radios, selects,
textareas; the submitter's value and ``data-*``). Not covered: key, drag and window events,
``change`` auto-wiring and uploads; send those with :meth:`LiveSocket.send`.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from typing import Any

from bs4 import BeautifulSoup, Tag

from .tree import js_number

__all__ = ["ElementNotFound", "click_message", "convert", "submit_message"]

_NUMBER = re.compile(r"-?(\d+\.?\d*|\.\d+)([eE][-+]?\d+)?\Z")
_SKIPPED_DATA = frozenset({"data-key", "data-lvt-id"})
_BUTTON_TYPES = ("submit", "")


class ElementNotFound(AssertionError):
    """No element of the page matches the selector (or it cannot send anything)."""


def convert(text: str) -> Any:
    """The client's conversion of a field or ``data-*`` value: a number when it prints back
    the same, ``true``/``false`` as booleans, else the string."""
    value = text.strip()
    if value in ("true", "false"):
        return value == "true"
    if _NUMBER.match(value):
        number = float(value)
        if js_number(number) == value:
            return int(number) if number.is_integer() and abs(number) < 2**53 else number
    return text


def _data_attributes(element: Tag) -> dict[str, Any]:
    data = {}
    for name, value in element.attrs.items():
        if name.startswith("data-") and name not in _SKIPPED_DATA:
            data[name[5:]] = convert(value if isinstance(value, str) else " ".join(value))
    return data


def _find(html: str, selector: str) -> Tag:
    element = BeautifulSoup(html, "html.parser").select_one(selector)
    if element is None:
        raise ElementNotFound(f"no element matches {selector!r} in {html!r}")
    return element


def click_message(html: str, selector: str) -> dict[str, Any]:
    """The message a click on the element ``selector`` finds makes the client send."""
    element = _find(html, selector)
    bound = element if element.has_attr("lvt-on:click") else element.find_parent(attrs={"lvt-on:click": True})
    if bound is not None:
        return {"action": str(bound["lvt-on:click"]), "data": _data_attributes(bound)}
    button = element if element.name == "button" else element.find_parent("button")
    if button is None or button.has_attr("disabled") or not button.has_attr("name"):
        raise ElementNotFound(f"{selector!r} is neither in an lvt-on:click element nor a named, enabled button")
    form = button.find_parent("form")
    if form is not None and _is_submit(button):
        return _form_message(form, button, {})
    if str(button.get("type", "")).lower() == "reset":
        raise ElementNotFound(f"{selector!r} is a reset button: the client sends nothing")
    data = _data_attributes(button)
    if button.has_attr("value"):
        data["value"] = convert(str(button["value"]))
    return {"action": str(button["name"]), "data": data}


def submit_message(html: str, selector: str, values: Mapping[str, Any], button: str | None = None) -> dict[str, Any]:
    """The message the client sends when the form ``selector`` finds is submitted after the
    user filled in ``values`` (field name -> value): by its ``button`` (a selector within the
    form), else as pressing Enter does, by its default button (its first submit button)."""
    form = _find(html, selector)
    if form.name != "form":
        raise ElementNotFound(f"{selector!r} is a <{form.name}>, not a form")
    if button is not None:
        submitter = form.select_one(button)
        if submitter is None:
            raise ElementNotFound(f"no element matches {button!r} in the form {selector!r}")
    else:
        submitter = next(
            (b for b in form.find_all(["button", "input"]) if _is_submit(b) and not b.has_attr("disabled")), None
        )
    return _form_message(form, submitter, values)


def _is_submit(element: Tag) -> bool:
    kind = str(element.get("type", "")).lower()
    return kind in _BUTTON_TYPES if element.name == "button" else kind == "submit"


def _form_message(form: Tag, submitter: Tag | None, values: Mapping[str, Any]) -> dict[str, Any]:
    submitter_name = str(submitter["name"]) if submitter is not None and submitter.has_attr("name") else None
    data = _fields(form, values)
    if submitter_name is not None:
        data.pop(submitter_name, None)
    if submitter is not None:
        if submitter.has_attr("value"):
            data["value"] = convert(str(submitter["value"]))
        data.update(_data_attributes(submitter))
    action = form.get("lvt-form:action") or form.get("lvt-on:submit") or submitter_name or form.get("name")
    message: dict[str, Any] = {"action": str(action or "submit"), "data": data}
    if submitter_name is not None:
        message["submitter"] = submitter_name
    return message


def _fields(form: Tag, values: Mapping[str, Any]) -> dict[str, Any]:
    """The form's fields as the client sends them, with ``values`` typed in first."""
    data: dict[str, Any] = {}
    checkboxes: dict[str, list[Tag]] = {}
    for field in form.find_all(["input", "select", "textarea"]):
        name = field.get("name")
        if not name or field.has_attr("disabled"):
            continue
        name = str(name)
        kind = str(field.get("type", "text")).lower()
        if field.name == "input" and kind == "checkbox":
            checkboxes.setdefault(name, []).append(field)
        elif field.name == "input" and kind == "radio":
            chosen = values.get(name)
            if (chosen is None and field.has_attr("checked")) or (chosen is not None and field.get("value") == chosen):
                data[name] = convert(str(field.get("value", "on")))
        elif field.name == "input" and kind in ("submit", "button", "reset", "file", "image"):
            continue
        else:
            raw = values[name] if name in values else _current_value(field)
            data[name] = raw if kind == "password" or not isinstance(raw, str) else convert(raw)
    for name, boxes in checkboxes.items():
        chosen = values.get(name)
        if len(boxes) == 1:
            data[name] = bool(chosen) if chosen is not None else boxes[0].has_attr("checked")
        else:
            picked = chosen if chosen is not None else [b.get("value", "on") for b in boxes if b.has_attr("checked")]
            data[name] = [convert(str(v)) for v in picked]
    return data


def _current_value(field: Tag) -> str:
    if field.name == "textarea":
        return field.get_text()
    if field.name == "select":
        options = field.find_all("option")
        chosen = next((o for o in options if o.has_attr("selected")), options[0] if options else None)
        return "" if chosen is None else str(chosen.get("value", chosen.get_text()))
    return str(field.get("value", ""))
