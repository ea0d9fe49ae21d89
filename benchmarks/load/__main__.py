"""``python -m benchmarks.load``: see :mod:`benchmarks.load.run`."""

from __future__ import annotations

import sys

from .run import main

sys.exit(main())
