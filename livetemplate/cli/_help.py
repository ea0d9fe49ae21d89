"""Help output in the style of uvicorn's and pytest's: defaults shown where they say something."""

from __future__ import annotations

import argparse

__all__ = ["HelpFormatter"]


class HelpFormatter(argparse.HelpFormatter):
    """Appends ``(default: X)`` to an option's help unless the help names its default itself
    or there is nothing to show (a flag, no value)."""

    def _get_help_string(self, action: argparse.Action) -> str | None:
        text = action.help or ""
        default = action.default
        if (
            "[default" in text
            or default in (None, False, "", argparse.SUPPRESS)
            or action.option_strings == []
            or isinstance(default, list)
        ):
            return text
        return text + " (default: %(default)s)"
