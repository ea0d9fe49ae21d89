"""Application state: a ``msgspec.Struct`` or dataclass, cloned per session group, with
the fields marked ``Persist`` saved to the session store after every committed change.

Values travel as MessagePack (msgspec) and are decoded into the declared types: state
read back from a shared store is validated, never unpickled.
"""

from __future__ import annotations

import dataclasses
import operator
from collections.abc import Callable
from typing import Annotated, Any, Generic, TypeVar, get_args, get_origin, get_type_hints

import msgspec

from .ops.logs import get_logger

__all__ = ["Persist", "StateSpec"]

logger = get_logger(__name__)

S = TypeVar("S")


class Persist:
    """Marks a state field that survives reloads and reconnects::

    class State(msgspec.Struct):
        todos: Annotated[list[Todo], Persist] = []
        filter: str = "all"          # refilled by mount() on every page load
    """


def _fields(tp: Any) -> list[str]:
    if isinstance(tp, type) and issubclass(tp, msgspec.Struct):
        return list(tp.__struct_fields__)
    return [f.name for f in dataclasses.fields(tp)]


class StateSpec(Generic[S]):
    """What the runtime needs to know about a state type: how to make the initial state,
    clone it, and save and restore its persisted fields."""

    def __init__(self, initial: S) -> None:
        if isinstance(initial, type):
            raise TypeError(f"pass an instance of {initial.__name__} as the initial state, not the class")
        tp = type(initial)
        if not (isinstance(initial, msgspec.Struct) or (dataclasses.is_dataclass(initial) and initial is not tp)):
            raise TypeError(f"state must be a msgspec.Struct or a dataclass instance, not {tp.__name__}")
        self.type: type[S] = tp
        self._encoder = msgspec.msgpack.Encoder()
        try:
            self._initial = self._encoder.encode(initial)
            # PERF: decoders made once (a run decodes its clone and the group's snapshot): about
            # 230 instructions fewer a decode than msgspec.msgpack.decode(..., type=...)
            self._decode = msgspec.msgpack.Decoder(tp).decode
            self._decode(self._initial)
        except (TypeError, msgspec.ValidationError) as exc:
            raise TypeError(f"state {tp.__name__} is not serializable with msgspec: {exc}") from exc
        hints = get_type_hints(tp, include_extras=True)
        persisted = [
            (name, hints[name])
            for name in _fields(tp)
            if get_origin(hints.get(name)) is Annotated and Persist in get_args(hints[name])[1:]
        ]
        self.persisted: tuple[str, ...] = tuple(name for name, _ in persisted)
        self._saved: type[msgspec.Struct] | None = (
            msgspec.defstruct(f"{tp.__name__}Saved", persisted) if persisted else None
        )
        self._decode_saved = msgspec.msgpack.Decoder(self._saved).decode if self._saved is not None else None
        #: The persisted fields' values of a state: one value for one field, else a tuple.
        #: PERF: attrgetter reads them in C (with a comprehension ``dump`` took 1.5x as long:
        #: benchmarks/idioms.py)
        self._values = operator.attrgetter(*self.persisted) if persisted else None

    def new(self) -> S:
        """A fresh copy of the initial state."""
        return self._decode(self._initial)

    def clone(self, state: S) -> S:
        """A deep copy of ``state`` (actions work on one, so a failure commits nothing)."""
        return self._decode(self._encoder.encode(state))

    def dump(self, state: S) -> bytes | None:
        """The persisted fields of ``state``, encoded; None when it has none."""
        if self._saved is None or self._values is None:
            return None
        values = self._values(state)
        return self._encoder.encode(self._saved(values) if len(self.persisted) == 1 else self._saved(*values))

    def load(self, state: S, data: bytes) -> S:
        """``state`` with its persisted fields set from ``data``. Data that no longer
        fits the type (the state class changed) is ignored, with a warning."""
        if self._decode_saved is None:
            return state
        try:
            saved = self._decode_saved(data)
        except msgspec.DecodeError as exc:
            logger.warning("ignoring saved %s state that does not fit its type: %s", self.type.__name__, exc)
            return state
        for name in self.persisted:
            setattr(state, name, getattr(saved, name))
        return state

    def check(self, value: Any, where: Callable[[], str]) -> S:
        """``value`` if it is a state; a TypeError naming ``where()`` (what returned it) if not."""
        if type(value) is not self.type:
            raise TypeError(f"{where()} must return a {self.type.__name__} (or None), not {type(value).__name__}")
        return value
