"""Exceptions raised by LiveTemplate."""

from __future__ import annotations

__all__ = ["FieldError", "NotAvailable", "TemplateError", "TopicForbidden"]


class TemplateError(Exception):
    """A template could not be compiled or rendered.

    ``template`` is the template's name (``None`` for an unnamed source), ``lineno`` and
    ``column`` locate the problem when known (1-based), ``detail`` is the bare message.
    """

    def __init__(
        self,
        detail: str,
        *,
        template: str | None = None,
        lineno: int | None = None,
        column: int | None = None,
    ) -> None:
        self.detail = detail
        self.template = template
        self.lineno = lineno
        self.column = column
        super().__init__(self._format())

    def _format(self) -> str:
        where = f"template {self.template!r}" if self.template else "template <string>"
        if self.lineno is not None:
            where += f", line {self.lineno}"
            if self.column is not None:
                where += f", column {self.column}"
        return f"{where}: {self.detail}"


class FieldError(Exception):
    """Validation errors an action raises (or returns): ``FieldError("title", "Required")``
    for one field, ``FieldError({"title": "Required", "due": "Not a date"})`` for many.
    The action commits nothing; the errors reach the template as ``lvt.errors`` and the
    client as ``meta.errors``."""

    def __init__(self, field: str | dict[str, str], message: str | None = None) -> None:
        if isinstance(field, dict):
            if message is not None:
                raise TypeError("pass either a field and a message or a dict of errors")
            self.errors = {str(k): str(v) for k, v in field.items()}
        else:
            if message is None:
                raise TypeError("a field error needs a message")
            self.errors = {field: message}
        super().__init__("; ".join(f"{k}: {v}" for k, v in self.errors.items()))


class NotAvailable(RuntimeError):
    """A context feature was used where it does not exist (a cookie or a redirect over a
    WebSocket, a push to a group with no connection)."""


class TopicForbidden(PermissionError):
    """The topic ACL denied a subscription."""

    def __init__(self, topic: str) -> None:
        self.topic = topic
        super().__init__(f"subscribing to topic {topic!r} is not allowed")
