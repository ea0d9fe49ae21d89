"""The ``livetemplate`` command (also ``python -m livetemplate``).

livetemplate serve MODULE:ATTRIBUTE   run an app with uvicorn and the recommended settings
livetemplate check PATH...            validate templates
livetemplate capacity CONNECTIONS     plan instances, Redis and cost
livetemplate bench [ARGS...]          run the load harness (source checkout)
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence

from .. import __version__, implementation
from . import bench, capacity, check, serve

__all__ = ["main", "parser"]


def parser() -> argparse.ArgumentParser:
    """The command line's parser, with a sub-parser per command."""
    root = argparse.ArgumentParser(
        prog="livetemplate",
        description="LiveTemplate for Python: serve apps, check templates, plan capacity.",
        epilog="Run `livetemplate COMMAND --help` for a command's options.",
    )
    root.add_argument(
        "--version",
        action="version",
        version=f"livetemplate {__version__} ({implementation()} engine, Python {sys.version.split()[0]})",
    )
    commands = root.add_subparsers(title="commands", metavar="COMMAND", required=True)
    serve.add_parser(commands)
    check.add_parser(commands)
    capacity.add_parser(commands)
    bench.add_parser(commands)
    return root


def main(argv: Sequence[str] | None = None) -> int:
    """Run the command line; the exit status is returned."""
    args = parser().parse_args(argv)
    status: int = args.run(args)
    return status
