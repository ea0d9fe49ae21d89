"""The render engine: runs compiled template programs, remembers what each client holds,
and computes the minimal tree update for a new state.

This is the pure-Python twin of ``livetemplate._render_c``: the build compiles this same
source with the static types declared in ``ext/_render_c.pxd``. Keep it free of
constructs Cython compiles badly (closures and generators in hot functions).

A program is a tree of :class:`Block` objects (statics and ops) produced by
``livetemplate._compiler``. Rendering walks the ops with a runtime :class:`Frame` per
Jinja scope and a :class:`Ctx` per template context, and builds :class:`NodeState`
objects: the per-client record of what the browser holds. Every slot carries a
:class:`Gate`, the attribute paths its output depends on; a slot, a branch or a loop
item whose paths still read the same scalar values is not evaluated again.
"""

from __future__ import annotations

import html
import math
from hashlib import blake2b

from jinja2.exceptions import TemplateError as JinjaTemplateError
from jinja2.runtime import Context, LoopContext, Macro, Undefined
from jinja2.utils import missing
from markupsafe import Markup, escape

from .errors import TemplateError
from .wire import (
    ELSE,
    ID_KEY,
    ITEM_KEY,
    ITEMS,
    OP_APPEND,
    OP_INSERT_AFTER,
    OP_ORDER,
    OP_PREPEND,
    OP_REMOVE,
    OP_UPDATE,
    RANGE_META,
    STATICS,
)

try:
    from markupsafe import _escape_inner
except ImportError:  # pragma: no cover - markupsafe without its (private) core function

    def _escape_inner(s):
        return str(escape(s))


try:
    import cython

    COMPILED: bool = cython.compiled
except ImportError:  # pragma: no cover - without Cython this module is certainly not compiled
    COMPILED = False

# Op kinds. Slots (< K_ASSIGN) produce a value at a numeric key; statements run in order.
K_OUTPUT = 1  # {{ expr }}                               -> str
K_COND = 2  # {% if %}                                   -> NodeState of the taken branch, or None
K_LOOP = 3  # {% for %}                                  -> RangeState
K_CALL = 4  # {{ macro(...) }}, {{ caller() }}, {% call %} -> NodeState, or str when not a macro
K_SCOPE = 5  # with / include / block / super()          -> NodeState
K_TEXT = 6  # {% filter %}, dynamic include              -> str
K_RECURSE = 7  # {{ loop(children) }} in a recursive loop  -> RangeState
K_ASSIGN = 10  # {% set %}, {% set %}...{% endset %}, {% macro %}: a generated function

# Scope load instructions, applied when a frame is entered.
LOAD_RESOLVE = 1
LOAD_ALIAS = 2

# Range key modes.
KEY_SLOTS = 1  # from the root element's data-key: statics and output slots
KEY_HASH = 2  # no usable data-key: a hash of the item's HTML

SLOT_KEYS = tuple(str(i) for i in range(4096))
#: The tags the client deletes from every node's HTML (case-sensitively).
ROOT_TAGS = ("<root>", "</root>")
NOCHANGE = object()
NOT_SCALAR = object()


def slot_key(index):
    if index < 4096:
        return SLOT_KEYS[index]
    return str(index)


# --------------------------------------------------------------------------------------
# Program objects (built by the compiler, shared by every render of a template)


class Path:
    """A dependency: a frame value (``hops`` >= 0) or a context name (``hops`` == -1)
    followed by lookups: ``keys[j]`` is an item lookup where ``items[j]`` is true, an
    attribute lookup otherwise."""

    __slots__ = ("hops", "index", "items", "keys", "name")

    def __init__(self, hops, index, name, attrs):
        self.hops = hops
        self.index = index
        self.name = name
        self.keys = tuple(key for _, key in attrs)
        self.items = tuple(is_item for is_item, _ in attrs)


class Gate:
    """The paths a slot (or a whole block) reads. ``None`` in place of a gate means the
    slot is re-evaluated on every render."""

    __slots__ = ("paths",)

    def __init__(self, paths):
        self.paths = paths


class Scope:
    """Layout of a runtime frame: its size and what to load into it on entry. Each load
    is ``(index, kind, a, b)``: resolve name ``a`` from the context, or alias the value
    at ``a`` hops, index ``b``."""

    __slots__ = ("loads", "size")

    def __init__(self):
        self.size = 0
        self.loads = ()


class Block:
    """A sequence of statics and ops: a tree node. ``ops`` holds the slots and statements
    in template order; slot ``i`` sits between ``statics[i]`` and ``statics[i + 1]``."""

    __slots__ = (
        "gate",
        "has_range",
        "marker",
        "nslots",
        "ops",
        "slot_gates",
        "statics",
        "uid",
        "wire_statics",
    )

    def __init__(self, uid, statics, ops):
        self.uid = uid
        self.statics = statics
        self.wire_statics = [guard_static(s) for s in statics]
        self.ops = ops
        self.nslots = len(statics) - 1
        self.gate = None
        self.has_range = False
        self.slot_gates = True
        self.marker = None


class Op:
    """One slot or statement. Which fields are used depends on ``kind``:

    * K_OUTPUT / K_TEXT: ``fn(F, C) -> str``.
    * K_COND: ``tests`` (functions), ``blocks`` (one per test, plus the else branch).
    * K_LOOP: ``fn`` evaluates the iterable, ``scope``/``block`` are the item frame and
      body, ``target_index`` (or ``bind``) and ``loop_index`` bind the loop variables,
      ``test``/``test_scope``/``test_bind`` filter items (``test_bind(F, value)`` binds
      the target and returns it packed again), ``else_block``/``else_scope``.
    * K_RECURSE: ``fn`` evaluates the argument of ``loop(...)``; ``loop`` is the K_LOOP
      op rendered again, whose loop context sits ``hops`` frames up at ``loop_index``.
    * K_CALL: ``fn(F, C, caller)`` binds the call to a macro; ``alt(F, C, caller)``
      calls anything that is not a macro; ``macro`` describes a ``{% call %}`` body
      passed as ``caller``.
    * K_SCOPE: ``ctx_fn(F, C)`` makes the context (or None: same context), ``scope`` is
      entered (below ``F`` when ``nested``), ``fn(F, C, frame)`` fills it, then ``block``.
    * K_ASSIGN: ``fn(F, C, rt)``.

    A text slot whose value could form ``<root>`` with the statics around it has a
    ``seam``: ``(text before, text after, whether references are decoded there)``.
    """

    __slots__ = (
        "alt",
        "bind",
        "block",
        "blocks",
        "ctx_fn",
        "else_block",
        "else_scope",
        "extended",
        "fn",
        "gate",
        "hops",
        "id_slot",
        "index",
        "key_mode",
        "key_parts",
        "kind",
        "lineno",
        "loop",
        "loop_index",
        "macro",
        "nested",
        "scope",
        "seam",
        "target_index",
        "template",
        "test",
        "test_bind",
        "test_scope",
        "tests",
    )

    def __init__(self, kind, index, template, lineno):
        self.kind = kind
        self.index = index
        self.template = template
        self.lineno = lineno
        self.gate = None
        self.fn = None
        self.tests = ()
        self.blocks = ()
        self.block = None
        self.scope = None
        self.else_block = None
        self.else_scope = None
        self.test = None
        self.test_scope = None
        self.bind = None
        self.target_index = -1
        self.loop_index = -1
        self.extended = False
        self.key_mode = KEY_HASH
        self.key_parts = ()
        self.id_slot = -1
        self.loop = None
        self.ctx_fn = None
        self.macro = None
        self.alt = None
        self.nested = True
        self.hops = 0
        self.test_bind = None
        self.seam = None


class Program:
    """A compiled template: its root block and frame layout."""

    __slots__ = ("access", "environment", "max_depth", "name", "root", "root_scope")

    def __init__(self, name, environment, access, root, root_scope, max_depth):
        self.name = name
        self.environment = environment
        self.access = access
        self.root = root
        self.root_scope = root_scope
        self.max_depth = max_depth


# --------------------------------------------------------------------------------------
# Runtime objects


class Frame:
    """Values of one Jinja scope (``v``) and the enclosing frame (``p``)."""

    __slots__ = ("p", "v")


_DICT_ATTRIBUTES = frozenset(dir(dict))


class Access:
    """Attribute and item lookup with the semantics of a plain ``jinja2.Environment``
    (``getattr`` prefers the attribute, ``getitem`` the item, a miss is undefined),
    with a fast path for plain dicts. Generated expressions and gates both use it."""

    __slots__ = ("undefined",)

    def __init__(self, environment):
        self.undefined = environment.undefined

    def getattr(self, obj, attribute):
        if type(obj) is dict and attribute not in _DICT_ATTRIBUTES:
            v = obj.get(attribute, missing)
            if v is not missing:
                return v
            return self.undefined(obj=obj, name=attribute)
        try:
            return getattr(obj, attribute)
        except AttributeError:
            pass
        try:
            return obj[attribute]
        except (TypeError, LookupError, AttributeError):
            return self.undefined(obj=obj, name=attribute)

    def getitem(self, obj, argument):
        try:
            return obj[argument]
        except (AttributeError, TypeError, LookupError):
            if isinstance(argument, str):
                try:
                    return getattr(obj, argument)
                except AttributeError:
                    pass
            return self.undefined(obj=obj, name=argument)


class Run:
    """State of one render call."""

    __slots__ = ("access", "depth", "environment", "max_depth", "undefined", "wire")

    def __init__(self, program, wire):
        self.environment = program.environment
        self.access = program.access
        self.undefined = program.environment.undefined
        self.max_depth = program.max_depth
        self.wire = wire
        self.depth = 0


_FIELDS: dict = {}


def _fields_of(tp):
    """Field names of a msgspec Struct or dataclass type, or None for mappings."""
    try:
        return _FIELDS[tp]
    except KeyError:
        pass
    names = getattr(tp, "__struct_fields__", None)
    if names is None:
        dc = getattr(tp, "__dataclass_fields__", None)
        names = tuple(dc) if dc is not None else None
    fields = frozenset(names) if names is not None else None
    _FIELDS[tp] = fields
    return fields


class Ctx:
    """A template context, as Jinja's ``Context`` resolves names: the template's own
    top-level assignments (``vars``), then the locals an include or a scoped block was
    given, then the outer context, then the data, then the environment's globals."""

    __slots__ = ("data", "fields", "globals", "jinja", "locals", "name", "outer", "rt", "vars")

    def __init__(self, rt, name, data, outer, local_vars):
        self.rt = rt
        self.name = name
        self.vars = {}
        self.locals = local_vars
        self.outer = outer
        self.data = data
        self.fields = _fields_of(type(data)) if data is not None else None
        self.globals = rt.environment.globals
        self.jinja = None

    def resolve(self, name):
        v = self.vars.get(name, missing)
        if v is not missing:
            return v
        return self.resolve_parent(name)

    def resolve_parent(self, name):
        """Resolve without this context's own assignments (Jinja's ``Context.parent``)."""
        if self.locals is not None:
            v = self.locals.get(name, missing)
            if v is not missing:
                return v
        if self.outer is not None:
            return self.outer.resolve(name)
        data = self.data
        if data is not None:
            fields = self.fields
            if fields is None:
                if name in data:
                    return data[name]
            elif name in fields:
                return getattr(data, name)
        return self.globals.get(name, missing)

    def parent_names(self):
        names = set(self.globals)
        if self.data is not None:
            names.update(self.data if self.fields is None else self.fields)
        if self.outer is not None:
            names.update(self.outer.parent_names())
            names.update(self.outer.vars)
        if self.locals is not None:
            names.update(self.locals)
        return names

    def jinja_context(self):
        """The Jinja ``Context`` expressions need for ``context.call`` and the filters
        that take a context; made on first use."""
        if self.jinja is None:
            ctx = Context(self.rt.environment, _ParentView(self), self.name, {})
            ctx.vars = self.vars
            self.jinja = ctx
        return self.jinja


class _ParentView:
    """Read-only mapping view of a context's parent, as Jinja's ``Context`` expects."""

    __slots__ = ("ctx",)

    def __init__(self, ctx):
        self.ctx = ctx

    def __contains__(self, name):
        return self.ctx.resolve_parent(name) is not missing

    def __getitem__(self, name):
        v = self.ctx.resolve_parent(name)
        if v is missing:
            raise KeyError(name)
        return v

    def __iter__(self):
        return iter(self.ctx.parent_names())

    def __len__(self):
        return len(self.ctx.parent_names())

    def keys(self):
        return self.ctx.parent_names()

    def items(self):
        return [(k, self[k]) for k in self.ctx.parent_names()]


def enter(scope, parent, C):
    """Create the frame of ``scope`` below ``parent`` and run its load instructions."""
    F = Frame()
    F.p = parent
    values = [missing] * scope.size
    for load in scope.loads:
        if load[1] == LOAD_RESOLVE:
            values[load[0]] = C.resolve(load[2])
        else:
            g = parent
            hops = load[2]
            while hops > 1:
                g = g.p
                hops -= 1
            values[load[0]] = g.v[load[3]]
    F.v = values
    return F


# --------------------------------------------------------------------------------------
# Gates: dependency snapshots


def read_path(path, F, C, access):
    """The value at ``path`` (lookups on an undefined value raise, as in Jinja)."""
    hops = path.hops
    if hops < 0:
        v = C.resolve(path.name)
    else:
        while hops > 0:
            F = F.p
            hops -= 1
        v = F.v[path.index]
    keys = path.keys
    n = len(keys)
    if v is missing:
        return NOT_SCALAR if n else missing
    items = path.items
    for j in range(n):
        if items[j]:
            v = access.getitem(v, keys[j])
        else:
            v = access.getattr(v, keys[j])
    return v


def scalar(v):
    """The value to remember for a dependency, or NOT_SCALAR when the value could change
    without the path reading differently (a container, an object)."""
    tp = type(v)
    if tp is str or tp is int or tp is bool or tp is float or v is None or tp is Markup:
        return v
    if v is missing:
        return v
    if isinstance(v, Undefined):
        return tp
    return NOT_SCALAR


def snapshot(gate, F, C, access):
    """Read every path of ``gate``; None if any value cannot be compared later."""
    paths = gate.paths
    n = len(paths)
    values = [None] * n
    for i in range(n):
        try:
            v = scalar(read_path(paths[i], F, C, access))
        except Exception:
            return None
        if v is NOT_SCALAR:
            return None
        values[i] = v
    return tuple(values)  # a tuple of atoms, which the garbage collector stops tracking (a list it walks)


def unchanged(gate, F, C, access, old):
    """Whether every path of ``gate`` reads the values of snapshot ``old`` again (the
    common case, checked without building a new snapshot)."""
    if old is None:
        return False
    paths = gate.paths
    for i in range(len(paths)):
        try:
            v = read_path(paths[i], F, C, access)
        except Exception:
            return False
        if not same_value(v, old[i]):
            return False
    return True


def same_snapshot(a, b):
    """Whether two snapshots hold the same values."""
    if a is None or b is None:
        return False
    n = len(a)
    if n != len(b):
        return False
    for i in range(n):
        if not same_value(a[i], b[i]):
            return False
    return True


def same_value(x, y):
    """Whether ``x`` (a value read now) equals ``y`` (a remembered scalar), type for type:
    ``1`` is not ``True``, ``0.0`` is not ``-0.0``, an undefined is remembered as its type."""
    if x is y:
        return True
    tp = type(x)
    if tp is not type(y):
        return isinstance(x, Undefined) and tp is y
    if tp is str or tp is int or tp is bool or tp is Markup:
        return x == y
    if tp is float:
        return x == y and (x != 0.0 or math.copysign(1.0, x) == math.copysign(1.0, y))
    return False


# --------------------------------------------------------------------------------------
# Values


def guard_value(s):
    """Spell a slot value so the client does not delete ``<root>`` or ``</root>`` in it."""
    if "root>" in s:
        s = guard_static(s)
    return s


def guard_static(s):
    """Spell statics so the client does not delete ``<root>`` or ``</root>`` tags."""
    if "root>" in s:
        s = s.replace("<root>", "<root >").replace("</root>", "</root >")
    return s


def escape_text(v):
    """``str(markupsafe.escape(v))``, without making a ``Markup`` object: how output
    expressions are escaped (autoescaping is always on)."""
    if type(v) is str:
        return _escape_inner(v)
    if hasattr(v, "__html__"):
        return str(v.__html__())
    return _escape_inner(str(v))


def respell(seam, s):
    """Respell ``s``, a value standing between the static texts ``seam[0]`` and
    ``seam[1]``, so that no ``<root>`` or ``</root>`` (which the client deletes) forms
    across them: in markup the tag-name letters the value contributes are written upper
    case (or a ``>`` it contributes gets a space before it), where character references
    are decoded (``seam[2]``) its first character in the tag is written as one. A value
    that contributes only ``<`` or ``/`` to markup, or nothing, is left as it is."""
    left = seam[0]
    whole = left + s + seam[1]
    if "root>" not in whole:
        return s
    start = len(left)
    end = start + len(s)
    chars = list(s)
    for tag in ROOT_TAGS:
        at = whole.find(tag)
        while at >= 0:
            lo = max(at, start)
            hi = min(at + len(tag), end)
            if lo < hi:
                if seam[2]:
                    chars[lo - start] = f"&#{ord(whole[lo])};"
                else:
                    letters = False
                    for j in range(lo, hi):
                        if whole[j] in "rot":
                            chars[j - start] = whole[j].upper()
                            letters = True
                    if not letters and whole[hi - 1] == ">":
                        chars[hi - 1 - start] = " >"
            at = whole.find(tag, at + len(tag))
    return "".join(chars)


def as_text(rt, op, v):
    """An evaluated output value of ``op`` as the exact ``str`` stored (and sent)."""
    s = str(v) if type(v) is not str else v
    if rt.wire:
        s = guard_value(s)
        if op.seam is not None:
            s = respell(op.seam, s)
    return s


def wire_text(s):
    """A text slot value as sent: the client blanks a string that starts with ``{{`` and
    ends with ``}}``, but shows a node's statics as they are, so such a value is sent as
    a node of one static."""
    if s.startswith("{{") and s.endswith("}}"):
        return {STATICS: [s]}
    return s


def fail(op, exc):
    """A TemplateError for an exception raised while evaluating ``op``."""
    if isinstance(exc, JinjaTemplateError):
        detail = exc.message or type(exc).__name__
    else:
        detail = f"{type(exc).__name__}: {exc}"
    return TemplateError(detail, template=op.template, lineno=op.lineno)


def descend(rt, op):
    rt.depth += 1
    if rt.depth > rt.max_depth:
        raise TemplateError(
            f"recursion deeper than {rt.max_depth} levels (raise max_depth if this is intended)",
            template=op.template,
            lineno=op.lineno,
        )


# --------------------------------------------------------------------------------------
# Node states: what a client holds


class NodeState:
    """A rendered block instance: one value per slot, the gate snapshots that tell when a
    slot must be evaluated again, and for loop items their key, position and (in loops
    keyed by content) the digest of their content."""

    __slots__ = ("block", "digest", "gsnap", "key", "pos", "snaps", "vals")

    def __init__(self, block):
        self.block = block
        self.vals = [None] * block.nslots
        self.snaps = [None] * block.nslots if block.slot_gates else None
        self.key = None
        self.gsnap = None
        self.pos = 0
        self.digest = None


class RangeState:
    """A rendered loop: item keys in order, items by key, and the ``else`` node the
    client holds (kept while the loop has items, to diff against when it empties).
    ``suffixed`` is set once a key was made unique with a ``#n`` suffix (a duplicate
    data-key)."""

    __slots__ = ("else_state", "items", "keys", "suffixed")

    def __init__(self):
        self.keys = []
        self.items = {}
        self.else_state = None
        self.suffixed = False


def build_block(rt, block, F, C):
    """Evaluate every op of ``block`` into a new state."""
    st = NodeState(block)
    vals = st.vals
    snaps = st.snaps
    access = rt.access
    for op in block.ops:
        kind = op.kind
        try:
            if kind == K_ASSIGN:
                op.fn(F, C, rt)
                continue
            if snaps is not None and op.gate is not None:
                snaps[op.index] = snapshot(op.gate, F, C, access)
            vals[op.index] = build_slot(rt, op, F, C)
        except TemplateError:
            raise
        except Exception as exc:
            raise fail(op, exc) from exc
    return st


def update_block(rt, block, F, C, st):
    """Evaluate ``block`` against the state the client holds; update the state in place
    and return the changed slots as a partial node, or None when nothing changed."""
    out = None
    vals = st.vals
    snaps = st.snaps
    access = rt.access
    for op in block.ops:
        kind = op.kind
        try:
            if kind == K_ASSIGN:
                op.fn(F, C, rt)
                continue
            i = op.index
            if snaps is not None and op.gate is not None:
                if unchanged(op.gate, F, C, access, snaps[i]):
                    continue
                snaps[i] = snapshot(op.gate, F, C, access)
            if kind == K_OUTPUT or kind == K_TEXT:
                v = as_text(rt, op, op.fn(F, C))
                if v == vals[i]:
                    continue
                vals[i] = v
                change = wire_text(v)
            elif kind == K_COND:
                change = update_branch(rt, op, F, C, vals, i, choose_branch(op, F, C))
            elif kind == K_LOOP:
                change = update_range(rt, op, F, C, vals[i], op.fn(F, C), 0, False)
            elif kind == K_RECURSE:
                change = update_recursion(rt, op, F, C, vals[i], False)
            elif kind == K_CALL:
                change = update_call(rt, op, F, C, vals, i)
            else:
                Cs = C if op.ctx_fn is None else op.ctx_fn(F, C)
                Fs = enter_scope(op, F, C, Cs)
                descend(rt, op)  # an include can include itself
                try:
                    change = update_block(rt, op.block, Fs, Cs, vals[i])
                finally:
                    rt.depth -= 1
                if change is None:
                    change = NOCHANGE
        except TemplateError:
            raise
        except Exception as exc:
            raise fail(op, exc) from exc
        if change is not NOCHANGE:
            if out is None:
                out = {}
            out[slot_key(i)] = change
    return out


def build_slot(rt, op, F, C):
    kind = op.kind
    if kind == K_OUTPUT or kind == K_TEXT:
        return as_text(rt, op, op.fn(F, C))
    if kind == K_COND:
        b = choose_branch(op, F, C)
        if b < 0:
            return None
        return build_block(rt, op.blocks[b], F, C)
    if kind == K_LOOP:
        rs = RangeState()
        update_range(rt, op, F, C, rs, op.fn(F, C), 0, True)
        return rs
    if kind == K_RECURSE:
        rs = RangeState()
        update_recursion(rt, op, F, C, rs, True)
        return rs
    if kind == K_CALL:
        vals = [None]
        update_call(rt, op, F, C, vals, 0)
        return vals[0]
    Cs = C if op.ctx_fn is None else op.ctx_fn(F, C)
    Fs = enter_scope(op, F, C, Cs)
    descend(rt, op)
    try:
        return build_block(rt, op.block, Fs, Cs)
    finally:
        rt.depth -= 1


def enter_scope(op, F, C, Cs):
    """The frame of a K_SCOPE op: below ``F`` for ``with``, a new root for an included
    template or a block (which see the data through ``Cs``)."""
    Fs = enter(op.scope, F if op.nested else None, Cs)
    if op.fn is not None:
        op.fn(F, C, Fs)
    return Fs


def choose_branch(op, F, C):
    tests = op.tests
    for b in range(len(tests)):
        if tests[b](F, C):
            return b
    if len(op.blocks) > len(tests):
        return len(tests)
    return -1


def update_branch(rt, op, F, C, vals, i, b):
    old = vals[i]
    if b < 0:
        if old is None:
            return NOCHANGE
        vals[i] = None
        return ""
    block = op.blocks[b]
    if old is not None and old.block is block:
        change = update_block(rt, block, F, C, old)
        return NOCHANGE if change is None else change
    st = build_block(rt, block, F, C)
    vals[i] = st
    return replace_node(old, st)


def replace_node(old, st):
    """The change from the client's node ``old`` (a state, or None) to ``st``, a state of
    another block: without statics when the client already holds equal ones."""
    if old is not None and mergeable(old, st):
        change = diff_states(old, st)
        return NOCHANGE if change is None else change
    return node_wire(st)


def mergeable(old, new):
    """Whether the client's node ``old`` takes ``new`` (of another block) as a partial
    update: equal statics, and no range in either whose items the client could merge."""
    if old.block.wire_statics != new.block.wire_statics:
        return False
    return (not old.block.has_range or plain(old)) and (not new.block.has_range or plain(new))


def plain(st):
    """Whether every slot of a state holds text (no node or range of its own)."""
    for v in st.vals:
        if v is not None and type(v) is not str:
            return False
    return True


# --------------------------------------------------------------------------------------
# Macro calls


class Bound:
    """A macro call whose arguments are bound but whose body is not rendered yet."""

    __slots__ = ("arguments", "macro")

    def __init__(self, macro, arguments):
        self.macro = macro
        self.arguments = arguments


class LiveMacro(Macro):
    """A macro (or ``{% call %}`` body) defined during a render. Called from an
    expression it renders to markup like a Jinja macro; at a call slot the engine binds
    its arguments and renders its body as a tree node instead."""

    def __init__(self, rt, spec, frame, C):
        Macro.__init__(
            self,
            rt.environment,
            _unused_macro_func,
            spec.name,
            spec.arguments,
            spec.catch_kwargs,
            spec.catch_varargs,
            spec.caller,
            True,
        )
        self.rt = rt
        self.spec = spec
        self.frame = frame
        self.ctx = C
        self.binding = False

    def bind(self, *args, **kwargs):
        self.binding = True
        try:
            return Macro.__call__(self, *args, **kwargs)
        finally:
            self.binding = False

    def _invoke(self, arguments, autoescape):
        if self.binding:
            self.binding = False
            return Bound(self, arguments)
        rt = self.rt
        saved = rt.wire
        rt.wire = False
        try:
            F = enter_macro(self, arguments)
            descend(rt, self.spec)
            try:
                st = build_block(rt, self.spec.block, F, self.ctx)
            finally:
                rt.depth -= 1
        finally:
            rt.wire = saved
        return Markup(node_html(st))


def _unused_macro_func(*args):  # pragma: no cover - LiveMacro overrides _invoke
    raise AssertionError("LiveMacro renders through _invoke")


class MacroSpec:
    """Compile-time description of a macro or ``{% call %}`` body."""

    __slots__ = (
        "arg_indexes",
        "arguments",
        "block",
        "caller",
        "catch_kwargs",
        "catch_varargs",
        "defaults",
        "lineno",
        "name",
        "scope",
        "template",
    )


def define_macro(rt, spec, F, C):
    return LiveMacro(rt, spec, F, C)


def enter_macro(macro, arguments):
    spec = macro.spec
    F = enter(spec.scope, macro.frame, macro.ctx)
    values = F.v
    indexes = spec.arg_indexes
    for i in range(len(indexes)):
        values[indexes[i]] = arguments[i]
    if spec.defaults is not None:
        spec.defaults(F, macro.ctx)
    return F


def bind_macro(callee, *args, **kwargs):
    """Generated code for a call slot calls this: bind a LiveMacro, call anything else."""
    if type(callee) is LiveMacro:
        return callee.bind(*args, **kwargs)
    raise _NotAMacro()


class _NotAMacro(Exception):
    pass


def update_call(rt, op, F, C, vals, i):
    caller = None
    if op.macro is not None:
        caller = LiveMacro(rt, op.macro, F, C)
    try:
        bound = op.fn(F, C, caller)
    except _NotAMacro:
        text = as_text(rt, op, op.alt(F, C, caller))
        if type(vals[i]) is str and vals[i] == text:
            return NOCHANGE
        vals[i] = text
        return wire_text(text)
    macro = bound.macro
    Fm = enter_macro(macro, bound.arguments)
    block = macro.spec.block
    old = vals[i]
    descend(rt, op)
    try:
        if type(old) is NodeState and old.block is block:
            change = update_block(rt, block, Fm, macro.ctx, old)
            return NOCHANGE if change is None else change
        st = build_block(rt, block, Fm, macro.ctx)
    finally:
        rt.depth -= 1
    vals[i] = st
    return replace_node(old if type(old) is NodeState else None, st)


# --------------------------------------------------------------------------------------
# Loops


class _Recurse:
    """``loop`` of a recursive for-loop, called from an expression: renders markup."""

    __slots__ = ("C", "F", "op", "rt")

    def __init__(self, rt, op, F, C):
        self.rt = rt
        self.op = op
        self.F = F
        self.C = C

    def __call__(self, iterable, loop_render_func, depth=0):
        rt = self.rt
        saved = rt.wire
        rt.wire = False
        descend(rt, self.op)
        try:
            rs = RangeState()
            update_range(rt, self.op, self.F, self.C, rs, iterable, depth, True)
        finally:
            rt.depth -= 1
            rt.wire = saved
        return Markup(range_html(rs))


def update_recursion(rt, op, F, C, rs, first):
    """``{{ loop(children) }}``: render the enclosing recursive loop one level deeper."""
    Fi = F
    for _ in range(op.hops):
        Fi = Fi.p
    lc = Fi.v[op.loop_index]
    descend(rt, op)
    try:
        return update_range(rt, op.loop, Fi.p, C, rs, op.fn(F, C), lc.depth, first)
    finally:
        rt.depth -= 1


def loop_iterable(rt, op, F, C, iterable):
    if op.test is None:
        return iterable
    kept = []
    for value in iterable:
        Ft = enter(op.test_scope, F, C)
        packed = op.test_bind(Ft, value)
        if op.test(Ft, C):
            kept.append(packed)
    return kept


def bind_target(op, F, value):
    if op.target_index >= 0:
        F.v[op.target_index] = value
    else:
        op.bind(F, value)


def item_frame(op, F, C, value, lc):
    Fi = enter(op.scope, F, C)
    bind_target(op, Fi, value)
    if lc is not None:
        Fi.v[op.loop_index] = lc
    return Fi


def key_of(op, vals):
    """The item key from the values of its data-key attribute's slots. The client takes
    an empty ``_k`` for no key at all, so an empty attribute becomes ``#``."""
    parts = []
    for part in op.key_parts:
        if type(part) is str:
            parts.append(part)
        else:
            parts.append(vals[part])
    key = unescape("".join(parts))
    return key if key else "#"


def key_by_slots(rt, op, Fi, C):
    """The item key without evaluating the whole item: only the key's slots (and, for
    KEY_PREFIX, the statements before them)."""
    body = op.block
    need = op.key_parts
    vals = [None] * body.nslots
    remaining = 0
    for part in need:
        if type(part) is not str:
            remaining += 1
    for sub in body.ops:
        if remaining == 0:
            break
        if sub.kind == K_ASSIGN:
            sub.fn(Fi, C, rt)
        elif sub.index in need:
            vals[sub.index] = str(sub.fn(Fi, C))
            remaining -= 1
    return key_of(op, vals)


def unescape(s):
    if "&" in s:
        return html.unescape(s)
    return s


def hash_key(st):
    """Key of an item whose root element has no usable data-key: a hash of its HTML."""
    digest = blake2b(node_html(st).encode("utf-8", "surrogatepass"), digest_size=8)
    return digest.hexdigest()


def unique_key(key, taken, old):
    """``key``, or ``key#n``, unused by the new items (``taken``) and, when ``old`` is
    given, by every item the client holds."""
    if key not in taken and (old is None or key not in old):
        return key
    n = 1
    while True:
        candidate = f"{key}#{n}"
        if candidate not in taken and (old is None or candidate not in old):
            return candidate
        n += 1


def match_key(raw, seen, old_items, dups):
    """The key of a new item whose data-key reads ``raw``: the client's item under that
    key or, for a duplicate, under a ``#n`` key the client holds for it (``dups``: such
    keys by the key they were made from), unless a new item claimed it already; else a
    key unused by both. Duplicates keep the numbers the client has for them."""
    if raw not in seen and raw in old_items:
        return raw
    if dups is not None:
        group = dups.get(raw)
        if group is not None:
            for key in group:
                if key not in seen:
                    return key
    return unique_key(raw, seen, old_items)


def suffixed_keys(keys):
    """Keys with a ``#n`` suffix, by the key before the suffix, in order."""
    dups = {}
    for key in keys:
        cut = key.rfind("#")
        if cut >= 0 and key[cut + 1 :].isdigit():
            base = key[:cut]
            group = dups.get(base)
            if group is None:
                dups[base] = [key]
            else:
                group.append(key)
    return dups


def by_digest(items):
    """Items (keyed by content) grouped by the digest of their content."""
    groups = {}
    for st in items.values():
        group = groups.get(st.digest)
        if group is None:
            groups[st.digest] = [st]
        else:
            group.append(st)
    return groups


def claim(groups, digest, seen, place):
    """An item with this content that no new item has claimed yet, or None; of several
    (equal content), the one the client holds nearest to ``place``."""
    group = groups.get(digest)
    if group is None:
        return None
    best = None
    for st in group:
        if st.key not in seen and (best is None or abs(st.pos - place) < abs(best.pos - place)):
            best = st
    return best


class RangeDiff:
    """The working state of one range diff, from the range the client holds to a new
    item list: ``keys`` in the new order, ``seen`` the new items by key (a kept item's
    ``pos`` is still where the client holds it), ``changes`` the updates of kept items
    (by the key the client holds), ``created`` the keys of new items, ``pending`` the
    ``(index in keys, state)`` of items matching no key the client holds, ``rekeyed``
    old key -> new key of items re-keyed in place, ``ordered`` whether the kept items
    kept their order, ``first`` for a first render (nothing to send), ``hashed`` for
    items keyed by content, ``else_change`` the change of the ``else`` node."""

    __slots__ = (
        "changes",
        "created",
        "else_change",
        "first",
        "hashed",
        "keys",
        "ordered",
        "pending",
        "rekeyed",
        "seen",
    )

    def __init__(self, first):
        self.keys = []
        self.seen = None
        self.changes = []
        self.created = set()
        self.pending = []
        self.rekeyed = {}
        self.ordered = True
        self.first = first
        self.hashed = False
        self.else_change = None


def update_range(rt, op, F, C, rs, iterable, depth0, first):
    """Render loop ``op`` over ``iterable`` against ``rs``, the range the client holds
    (a new, empty one when ``first``). Updates ``rs`` and returns the wire change: a
    list of range operations, a partial range object, or NOCHANGE."""
    access = rt.access
    body = op.block
    gate = body.gate
    d = RangeDiff(first)
    d.hashed = hashed = op.key_mode == KEY_HASH
    old_keys = rs.keys
    old_items = rs.items
    n_old = len(old_keys)
    new_keys = d.keys
    seen = None  # new items by key, made once the new list departs from the old one
    changes = d.changes
    created = d.created
    pending = d.pending
    digests = None  # old hash-keyed items by content digest, made when first needed
    dups = None  # the client's duplicate keys by the key they were made from, made when needed
    suffixed = rs.suffixed
    cursor = 0
    ordered = True
    last_pos = -1
    items = loop_iterable(rt, op, F, C, iterable)
    extended = op.extended
    if extended:
        items = LoopContext(items, rt.undefined, _Recurse(rt, op, F, C), depth0)
    # gates are read from one scratch frame: the loads on entry are the same for every
    # item; an item that needs evaluating gets a frame of its own
    scratch = enter(op.scope, F, C) if gate is not None else None
    for entry in items:
        if extended:
            value = entry[0]
            lc = entry[1]
        else:
            value = entry
            lc = None
        if scratch is not None:
            bind_target(op, scratch, value)
            if extended:
                scratch.v[op.loop_index] = lc
            if cursor < n_old:
                # same inputs as the old item in this place: same item, unchanged
                cand = old_items[old_keys[cursor]]
                if unchanged(gate, scratch, C, access, cand.gsnap) and (seen is None or cand.key not in seen):
                    new_keys.append(cand.key)
                    if seen is not None:
                        seen[cand.key] = cand
                    cursor += 1
                    last_pos = cand.pos
                    continue
            snap = snapshot(gate, scratch, C, access)
        else:
            snap = None
        Fi = item_frame(op, F, C, value, lc)
        if seen is None and cursor < n_old and not hashed:
            # an item edited in place keeps its key and position: no reordering to find
            cand = old_items[old_keys[cursor]]
            if key_by_slots(rt, op, Fi, C) == cand.key:
                change = update_block(rt, body, Fi, C, cand)
                if change is not None:
                    changes.append((cand.key, change))
                cand.gsnap = snap
                new_keys.append(cand.key)
                cursor += 1
                last_pos = cand.pos
                continue
        if seen is None:
            seen = {}
            for k in new_keys:
                seen[k] = old_items[k]
        old = None
        if hashed:
            st = build_block(rt, body, Fi, C)
            st.gsnap = snap
            st.digest = hash_key(st)
            if digests is None:
                digests = by_digest(old_items)
            old = claim(digests, st.digest, seen, len(new_keys))
            if old is None:
                # new content: a new item, or an old one edited (paired below)
                pending.append((len(new_keys), st))
                new_keys.append(None)
                continue
            old.gsnap = snap
            key = old.key
            st = old
        elif n_old == 0:
            st = build_block(rt, body, Fi, C)
            raw = key_of(op, st.vals)
            st.key = key = unique_key(raw, seen, None)
            st.gsnap = snap
            created.add(key)
            if key != raw:
                suffixed = True
        else:
            raw = key_by_slots(rt, op, Fi, C)
            if dups is None and rs.suffixed and (raw in seen or raw not in old_items):
                dups = suffixed_keys(old_keys)
            key = match_key(raw, seen, old_items, dups)
            if key != raw:
                suffixed = True
            old = old_items.get(key)
            if old is None:
                # a new key: a new item, or an old one whose key changed (paired below)
                st = build_block(rt, body, Fi, C)
                st.key = key
                st.gsnap = snap
                pending.append((len(new_keys), st))
                new_keys.append(None)
                seen[key] = None
                continue
            if not same_snapshot(snap, old.gsnap):
                change = update_block(rt, body, Fi, C, old)
                if change is not None:
                    changes.append((key, change))
                old.gsnap = snap
            st = old
        if old is not None:
            if old.pos < last_pos:
                ordered = False
            last_pos = old.pos
            cursor = old.pos + 1
        seen[key] = st
        new_keys.append(key)
    if seen is None:
        if len(new_keys) == n_old and new_keys and not first:
            # every item kept its place
            if not changes:
                return NOCHANGE
            return [[OP_UPDATE, key, change] for key, change in changes]
        # only items past the new end were removed
        seen = {}
        for k in new_keys:
            seen[k] = old_items[k]
    rs.suffixed = suffixed and len(new_keys) > 0
    d.seen = seen
    d.ordered = ordered
    if pending:
        place_pending(rs, d)
    if not new_keys:
        d.else_change = attach_else(rt, op, F, C, rs)
    return settle(rs, rs, d)


def place_pending(rs, d):
    """Key the items that match no item the client holds. One standing where an old item
    that is gone stood is that item, edited: the client gets the difference instead of
    a new item (statics included). In a loop keyed by content it keeps the old key (keys
    stay stable); in a loop keyed by data-key the update carries the new ``_k``, which
    re-keys the item. Others are new items."""
    old_keys = rs.keys
    old_items = rs.items
    n_old = len(old_keys)
    new_keys = d.keys
    seen = d.seen
    created = d.created
    pending = d.pending
    hashed = d.hashed
    p = 0
    after = -1  # old position of the last kept item before the current one
    for j in range(len(new_keys)):
        key = new_keys[j]
        if key is not None:
            if key not in created:
                old = old_items[key]
                after = old.pos
            continue
        st = pending[p][1]
        p += 1
        if after + 1 < n_old and old_keys[after + 1] not in seen:
            old = old_items[old_keys[after + 1]]
            change = diff_states(old, st)
            if hashed:
                key = old.key
            else:
                key = st.key
                del seen[key]
                if change is None:
                    change = {}
                change[ITEM_KEY] = key
                d.rekeyed[old.key] = key
            if change is not None:
                d.changes.append((old.key, change))
            st.pos = old.pos  # where the client has it, for planning moves
            after += 1
        else:
            if hashed:
                key = unique_key(st.digest, seen, old_items)
            else:
                key = st.key
                del seen[key]
            created.add(key)
        st.key = key
        seen[key] = st
        new_keys[j] = key


def settle(client, target, d):
    """The wire change from the range the client holds to the new item list, then make
    the new list ``target``'s (its items' positions included)."""
    change = range_change(client, d)
    new_keys = d.keys
    seen = d.seen
    for i in range(len(new_keys)):
        seen[new_keys[i]].pos = i
    target.keys = new_keys
    target.items = seen
    return change


def range_change(rs, d):
    """The wire change taking the client's range ``rs`` to the new item list: range
    operations, a partial range object, or NOCHANGE."""
    old_keys = rs.keys
    new_keys = d.keys
    seen = d.seen
    created = d.created
    rekeyed = d.rekeyed
    else_change = d.else_change
    if d.first:
        return NOCHANGE
    if not new_keys:
        out = {}
        if old_keys:
            out[ITEMS] = []
        if else_change is not None:
            out[ELSE] = else_change
        return out if out else NOCHANGE
    kept = len(new_keys) - len(created)
    if kept == 0 and old_keys:
        # nothing survived: send the item list whole
        return {ITEMS: [item_wire(seen[k]) for k in new_keys]}

    ops = []
    for k in old_keys:
        if k not in seen and k not in rekeyed:
            ops.append([OP_REMOVE, k])
    moved = set()
    if not d.ordered:
        moved = plan_moves(d)
        if moved is None:
            # sending the new key order is smaller than moving items one by one
            for key, change in d.changes:
                ops.append([OP_UPDATE, key, change])
            fresh = [item_wire(seen[k]) for k in new_keys if k in created]
            if fresh:
                ops.append([OP_APPEND, fresh])
            ops.append([OP_ORDER, list(new_keys)])
            return ops
        for k in moved:
            ops.append([OP_REMOVE, client_key(k, rekeyed)])
    for key, change in d.changes:
        if rekeyed.get(key, key) not in moved:
            ops.append([OP_UPDATE, key, change])
    if created or moved:
        insert_runs(ops, d, moved, kept > len(moved))
    return ops if ops else NOCHANGE


def diff_states(old, new):
    """The partial node taking ``old`` (what the client holds) to ``new``, a state of the
    same block; None when they render alike. Neither state is changed."""
    out = None
    vals = old.vals
    new_vals = new.vals
    for op in new.block.ops:
        if op.kind == K_ASSIGN:
            continue
        i = op.index
        change = diff_values(op, vals[i], new_vals[i])
        if change is not NOCHANGE:
            if out is None:
                out = {}
            out[slot_key(i)] = change
    return out


def diff_values(op, a, b):
    """The change from slot value ``a`` to ``b`` (None, a slot with nothing, is sent as
    an empty string: the two are the same to the client)."""
    tb = type(b)
    if tb is str:
        if (type(a) is str and a == b) or (a is None and b == ""):
            return NOCHANGE
        return wire_text(b)
    if b is None:
        return NOCHANGE if a is None or a == "" else ""
    if tb is NodeState:
        if type(a) is NodeState and (a.block is b.block or mergeable(a, b)):
            change = diff_states(a, b)
            return NOCHANGE if change is None else change
        return node_wire(b)
    return diff_ranges(a, b)


def diff_ranges(a, b):
    """The wire change taking range state ``a`` (what the client holds) to ``b`` (freshly
    evaluated). Items are matched as a render matches them (by data-key, or by content
    for items keyed by content, then by place); ``b`` is re-keyed in place to the keys the
    client holds afterwards."""
    d = RangeDiff(False)
    new_keys = d.keys
    d.seen = seen = {}
    changes = d.changes
    pending = d.pending
    ordered = True
    last_pos = -1
    hashed = False
    digests = None
    for k in b.keys:
        st = b.items[k]
        if st.digest is not None:
            hashed = True
            if digests is None:
                digests = by_digest(a.items)
            old = claim(digests, st.digest, seen, len(new_keys))
        else:
            old = a.items.get(k)
            if old is not None and old.key in seen:
                old = None
        if old is None:
            pending.append((len(new_keys), st))
            new_keys.append(None)
            if not hashed:
                seen[k] = None
            continue
        change = diff_states(old, st)
        if change is not None:
            changes.append((old.key, change))
        if old.pos < last_pos:
            ordered = False
        last_pos = old.pos
        st.key = old.key
        st.pos = old.pos
        seen[old.key] = st
        new_keys.append(old.key)
    d.ordered = ordered
    d.hashed = hashed
    if pending:
        place_pending(a, d)
    if not b.keys and b.else_state is not None:
        if a.else_state is not None and a.else_state.block is b.else_state.block:
            d.else_change = diff_states(a.else_state, b.else_state)
        else:
            d.else_change = node_wire(b.else_state)
    b.suffixed = a.suffixed or b.suffixed  # b takes the client's keys
    return settle(a, b, d)


def insert_runs(ops, d, moved, anchored):
    """Append ``p``/``i``/``a`` operations placing every created or moved item, given
    that every other item already stands in the right order."""
    new_keys = d.keys
    seen = d.seen
    created = d.created
    n = len(new_keys)
    i = 0
    while i < n:
        k = new_keys[i]
        if k not in created and k not in moved:
            i += 1
            continue
        start = i
        run = []
        while i < n and (new_keys[i] in created or new_keys[i] in moved):
            run.append(item_wire(seen[new_keys[i]]))
            i += 1
        if start == 0:
            ops.append([OP_PREPEND if anchored else OP_APPEND, run])
        elif i == n:
            ops.append([OP_APPEND, run])
        else:
            ops.append([OP_INSERT_AFTER, new_keys[start - 1], run])


def client_key(key, rekeyed):
    """The key the client holds for an item now keyed ``key``."""
    for old, new in rekeyed.items():
        if new == key:
            return old
    return key


def plan_moves(d):
    """For a reordered range, the kept items to move (remove and insert again) so the
    rest keep their relative order, or None when sending the new key order is smaller.
    A kept item's ``pos`` is where the client holds it."""
    new_keys = d.keys
    seen = d.seen
    created = d.created
    positions = []
    keys = []
    for k in new_keys:
        if k not in created:
            positions.append(seen[k].pos)
            keys.append(k)
    stay = longest_increasing(positions)
    moved = set()
    # encoded sizes: ["r","k"] plus ["i","after",[{...,"_k":"k"}]] per moved item,
    # against ["o",["k1","k2",...]] once
    move_cost = 0
    for j in range(len(keys)):
        if j not in stay:
            moved.add(keys[j])
            move_cost += wire_size(seen[keys[j]]) + 3 * len(keys[j]) + 30
    order_cost = 10
    for k in new_keys:
        order_cost += len(k) + 3
    if order_cost <= move_cost:
        return None
    return moved


def longest_increasing(seq):
    """Indexes of one longest strictly increasing subsequence of ``seq``."""
    tails = []  # index into seq of the smallest tail of each length
    prev = [-1] * len(seq)
    for i in range(len(seq)):
        x = seq[i]
        lo = 0
        hi = len(tails)
        while lo < hi:
            mid = (lo + hi) // 2
            if seq[tails[mid]] < x:
                lo = mid + 1
            else:
                hi = mid
        if lo > 0:
            prev[i] = tails[lo - 1]
        if lo == len(tails):
            tails.append(i)
        else:
            tails[lo] = i
    result = set()
    j = tails[len(tails) - 1] if tails else -1
    while j >= 0:
        result.add(j)
        j = prev[j]
    return result


def attach_else(rt, op, F, C, rs):
    """Make the client's ``else`` node current; returns its wire change or None."""
    if op.else_block is None:
        return None
    Fe = enter(op.else_scope, F, C)
    if rs.else_state is None:
        rs.else_state = build_block(rt, op.else_block, Fe, C)
        return node_wire(rs.else_state)
    return update_block(rt, op.else_block, Fe, C, rs.else_state)


# --------------------------------------------------------------------------------------
# Wire form and HTML of states


def node_wire(st):
    """The complete wire node of a state, statics included."""
    block = st.block
    out = {STATICS: list(block.wire_statics)}
    fill_slots(out, block, st.vals)
    if block.marker is not None:
        out[block.marker] = ""
    return out


def item_wire(st):
    """A complete range item: its slots and key, no statics (the range has them)."""
    out = {}
    fill_slots(out, st.block, st.vals)
    out[ITEM_KEY] = st.key
    return out


def fill_slots(out, block, vals):
    for op in block.ops:
        if op.kind == K_ASSIGN:
            continue
        v = vals[op.index]
        tp = type(v)
        if tp is str:
            out[slot_key(op.index)] = wire_text(v)
        elif v is None:
            out[slot_key(op.index)] = ""
        elif tp is RangeState:
            out[slot_key(op.index)] = range_wire(op, v)
        else:
            out[slot_key(op.index)] = node_wire(v)


def range_wire(op, rs):
    loop_op = op.loop if op.kind == K_RECURSE else op
    out = {
        STATICS: list(loop_op.block.wire_statics),
        ITEMS: [item_wire(rs.items[k]) for k in rs.keys],
    }
    if loop_op.id_slot >= 0:
        out[RANGE_META] = {ID_KEY: slot_key(loop_op.id_slot)}
    if not rs.keys and rs.else_state is not None:
        out[ELSE] = node_wire(rs.else_state)
    return out


def wire_size(st):
    """Approximate encoded size of a state's wire item, for choosing range operations."""
    size = 4 + 6 * len(st.vals)
    for v in st.vals:
        tp = type(v)
        if tp is str:
            size += len(v)
        elif tp is NodeState:
            size += wire_size(v)
            for s in v.block.statics:
                size += len(s) + 3
        elif tp is RangeState:
            for k in v.keys:
                size += wire_size(v.items[k])
    return size


def node_html(st):
    statics = st.block.statics
    vals = st.vals
    parts = []
    for i in range(len(vals)):
        parts.append(statics[i])
        v = vals[i]
        tp = type(v)
        if tp is str:
            parts.append(v)
        elif tp is NodeState:
            parts.append(node_html(v))
        elif tp is RangeState:
            parts.append(range_html(v))
    parts.append(statics[len(vals)])
    return "".join(parts)


def range_html(rs):
    if not rs.keys:
        return node_html(rs.else_state) if rs.else_state is not None else ""
    items = rs.items
    return "".join([node_html(items[k]) for k in rs.keys])


# --------------------------------------------------------------------------------------
# Entry points


class View:
    """What one client holds of a template: empty until the first render."""

    __slots__ = ("state",)

    def __init__(self):
        self.state = None


def clone_view(view):
    """A new view holding a copy of ``view``'s state, to render on without changing it."""
    copy = View()
    copy.state = clone_state(view.state)
    return copy


def same_view(a, b):
    """Whether two views hold equal states: any render then gives both the same update
    and leaves them equal."""
    return same_state(a.state, b.state)


def clone_state(st):
    """A copy of a node or loop state (what is shared with it: immutable values and the
    compiled blocks)."""
    tp = type(st)
    if tp is NodeState:
        node = NodeState.__new__(NodeState)
        node.block = st.block
        node.vals = [clone_state(v) for v in st.vals]
        node.snaps = None if st.snaps is None else list(st.snaps)
        node.key = st.key
        node.gsnap = st.gsnap
        node.pos = st.pos
        node.digest = st.digest
        return node
    if tp is RangeState:
        rs = RangeState()
        rs.keys = list(st.keys)
        rs.items = {k: clone_state(v) for k, v in st.items.items()}
        rs.else_state = clone_state(st.else_state)
        rs.suffixed = st.suffixed
        return rs
    return st  # None, or a slot's text


def same_state(a, b):
    """Whether two node or loop states are equal, value for value and type for type."""
    if a is b:
        return True
    tp = type(a)
    if tp is not type(b):
        return False
    if tp is NodeState:
        if a.block is not b.block or a.pos != b.pos or a.key != b.key or a.digest != b.digest:
            return False
        if not _same_snaps(a.gsnap, b.gsnap):
            return False
        if a.snaps is None or b.snaps is None:
            if a.snaps is not b.snaps:
                return False
        else:
            for i in range(len(a.snaps)):
                if not _same_snaps(a.snaps[i], b.snaps[i]):
                    return False
        for i in range(len(a.vals)):
            if not same_state(a.vals[i], b.vals[i]):
                return False
        return True
    if tp is RangeState:
        if a.suffixed != b.suffixed or a.keys != b.keys or len(a.items) != len(b.items):
            return False
        for k in a.keys:
            if not same_state(a.items[k], b.items[k]):
                return False
        return same_state(a.else_state, b.else_state)
    return a == b  # slot texts of one type


def _same_snaps(a, b):
    """Whether two remembered snapshots (None: none could be taken) are equal."""
    if a is None or b is None:
        return a is b
    return same_snapshot(a, b)


def render_text(rt, block, F, C):
    """Render ``block`` to markup text (a macro called from an expression, a filter
    block, a block assignment), whatever mode the surrounding render is in."""
    saved = rt.wire
    rt.wire = False
    try:
        return node_html(build_block(rt, block, F, C))
    finally:
        rt.wire = saved


def render_html(program, data, extra):
    """The complete HTML of ``program`` for ``data``; ``extra`` (a dict or None) holds
    names visible to the template besides the data's fields, taking precedence."""
    rt = Run(program, False)
    C = Ctx(rt, program.name, data, None, extra)
    F = enter(program.root_scope, None, C)
    return node_html(build_block(rt, program.root, F, C))


def render_tree(program, data, view, extra):
    """The tree to send to the client behind ``view``: complete on the first call (or
    after a reset), afterwards only what changed (``{}`` when nothing did)."""
    rt = Run(program, True)
    C = Ctx(rt, program.name, data, None, extra)
    F = enter(program.root_scope, None, C)
    if view.state is None:
        view.state = build_block(rt, program.root, F, C)
        return node_wire(view.state)
    change = update_block(rt, program.root, F, C, view.state)
    return {} if change is None else change
