"""``livetemplate bench``: run the load harness (``benchmarks.load``) against an app.

The harness lives in the source tree's ``benchmarks/`` folder, not in the installed package;
this command hands its arguments to ``benchmarks.load.main(argv) -> int`` when that module can
be imported (from a checkout: run it at the top of the checkout) and says what to do otherwise.
"""

from __future__ import annotations

import argparse
import importlib
import sys
from typing import Any

from ._help import HelpFormatter

__all__ = ["HARNESS"]

HARNESS = "benchmarks.load"


def add_parser(commands: Any) -> None:
    parser = commands.add_parser(
        "bench",
        formatter_class=HelpFormatter,
        help="run the load harness against an app and print the table (source checkout)",
        description=(
            f"Run the load harness ({HARNESS}) with the arguments given; see "
            "`livetemplate bench -- --help` for its own options. The harness ships with the source "
            "tree, not with the package."
        ),
    )
    parser.add_argument("harness_args", nargs=argparse.REMAINDER, help="arguments for the harness")
    parser.set_defaults(run=run)


def run(args: argparse.Namespace) -> int:
    try:
        harness = importlib.import_module(HARNESS)
    except ModuleNotFoundError as exc:
        if exc.name not in (HARNESS, HARNESS.partition(".")[0]):
            raise
        print(
            f"livetemplate bench: the load harness ({HARNESS}) is not importable here. It ships with the "
            "source tree: run `livetemplate bench` (or `make bench`) at the top of a checkout of "
            "LiveTemplate for Python, with its dev dependencies installed (`make build`).",
            file=sys.stderr,
        )
        return 2
    argv = [a for a in args.harness_args if a != "--"] if args.harness_args[:1] == ["--"] else args.harness_args
    result: int = harness.main(list(argv))
    return result
