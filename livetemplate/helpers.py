"""The ``lvt`` object templates see: errors, flash messages, the CSRF field, uploads."""

from __future__ import annotations

from collections.abc import Mapping
from typing import TYPE_CHECKING, Any, Protocol

from markupsafe import Markup, escape

from .wire import CSRF_FIELD

if TYPE_CHECKING:
    from .uploads import UploadStatus

__all__ = ["Helpers"]


class UploadEntries(Protocol):
    """The upload entries a template may show."""

    def statuses(self, upload: str) -> list[UploadStatus]: ...

    def error(self, upload: str) -> str: ...


class Helpers:
    """Available in templates as ``lvt``::

    <input name="title" aria-invalid="{{ lvt.has_error('title') }}">
    {% if lvt.has_error('title') %}<small>{{ lvt.error('title') }}</small>{% endif %}
    <output>{{ lvt.flash('saved') }}</output>
    <form method="post">{{ lvt.csrf_field() }} ...</form>
    {% for file in lvt.uploads("avatar") %}{{ file.name }} {{ file.progress }}%{% endfor %}
    """

    __slots__ = ("_csrf", "_uploads", "dev_mode", "errors", "flashes")

    def __init__(
        self,
        errors: Mapping[str, str] | None = None,
        flashes: Mapping[str, str] | None = None,
        csrf: str = "",
        dev_mode: bool = False,
        uploads: UploadEntries | None = None,
    ) -> None:
        self.errors = dict(errors) if errors else {}
        self.flashes = dict(flashes) if flashes else {}
        self._csrf = csrf
        self.dev_mode = dev_mode
        self._uploads = uploads

    def values(self) -> tuple[Any, ...] | None:
        """What templates can read here, as a key (None with uploads: those are the tab's own)."""
        if self._uploads is not None:
            return None
        return tuple(self.errors.items()), tuple(self.flashes.items()), self._csrf, self.dev_mode

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

    def uploads(self, name: str) -> list[UploadStatus]:
        """The entries of upload ``name`` (each with ``name``, ``size``, ``type``,
        ``progress``, ``done``, ``valid`` and ``error``), in the order they were chosen."""
        return self._uploads.statuses(name) if self._uploads is not None else []

    def upload_error(self, name: str) -> str:
        """The first error of upload ``name`` (a refused or failed file), or an empty string."""
        if self._uploads is not None:
            error = self._uploads.error(name)
            if error:
                return error
        return self.errors.get(name, "")

    def has_upload_error(self, name: str) -> bool:
        return bool(self.upload_error(name))
