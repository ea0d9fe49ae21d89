"""Names of the LiveTemplate wire protocol, defined once.

The tree format is what ``@livetemplate/client`` 0.25.x consumes: a node is an object whose
``"s"`` holds the statics and whose numeric keys ``"0"``, ``"1"``, ... hold the dynamic slots;
a range (a loop) holds its item statics in ``"s"``, its items in ``"d"``, an optional
``"m"`` with ``"idKey"``, and an optional ``"else"`` node; each item carries its key in
``"_k"``. Updates to a range are lists of operations.
"""

from __future__ import annotations

from typing import Final

STATICS: Final = "s"
ITEMS: Final = "d"
RANGE_META: Final = "m"
ID_KEY: Final = "idKey"
ELSE: Final = "else"
ITEM_KEY: Final = "_k"

#: Range operations, applied in order by the client to a range's item list.
OP_REMOVE: Final = "r"  # ["r", key]
OP_UPDATE: Final = "u"  # ["u", key, changes]
OP_APPEND: Final = "a"  # ["a", items]
OP_PREPEND: Final = "p"  # ["p", items]
OP_INSERT_AFTER: Final = "i"  # ["i", after_key, items]
OP_ORDER: Final = "o"  # ["o", [keys...]]

#: Envelope and meta keys of an update frame ``{"tree": ..., "meta": ...}``.
TREE: Final = "tree"
META: Final = "meta"
META_SUCCESS: Final = "success"
META_ERRORS: Final = "errors"
META_ACTION: Final = "action"
META_CAPABILITIES: Final = "capabilities"

#: A branch node whose shape can change carries one extra numeric key, unique to its
#: block, at ``BRANCH_MARKER_BASE + block id``. The client ignores keys past the statics
#: when rendering, but a key the old node has and the new one lacks makes it replace the
#: old node instead of merging into it, so no stale range state can survive a switch.
BRANCH_MARKER_BASE: Final = 1_000_000
