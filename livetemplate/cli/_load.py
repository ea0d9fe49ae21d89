"""Finding the objects the command line names (``module:attribute``)."""

from __future__ import annotations

from typing import Any

from uvicorn.importer import ImportFromStringError, import_from_string

__all__ = ["import_object"]


def import_object(target: str) -> Any:
    """The object ``module:attribute`` names (``attribute`` may be dotted); ImportError with
    uvicorn's message when it cannot be found."""
    try:
        return import_from_string(target)
    except ImportFromStringError as exc:
        raise ImportError(str(exc)) from None
