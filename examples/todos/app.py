"""Todos: a keyed list that can be added to, toggled, reordered, deleted and filtered,
kept across reloads (the list is persisted), working with or without JavaScript.

    uvicorn examples.todos.app:app
"""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import msgspec

import livetemplate
from livetemplate import Context, FieldError, Persist

FILTERS = ("all", "active", "done")
MAX_TITLE = 200


class Todo(msgspec.Struct):
    id: int
    title: str
    done: bool = False


class TodoState(msgspec.Struct):
    todos: Annotated[list[Todo], Persist] = []
    next_id: Annotated[int, Persist] = 1
    filter: str = "all"  # from the query string, refilled by mount


class Todos:
    def mount(self, state: TodoState, ctx: Context) -> TodoState:
        chosen = ctx.get_str("filter", "all")
        state.filter = chosen if chosen in FILTERS else "all"
        if not ctx.is_http:
            # a filter link (__navigate__) starts a new view: "Added ..." belonged to the last one.
            # Over HTTP the flash is the one a form post without JavaScript just redirected with.
            ctx.clear_flash()
        return state

    def add(self, state: TodoState, ctx: Context) -> TodoState:
        title = ctx.get_str("title").strip()
        if not title:
            raise FieldError("title", "Please enter a title.")
        if len(title) > MAX_TITLE:
            raise FieldError("title", f"Keep it under {MAX_TITLE} characters.")
        state.todos.append(Todo(state.next_id, title))
        state.next_id += 1
        ctx.set_flash("notice", f"Added “{title}”.")
        return state

    def toggle(self, state: TodoState, ctx: Context) -> TodoState:
        todo = self._find(state, ctx)
        todo.done = not todo.done
        return state

    def delete(self, state: TodoState, ctx: Context) -> TodoState:
        todo = self._find(state, ctx)
        state.todos.remove(todo)
        ctx.set_flash("notice", f"Deleted “{todo.title}”.")
        return state

    def move_up(self, state: TodoState, ctx: Context) -> TodoState:
        return self._move(state, ctx, -1)

    def move_down(self, state: TodoState, ctx: Context) -> TodoState:
        return self._move(state, ctx, +1)

    def _move(self, state: TodoState, ctx: Context, step: int) -> TodoState:
        todo = self._find(state, ctx)
        at = state.todos.index(todo)
        to = min(max(at + step, 0), len(state.todos) - 1)
        state.todos.insert(to, state.todos.pop(at))
        return state

    def _find(self, state: TodoState, ctx: Context) -> Todo:
        wanted = ctx.get_int("id")
        for todo in state.todos:
            if todo.id == wanted:
                return todo
        raise FieldError("id", "That todo no longer exists.")


def create_app(**options: object) -> livetemplate.LiveApp:
    return livetemplate.mount(
        Todos(), TodoState(), template=Path(__file__).parent / "templates" / "todos.html", **options
    )


app = create_app()
