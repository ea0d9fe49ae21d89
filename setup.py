"""Declares the compiled twins of the hot-path modules.

Each hot module has one Python source in ``livetemplate/`` (the pure-Python twin) and a
``.pxd`` in ``ext/`` that gives Cython its static types. The build copies both side by
side under ``build/cython/`` and compiles them as ``livetemplate.<name>_c``. One more, the
send thread of broadcasts' socket writes (``ext/_sender_c.pyx``, POSIX only), has no twin:
without it the writes are made on the event loop's thread.

Environment switches:

``LIVETEMPLATE_NO_EXTENSIONS=1``
    build nothing; the package then imports the pure-Python twins.
``LIVETEMPLATE_BUILD_EXTENSIONS=required``
    fail the build if an extension cannot be compiled (used for release wheels).
``LIVETEMPLATE_DEBUG=1``
    compile with ``-O0 -g`` and Cython line tracing for debugging and coverage.

Building also fetches the pinned browser client into ``livetemplate/static/`` (with npm,
through ``scripts/fetch-client``) when it is not there yet, so wheels ship it.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

from setuptools import Extension, setup
from setuptools.command.build_py import build_py

ROOT = Path(__file__).parent
# (twin module in livetemplate/, compiled module name)
HOT_MODULES = [("_render_py", "_render_c"), ("_frames_py", "_frames_c")]


def _flag(name: str) -> bool:
    return os.environ.get(name, "").lower() in {"1", "true", "yes", "on", "y"}


def _extensions() -> list[Extension]:
    if _flag("LIVETEMPLATE_NO_EXTENSIONS"):
        return []
    from Cython.Build import cythonize

    staging = ROOT / "build" / "cython" / "livetemplate"
    staging.mkdir(parents=True, exist_ok=True)
    (staging / "__init__.py").touch()
    debug = _flag("LIVETEMPLATE_DEBUG")
    extensions = []
    for twin, compiled in HOT_MODULES:
        shutil.copyfile(ROOT / "livetemplate" / f"{twin}.py", staging / f"{compiled}.py")
        shutil.copyfile(ROOT / "ext" / f"{compiled}.pxd", staging / f"{compiled}.pxd")
        extensions.append(
            Extension(
                f"livetemplate.{compiled}",
                [str((staging / f"{compiled}.py").relative_to(ROOT))],
                extra_compile_args=["-O0", "-g"] if debug else ["-O2", "-g0"],
                define_macros=[("CYTHON_TRACE", "1")] if debug else [],
                optional=os.environ.get("LIVETEMPLATE_BUILD_EXTENSIONS") != "required",
            )
        )
    if sys.platform != "win32":  # POSIX threads and sockets
        extensions.append(
            Extension(
                "livetemplate._sender_c",
                ["ext/_sender_c.pyx"],
                extra_compile_args=["-O0", "-g"] if debug else ["-O2", "-g0"],
                optional=os.environ.get("LIVETEMPLATE_BUILD_EXTENSIONS") != "required",
            )
        )
    directives = {
        "language_level": 3,
        "boundscheck": False,
        "wraparound": False,
        "cdivision": True,
        "linetrace": debug,
    }
    return cythonize(extensions, compiler_directives=directives, quiet=True)


class BuildWithClient(build_py):
    """build_py that first makes sure the client bundle is in the package."""

    def run(self) -> None:
        bundle = ROOT / "livetemplate" / "static" / "livetemplate-client.browser.js"
        if not bundle.exists():
            if shutil.which("npm") is None:
                raise RuntimeError("building needs npm to fetch @livetemplate/client (or run scripts/fetch-client)")
            subprocess.run([str(ROOT / "scripts" / "fetch-client")], check=True)
        super().run()


setup(ext_modules=_extensions(), cmdclass={"build_py": BuildWithClient})
