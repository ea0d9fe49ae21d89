"""Every engine test runs once per engine: the compiled one and its pure-Python twin. A
module that tests nothing engine-specific imports ``engine`` from
``tests/support/engine_independent.py`` and runs once."""

from __future__ import annotations

from tests.support.engines import engine  # noqa: F401  (autouse, parametrized)
