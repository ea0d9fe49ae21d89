"""Exceptions raised by LiveTemplate."""

from __future__ import annotations

__all__ = ["TemplateError"]


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
