"""Shared renders: a copy of what a client holds is equal and independent, renderers share
equal states, and inside a render batch equal transitions render once, with the same frames
(bytes for bytes) as rendering each client on its own would give."""

from __future__ import annotations

import gc
import threading
import weakref
from collections.abc import Iterator
from typing import Any

import msgspec
import pytest
from hypothesis import HealthCheck, given, note, settings
from hypothesis import strategies as st

from livetemplate import Template
from livetemplate.helpers import Helpers
from livetemplate.ops.metrics import Metrics
from livetemplate.rendering import OPENED, Pipeline, close_batch, open_batch
from tests.unit.engine.test_properties import PageS, fields_of, next_page, pages, templates

LIST = (
    '<ul>{% for x in items %}<li data-key="{{ x.id }}">{{ x.name }}{% if x.on %}<b>on</b>{% endif %}</li>'
    "{% else %}<p>none</p>{% endfor %}</ul><i>{{ count }}</i>"
)


class Item(msgspec.Struct):
    id: int
    name: str
    on: bool = False


class Page(msgspec.Struct):
    items: list[Item] = []
    count: int = 0


class Loose(msgspec.Struct, dict=True):
    count: int = 0


@pytest.fixture
def batch() -> Iterator[None]:
    open_batch()
    try:
        yield
    finally:
        close_batch()


def pipeline(source: str = LIST, **options: Any) -> Pipeline:
    return Pipeline(Template(source), metrics=Metrics(), **options)


def renders(pipe: Pipeline) -> int:
    """Renders done (not taken from a batch) since the last flush of the metrics."""
    return len(pipe.metrics.template_duration.pending)


def page(*ids: int, count: int = 0) -> Page:
    return Page([Item(i, f"n{i}", on=i % 2 == 0) for i in ids], count)


def test_a_copy_of_a_view_is_equal_and_independent() -> None:
    template = Template(LIST)
    engine = template._engine
    original, reference = template.renderer(), template.renderer()
    for renderer in (original, reference):
        renderer.render(page(1, 2, 3))
    copy = template.renderer()
    copy.held.view = engine.clone_view(original.held.view)
    assert engine.same_view(copy.held.view, original.held.view)
    assert copy.render(page(3, 1, count=4)) == original.render(page(3, 1, count=4)) != {}
    assert engine.same_view(copy.held.view, original.held.view)
    copy.render(page(2))  # the copy moves on; the original keeps what its client holds
    assert not engine.same_view(copy.held.view, original.held.view)
    reference.render(page(3, 1, count=4))
    assert original.render(page(3, 1, 5, count=4)) == reference.render(page(3, 1, 5, count=4)) != {}


def test_views_differ_by_any_value_they_hold() -> None:
    template = Template(LIST)
    engine = template._engine
    a, b = template.renderer(), template.renderer()
    a.render(page(1, 2))
    b.render(page(1, 2))
    assert engine.same_view(a.held.view, b.held.view)
    for changed in (page(1, 2, count=1), page(2, 1), page(1), page(), Page([Item(1, "n1"), Item(2, "x")])):
        c = template.renderer()
        c.render(changed)
        assert not engine.same_view(a.held.view, c.held.view), changed
    empty = template.renderer()
    assert not engine.same_view(a.held.view, empty.held.view)
    assert engine.same_view(empty.held.view, template.renderer().held.view)


def test_a_render_on_a_shared_state_copies_it_first() -> None:
    template = Template(LIST)
    a, b = template.renderer(), template.renderer()
    a.render(page(1, 2))
    b.render(page(1, 2))
    assert b.share(a.held) and b.held is a.held and a.held.sharers == 2
    update = b.render(page(2, count=7))
    assert b.held is not a.held and a.held.sharers == 1 and b.held.sharers == 1
    reference = template.renderer()
    reference.render(page(1, 2))
    assert a.render(page(1, 2, 3)) == reference.render(page(1, 2, 3))
    assert update == {"0": [["r", "1"]], "1": "7"}


def test_a_renderer_shares_only_an_equal_state() -> None:
    template = Template(LIST)
    a, b = template.renderer(), template.renderer()
    a.render(page(1, 2))
    b.render(page(1, 3))
    assert not b.share(a.held)
    assert b.held is not a.held and a.held.sharers == 1


def test_a_reset_leaves_the_shared_state_to_the_others() -> None:
    template = Template(LIST)
    a, b = template.renderer(), template.renderer()
    a.render(page(1))
    b.render(page(1))
    b.share(a.held)
    b.reset()
    assert "s" in b.render(page(1))  # a complete tree again
    assert a.held.sharers == 1 and a.render(page(1)) == {}


def test_a_batch_renders_an_equal_transition_once_and_sends_the_same_bytes(batch: None) -> None:
    pipe = pipeline()
    renderers = [pipe.template.renderer() for _ in range(5)]
    first = [pipe.update_frames(r, page(1, 2), Helpers(), {"success": True}) for r in renderers]
    assert renders(pipe) == 1
    assert all(frames == first[0] and frames[0] is first[0][0] for frames in first)
    assert len({id(r.held) for r in renderers}) == 1
    second = [pipe.update_frames(r, page(2, 1, count=3), Helpers(), None) for r in renderers]
    assert renders(pipe) == 2
    assert all(frames[0] is second[0][0] for frames in second)
    # every send is counted, rendered or not: the renders now, the others when the batch closes
    metrics = pipe.metrics
    assert (metrics.full_tree_sends.pending, metrics.dynamics_only_sends.pending) == (1, 1)
    close_batch()
    assert (metrics.full_tree_sends.pending, metrics.dynamics_only_sends.pending) == (5, 5)
    payloads = [len(frames[0]) for frames in (first[0], second[0])]
    assert sorted(metrics.update_payload.pending) == sorted(payloads * 5)


def test_different_meta_or_state_renders_again(batch: None) -> None:
    pipe = pipeline()
    a, b, c = (pipe.template.renderer() for _ in range(3))
    pipe.update_frames(a, page(1), Helpers(), {"success": True})
    pipe.update_frames(b, page(1), Helpers(), {"success": False})
    pipe.update_frames(c, page(2), Helpers(), {"success": True})
    assert renders(pipe) == 3


def test_clients_brought_to_equal_states_from_different_ones_are_merged(batch: None) -> None:
    pipe = pipeline()
    a, b = pipe.template.renderer(), pipe.template.renderer()
    close_batch()
    pipe.update_frames(a, page(1, 2, count=1), Helpers(), None)  # outside the batch: each its own
    pipe.update_frames(b, page(1, 2, count=2), Helpers(), None)
    open_batch()
    frames_a = pipe.update_frames(a, page(1, 2, count=5), Helpers(), None)
    frames_b = pipe.update_frames(b, page(1, 2, count=5), Helpers(), None)
    assert frames_a == frames_b and renders(pipe) == 4
    assert a.held is b.held
    c = pipe.template.renderer()
    close_batch()
    pipe.update_frames(c, page(1, 3, count=4), Helpers(), None)
    open_batch()
    pipe.update_frames(c, page(1, 2, count=5), Helpers(), None)  # same input, other frames: not merged
    assert c.held is not a.held


def test_states_rendered_alike_by_different_paths_are_not_merged_unless_equal(batch: None) -> None:
    """Same frames from the same input but different held states (a slot the update leaves
    alone differs): merging would be wrong, and does not happen."""
    pipe = pipeline("{{ a }}|{{ b }}")
    x, y = pipe.template.renderer(), pipe.template.renderer()
    close_batch()
    pipe.update_frames(x, {"a": 1, "b": 1}, Helpers(), None)
    pipe.update_frames(y, {"a": 1, "b": 2}, Helpers(), None)
    open_batch()
    # dict states are not shared at all; the same check with Structs:
    assert renders(pipe) == 2

    class AB(msgspec.Struct):
        a: int
        b: int

    x, y = pipe.template.renderer(), pipe.template.renderer()
    close_batch()
    pipe.update_frames(x, AB(1, 1), Helpers(), None)
    pipe.update_frames(y, AB(1, 2), Helpers(), None)
    pipe.update_frames(x, AB(2, 1), Helpers(), None)
    pipe.update_frames(y, AB(2, 2), Helpers(), None)
    open_batch()
    fx = pipe.update_frames(x, AB(3, 2), Helpers(), None)
    fy = pipe.update_frames(y, AB(3, 2), Helpers(), None)
    assert fx != fy and x.held is not y.held
    fx = pipe.update_frames(x, AB(4, 2), Helpers(), None)
    fy = pipe.update_frames(y, AB(4, 2), Helpers(), None)
    assert fx == fy and x.held is y.held  # now equal: merged


def test_helpers_are_part_of_the_input_only_when_the_template_reads_them(batch: None) -> None:
    plain = pipeline()
    a, b = plain.template.renderer(), plain.template.renderer()
    plain.update_frames(a, page(1), Helpers(csrf="one"), None)
    plain.update_frames(b, page(1), Helpers(csrf="two"), None)
    assert renders(plain) == 1 and a.held is b.held
    reading = pipeline(LIST + "{{ lvt.csrf_field() }}")
    a, b, c = (reading.template.renderer() for _ in range(3))
    frames_a = reading.update_frames(a, page(1), Helpers(csrf="one"), None)
    frames_b = reading.update_frames(b, page(1), Helpers(csrf="two"), None)
    reading.update_frames(c, page(1), Helpers(csrf="one"), None)
    assert b"one" in frames_a[0] and b"two" in frames_b[0]
    assert renders(reading) == 2 and c.held is a.held and b.held is not a.held
    errors = pipeline(LIST + "{{ lvt.error('x') }}")
    a, b = errors.template.renderer(), errors.template.renderer()
    errors.update_frames(a, page(1), Helpers({"x": "bad"}), None)
    errors.update_frames(b, page(1), Helpers(), None)
    assert renders(errors) == 2


def test_what_cannot_be_keyed_is_rendered_for_each_client(batch: None) -> None:
    class Uploads:
        def statuses(self, upload: str) -> list[Any]:
            return []

        def error(self, upload: str) -> str:
            return ""

    for state in ({"count": 1}, Loose(1), Page([Item(1, "n")]), Page(count=1)):
        pipe = pipeline("{{ count }}{{ lvt.flash('x') }}")
        a, b = pipe.template.renderer(), pipe.template.renderer()
        helpers = Helpers(uploads=Uploads()) if isinstance(state, Page) and state.items else Helpers()
        pipe.update_frames(a, state, helpers, None)
        pipe.update_frames(b, state, helpers, None)
        shared = type(state) is Page and not state.items
        assert renders(pipe) == (1 if shared else 2), state
    off = pipeline(share=False)
    a, b = off.template.renderer(), off.template.renderer()
    off.update_frames(a, page(1), Helpers(), None)
    off.update_frames(b, page(1), Helpers(), None)
    assert renders(off) == 2


def test_a_template_error_in_a_batch_resets_only_that_client(batch: None) -> None:
    class N(msgspec.Struct):
        n: int

    pipe = pipeline("{{ 10 // n }}")
    a, b = pipe.template.renderer(), pipe.template.renderer()
    pipe.update_frames(a, N(2), Helpers(), None)
    pipe.update_frames(b, N(2), Helpers(), None)
    assert a.held is b.held
    (error,) = pipe.update_frames(a, N(0), Helpers(), None)
    assert b"could not be rendered" in error
    (again,) = pipe.update_frames(b, N(0), Helpers(), None)
    assert b"could not be rendered" in again  # not taken from the batch
    assert b'"s"' in pipe.update_frames(a, N(5), Helpers(), None)[0]  # a complete tree after the reset


def test_a_client_brought_to_the_same_input_twice_in_a_batch_gets_no_change(batch: None) -> None:
    pipe = pipeline()
    a, b = pipe.template.renderer(), pipe.template.renderer()
    close_batch()
    pipe.update_frames(a, page(1), Helpers(), None)
    open_batch()
    (first,) = pipe.update_frames(a, page(1, 2), Helpers(), None)  # in place: a held it alone
    assert b"n2" in first
    assert pipe.update_frames(a, page(1, 2), Helpers(), None) == [b'{"tree":{}}']
    pipe.update_frames(b, page(1), Helpers(), None)
    assert pipe.update_frames(b, page(1, 2), Helpers(), None) == [first]  # the transition a made


def test_closing_the_batch_lets_a_lone_client_render_in_place() -> None:
    pipe = pipeline()
    a, b = pipe.template.renderer(), pipe.template.renderer()
    open_batch()
    pipe.update_frames(a, page(1), Helpers(), None)
    pipe.update_frames(b, page(1), Helpers(), None)
    held = a.held
    assert held.sharers == 4  # two renderers, and the batch's two entries
    close_batch()
    assert held.sharers == 2
    pipe.update_frames(b, page(2), Helpers(), None)
    assert held.sharers == 1 and a.held is held
    version = held.version
    pipe.update_frames(a, page(3), Helpers(), None)
    assert a.held is held and held.version == version + 1  # rendered in place, no copy


def private(*states: Page) -> list[bytes]:
    """The frames a client rendered on its own is sent for the last of ``states``."""
    alone = pipeline(share=False)
    renderer = alone.template.renderer()
    return [alone.update_frames(renderer, state, Helpers(), None) for state in states][-1]


def test_tabs_opening_onto_the_same_page_hold_one_copy_of_it() -> None:
    pipe = pipeline()
    a, b, c = (pipe.template.renderer() for _ in range(3))
    first = pipe.update_frames(a, page(1, 2), Helpers(), None)
    assert pipe.update_frames(b, page(1, 2), Helpers(), None) == first == private(page(1, 2))
    assert renders(pipe) == 2  # each is rendered: only what the clients hold is merged
    assert b.held is a.held and a.held.sharers == 2
    pipe.update_frames(c, page(1, 3), Helpers(), None)  # another page: its own
    assert c.held is not a.held and c.held.sharers == 1
    # each goes on as it would alone: the first to render copies, the other renders in place
    assert pipe.update_frames(b, page(2, count=5), Helpers(), None) == private(page(1, 2), page(2, count=5))
    assert b.held is not a.held and a.held.sharers == 1
    assert pipe.update_frames(a, page(1, 2, 4), Helpers(), None) == private(page(1, 2), page(1, 2, 4))


def test_a_tab_that_moved_on_is_not_merged_into() -> None:
    pipe = pipeline()
    a, b = pipe.template.renderer(), pipe.template.renderer()
    pipe.update_frames(a, page(1), Helpers(), None)
    pipe.update_frames(a, page(2), Helpers(), None)  # in place: a no longer holds what it was sent first
    pipe.update_frames(b, page(1), Helpers(), None)
    assert b.held is not a.held
    assert pipe.update_frames(b, page(3), Helpers(), None) == private(page(1), page(3))
    assert pipe.update_frames(a, page(3), Helpers(), None) == private(page(2), page(3))


def test_a_closed_tab_leaves_nothing_behind_and_old_pages_are_forgotten() -> None:
    pipe = pipeline()
    gone = pipe.template.renderer()
    pipe.update_frames(gone, page(1), Helpers(), None)
    held = weakref.ref(gone.held)
    del gone
    gc.collect()
    assert held() is None  # the pipeline keeps no state of a closed tab
    a, b = pipe.template.renderer(), pipe.template.renderer()
    pipe.update_frames(a, page(1), Helpers(), None)
    for count in range(OPENED):  # as many other pages since
        pipe.update_frames(pipe.template.renderer(), page(count=count + 1), Helpers(), None)
    pipe.update_frames(b, page(1), Helpers(), None)
    assert b.held is not a.held


def test_without_shared_renders_tabs_opening_alike_hold_their_own() -> None:
    pipe = pipeline(share=False)
    a, b = pipe.template.renderer(), pipe.template.renderer()
    pipe.update_frames(a, page(1), Helpers(), None)
    pipe.update_frames(b, page(1), Helpers(), None)
    assert b.held is not a.held


# -- the property: shared renders send what private ones send --------------------------------------------------


@settings(
    max_examples=120,
    deadline=None,
    derandomize=True,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow, HealthCheck.data_too_large],
)
@given(case=templates(), data=st.data())
def test_clients_in_batches_get_what_each_would_get_alone(case: tuple[str, dict[str, str], bool], data: Any) -> None:
    """Random templates; four clients; at each step each client is brought to one of two
    states (so that transitions coincide), inside or outside a batch (which may last over
    several steps, so a client meets an input twice in one). Every frame equals,
    byte for byte, the frame a pipeline that shares nothing sends the same client."""
    source, loader, strict = case
    shared = Pipeline(Template(source, loader=loader, strict_undefined=strict), metrics=Metrics())
    alone = Pipeline(Template(source, loader=loader, strict_undefined=strict), metrics=Metrics(), share=False)
    clients = [(shared.template.renderer(), alone.template.renderer()) for _ in range(4)]
    pool = [PageS(**fields_of(data.draw(pages(), label=f"state {i}"))) for i in range(2)]
    try:
        for step in range(data.draw(st.integers(2, 5), label="steps")):
            if data.draw(st.booleans(), label="batch"):
                open_batch()
            for index, (mine, reference) in enumerate(clients):
                if data.draw(st.integers(0, 5), label="batch boundary") == 0:
                    close_batch()
                    open_batch()
                state = pool[data.draw(st.integers(0, 1), label=f"client {index}")]
                got = shared.update_frames(mine, state, Helpers(), None)
                want = alone.update_frames(reference, state, Helpers(), None)
                assert got == want, f"step {step}, client {index}"
            if data.draw(st.booleans(), label="close the batch"):
                close_batch()
            which = data.draw(st.integers(0, 1), label="edited")
            pool[which] = PageS(**fields_of(next_page(data, pool[which])))
            note(f"state {which} is now {pool[which]!r}")
    finally:
        close_batch()


def test_a_render_batch_is_shared_by_the_renders_of_its_own_thread_only(batch: None) -> None:
    pipe = pipeline()
    here = pipe.template.renderer()
    pipe.update_frames(here, page(1), Helpers(), None)

    def elsewhere() -> None:
        for renderer in (pipe.template.renderer(), pipe.template.renderer()):
            pipe.update_frames(renderer, page(1), Helpers(), None)

    other = threading.Thread(target=elsewhere)
    other.start()
    other.join()
    assert renders(pipe) == 3
