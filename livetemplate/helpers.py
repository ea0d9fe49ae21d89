"""The ``lvt`` object templates see: errors, flash messages, the CSRF field."""

from __future__ import annotations

from collections.abc import Mapping

from markupsafe import Markup, escape

from .wire import CSRF_FIELD

__all__ = ["Helpers"]


class Helpers:
    """Available in templates as ``lvt``::

    <input name="title" aria-invalid="{{ lvt.has_error('title') }}">
    {% if lvt.has_error('title') %}<small>{{ lvt.error('title') }}</small>{% endif %}
    <output>{{ lvt.flash('saved') }}</output>
    <form method="post">{{ lvt.csrf_field() }} ...</form>
    """

    __slots__ = ("_csrf", "dev_mode", "errors", "flashes")

    def __init__(
        self,
        errors: Mapping[str, str] | None = None,
        flashes: Mapping[str, str] | None = None,
        csrf: str = "",
        dev_mode: bool = False,
    ) -> None:
        self.errors = dict(errors or {})
        self.flashes = dict(flashes or {})
        self._csrf = csrf
        self.dev_mode = dev_mode

    def error(self, field: str) -> str:
        """The error message for ``field``, or an empty string."""
        return self.errors.get(field, "")

    def has_error(self, field: str) -> bool:
        return field in self.errors

    def flash(self, key: str) -> str:
        """The flash message under ``key``, or an empty string."""
        return self.flashes.get(key, "")

    def has_flash(self, key: str) -> bool:
        return key in self.flashes

    def csrf_field(self) -> Markup:
        """A hidden input with the CSRF token; put it in every form that must work
        without JavaScript (plain form posts are refused without it)."""
        return Markup(f'<input type="hidden" name="{CSRF_FIELD}" value="{escape(self._csrf)}">')
