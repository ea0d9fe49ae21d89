# Static types for the compiled build of livetemplate/_render_py.py (Cython pure-Python
# mode): the build copies that module next to this file as _render_c.py. Classes become
# extension types with C-level fields; internal functions become C functions.

import cython


cdef tuple SLOT_KEYS
cdef tuple ROOT_TAGS
cdef object NOCHANGE
cdef object NOT_SCALAR
cdef object missing
cdef dict _FIELDS
cdef frozenset _DICT_ATTRIBUTES


cdef class Path:
    cdef public Py_ssize_t hops
    cdef public Py_ssize_t index
    cdef public object name
    cdef public tuple keys
    cdef public tuple items


cdef class Gate:
    cdef public tuple paths


cdef class Scope:
    cdef public Py_ssize_t size
    cdef public tuple loads


cdef class Block:
    cdef public Py_ssize_t uid
    cdef public list statics
    cdef public list wire_statics
    cdef public list ops
    cdef public Py_ssize_t nslots
    cdef public object gate
    cdef public bint has_range
    cdef public bint slot_gates
    cdef public object marker


cdef class Op:
    cdef public int kind
    cdef public Py_ssize_t index
    cdef public object template
    cdef public object lineno
    cdef public object gate
    cdef public object fn
    cdef public tuple tests
    cdef public tuple blocks
    cdef public object block
    cdef public object scope
    cdef public object else_block
    cdef public object else_scope
    cdef public object test
    cdef public object test_scope
    cdef public object bind
    cdef public Py_ssize_t target_index
    cdef public Py_ssize_t loop_index
    cdef public bint extended
    cdef public int key_mode
    cdef public tuple key_parts
    cdef public Py_ssize_t id_slot
    cdef public object loop
    cdef public object ctx_fn
    cdef public object macro
    cdef public object alt
    cdef public bint nested
    cdef public Py_ssize_t hops
    cdef public object test_bind
    cdef public object seam


cdef class Program:
    cdef public object name
    cdef public object environment
    cdef public Access access
    cdef public Block root
    cdef public Scope root_scope
    cdef public Py_ssize_t max_depth


cdef class Access:
    cdef public object undefined

    cpdef object getattr(self, object obj, str attribute)
    cpdef object getitem(self, object obj, object argument)


cdef class Frame:
    cdef public Frame p
    cdef public list v


cdef class Run:
    cdef public Access access
    cdef public Py_ssize_t depth
    cdef public object environment
    cdef public Py_ssize_t max_depth
    cdef public object undefined
    cdef public bint wire


cdef class Ctx:
    cdef public Run rt
    cdef public object name
    cdef public dict vars
    cdef public object locals
    cdef public Ctx outer
    cdef public object data
    cdef public object fields
    cdef public dict globals
    cdef public object jinja

    cpdef object resolve(self, str name)
    cpdef object resolve_parent(self, str name)


cdef class NodeState:
    cdef public object digest
    cdef public Block block
    cdef public list vals
    cdef public object snaps
    cdef public object key
    cdef public object gsnap
    cdef public Py_ssize_t pos


cdef class RangeState:
    cdef public list keys
    cdef public dict items
    cdef public object else_state
    cdef public bint suffixed


cdef class RangeDiff:
    cdef public list keys
    cdef public dict seen
    cdef public list changes
    cdef public set created
    cdef public list pending
    cdef public dict rekeyed
    cdef public bint ordered
    cdef public bint first
    cdef public bint hashed
    cdef public object else_change


cdef class Bound:
    cdef public object macro
    cdef public object arguments


cdef class MacroSpec:
    cdef public tuple arg_indexes
    cdef public tuple arguments
    cdef public Block block
    cdef public bint caller
    cdef public bint catch_kwargs
    cdef public bint catch_varargs
    cdef public object defaults
    cdef public object lineno
    cdef public object name
    cdef public Scope scope
    cdef public object template


cdef class View:
    cdef public object state


cdef str slot_key(Py_ssize_t index)

cdef object _fields_of(object tp)

@cython.locals(F=Frame, values=list, load=tuple, g=Frame, hops=Py_ssize_t)
cpdef Frame enter(Scope scope, Frame parent, Ctx C)

@cython.locals(hops=Py_ssize_t, keys=tuple, items=tuple, n=Py_ssize_t, j=Py_ssize_t)
cdef object read_path(Path path, Frame F, Ctx C, Access access)

@cython.locals(tp=type)
cpdef object scalar(object v)

@cython.locals(paths=tuple, n=Py_ssize_t, i=Py_ssize_t, values=list)
cdef object snapshot(Gate gate, Frame F, Ctx C, Access access)

@cython.locals(paths=tuple, i=Py_ssize_t)
cdef bint unchanged(Gate gate, Frame F, Ctx C, Access access, object old) except -1

@cython.locals(n=Py_ssize_t, i=Py_ssize_t)
cpdef bint same_snapshot(object a, object b) except -1

@cython.locals(tp=type)
cpdef bint same_value(object x, object y) except -1

cpdef str escape_text(object v)
cpdef str guard_value(str s)
cpdef str guard_static(str s)

@cython.locals(left=str, whole=str, start=Py_ssize_t, end=Py_ssize_t, chars=list, at=Py_ssize_t,
               lo=Py_ssize_t, hi=Py_ssize_t, j=Py_ssize_t, letters=bint)
cdef str respell(tuple seam, str s)

@cython.locals(s=str)
cdef str as_text(Run rt, Op op, object v)

cdef object wire_text(str s)

cdef object fail(Op op, object exc)
cdef object descend(Run rt, object op)

@cython.locals(st=NodeState, vals=list, op=Op, kind=int, access=Access)
cdef NodeState build_block(Run rt, Block block, Frame F, Ctx C)

@cython.locals(vals=list, op=Op, kind=int, i=Py_ssize_t, Fs=Frame, Cs=Ctx, access=Access)
cdef object update_block(Run rt, Block block, Frame F, Ctx C, NodeState st)

@cython.locals(kind=int, b=Py_ssize_t, rs=RangeState, vals=list, Cs=Ctx, Fs=Frame)
cdef object build_slot(Run rt, Op op, Frame F, Ctx C)

@cython.locals(Fs=Frame)
cdef Frame enter_scope(Op op, Frame F, Ctx C, Ctx Cs)

@cython.locals(tests=tuple, b=Py_ssize_t)
cdef Py_ssize_t choose_branch(Op op, Frame F, Ctx C) except? -2

@cython.locals(block=Block, st=NodeState)
cdef object update_branch(Run rt, Op op, Frame F, Ctx C, list vals, Py_ssize_t i, Py_ssize_t b)

cdef object replace_node(NodeState old, NodeState st)
cdef bint mergeable(NodeState old, NodeState new) except -1
cdef bint plain(NodeState st) except -1

cpdef object define_macro(Run rt, MacroSpec spec, Frame F, Ctx C)

@cython.locals(spec=MacroSpec, F=Frame, values=list, indexes=tuple, i=Py_ssize_t)
cdef Frame enter_macro(object macro, object arguments)

@cython.locals(bound=Bound, Fm=Frame, block=Block, st=NodeState)
cdef object update_call(Run rt, Op op, Frame F, Ctx C, list vals, Py_ssize_t i)

@cython.locals(Fi=Frame)
cdef object update_recursion(Run rt, Op op, Frame F, Ctx C, RangeState rs, bint first)

@cython.locals(kept=list, Ft=Frame)
cdef object loop_iterable(Run rt, Op op, Frame F, Ctx C, object iterable)

cdef object bind_target(Op op, Frame F, object value)

@cython.locals(Fi=Frame)
cdef Frame item_frame(Op op, Frame F, Ctx C, object value, object lc)

@cython.locals(parts=list)
cdef str key_of(Op op, list vals)

@cython.locals(body=Block, need=tuple, vals=list, remaining=Py_ssize_t, sub=Op)
cdef str key_by_slots(Run rt, Op op, Frame Fi, Ctx C)

cdef str unescape(str s)
cdef str hash_key(NodeState st)

@cython.locals(n=Py_ssize_t)
cdef str unique_key(str key, dict taken, dict old)

@cython.locals(group=list)
cdef str match_key(str raw, dict seen, dict old_items, dict dups)

@cython.locals(dups=dict, cut=Py_ssize_t, group=list)
cdef dict suffixed_keys(list keys)

@cython.locals(groups=dict, st=NodeState, group=list)
cdef dict by_digest(dict items)

@cython.locals(group=list, st=NodeState, best=NodeState)
cdef object claim(dict groups, object digest, dict seen, Py_ssize_t place)

@cython.locals(
    body=Block, old_keys=list, old_items=dict, n_old=Py_ssize_t, new_keys=list,
    changes=list, created=set, pending=list, cursor=Py_ssize_t, ordered=bint, last_pos=Py_ssize_t,
    Fi=Frame, cand=NodeState, old=NodeState, st=NodeState, key=str, access=Access,
    scratch=Frame, extended=bint, gate=Gate, hashed=bint, digests=dict, dups=dict, suffixed=bint, d=RangeDiff,
)
cdef object update_range(Run rt, Op op, Frame F, Ctx C, RangeState rs, object iterable, Py_ssize_t depth0, bint first)

@cython.locals(old_keys=list, old_items=dict, n_old=Py_ssize_t, new_keys=list, seen=dict, created=set, pending=list,
               hashed=bint, p=Py_ssize_t, after=Py_ssize_t, j=Py_ssize_t, st=NodeState, old=NodeState)
cdef object place_pending(RangeState rs, RangeDiff d)

@cython.locals(old_keys=list, new_keys=list, seen=dict, created=set, rekeyed=dict, kept=Py_ssize_t, ops=list)
cdef object range_change(RangeState rs, RangeDiff d)

@cython.locals(new_keys=list, seen=dict, i=Py_ssize_t)
cdef object settle(RangeState client, RangeState target, RangeDiff d)

cdef object client_key(object key, dict rekeyed)

@cython.locals(vals=list, new_vals=list, op=Op, i=Py_ssize_t)
cdef object diff_states(NodeState old, NodeState new)

cdef object diff_values(Op op, object a, object b)

@cython.locals(new_keys=list, seen=dict, changes=list, pending=list, ordered=bint,
               last_pos=Py_ssize_t, hashed=bint, digests=dict, st=NodeState, old=NodeState, d=RangeDiff)
cdef object diff_ranges(RangeState a, RangeState b)

@cython.locals(new_keys=list, seen=dict, created=set, n=Py_ssize_t, i=Py_ssize_t, start=Py_ssize_t, run=list)
cdef object insert_runs(list ops, RangeDiff d, set moved, bint anchored)

@cython.locals(new_keys=list, seen=dict, created=set, positions=list, keys=list, j=Py_ssize_t,
               move_cost=Py_ssize_t, order_cost=Py_ssize_t)
cdef object plan_moves(RangeDiff d)

@cython.locals(tails=list, prev=list, i=Py_ssize_t, lo=Py_ssize_t, hi=Py_ssize_t, mid=Py_ssize_t, j=Py_ssize_t)
cpdef set longest_increasing(list seq)

@cython.locals(Fe=Frame)
cdef object attach_else(Run rt, Op op, Frame F, Ctx C, RangeState rs)

@cython.locals(block=Block, out=dict)
cdef dict node_wire(NodeState st)

@cython.locals(out=dict)
cdef dict item_wire(NodeState st)

@cython.locals(op=Op)
cdef object fill_slots(dict out, Block block, list vals)

@cython.locals(loop_op=Op, out=dict)
cdef dict range_wire(Op op, RangeState rs)

@cython.locals(size=Py_ssize_t)
cdef Py_ssize_t wire_size(NodeState st) except -1

@cython.locals(statics=list, vals=list, parts=list, i=Py_ssize_t)
cdef str node_html(NodeState st)

cdef str range_html(RangeState rs)

cpdef str render_text(Run rt, Block block, Frame F, Ctx C)
