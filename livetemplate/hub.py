"""The hub: which views this process serves (by session group and by topic), and how
actions and changes reach them, here and on the other instances.

After a view (or an HTTP request) runs an action, the hub carries out what its outcome
asks: the group's other tabs take the committed persisted fields, the publishes go out, the
pushes requested inside the action run. Fan-out never waits for a socket: each view's frames
go to its outbox. Other instances hear of it through the broadcaster, in envelopes on a topic
channel or on the session group's channel; a hub ignores its own envelopes.
"""

from __future__ import annotations

import asyncio
import collections
import contextlib
import itertools
from collections.abc import Awaitable, Callable, Collection, Coroutine, Generator, Iterator, Mapping
from typing import Any

import msgspec

from .backends.memory import InProcessBroadcaster
from .broadcast import Broadcaster, BroadcastUnavailable, ResubscribeHook
from .context import Context, Exchange, check_topic
from .errors import NotAvailable, TopicForbidden
from .fanout import FanOut
from .groups import Group, Groups
from .ops.logs import get_logger
from .ops.metrics import Metrics
from .periodic import Periodic
from .runner import Outcome, defer
from .session import LiveView, Reply
from .sessions import Snapshot, StoreUnavailable
from .wire import GROUP_CHANNEL, RESERVED_TOPICS, TOPIC_CHANNEL

__all__ = ["Envelope", "Hub", "Session"]

logger = get_logger(__name__)

TopicAcl = Callable[[str, Context], bool]

#: Seconds a topic's local subscribers wait at most for the publish to the other instances
#: to go out before them (see :meth:`Hub.publish`).
LOCAL_AFTER = 0.05

#: Seconds before a resynchronisation tries again the groups the store could not be read for
#: (doubling each time, up to the maximum).
RESYNC_RETRY = 0.5
RESYNC_RETRY_MAX = 10.0
#: Groups a resynchronisation reads at once (a Redis store sends them in one pipeline).
RESYNC_BATCH = 256


class Envelope(msgspec.Struct, frozen=True, omit_defaults=True):
    """A message between instances: ``topic`` runs an action for a topic's subscribers,
    ``push`` for a session group's views; ``commit`` carries a group's new snapshot. ``id``
    tells a message delivered twice (a retried publish) from a new one."""

    kind: str
    target: str
    origin: str
    id: str = ""
    action: str = ""
    data: dict[str, Any] = {}
    snapshot: bytes | None = None
    version: int = 0
    commit: bool = True  # push: whether a run there may change the group's persisted fields


_encode = msgspec.msgpack.Encoder().encode
_decode = msgspec.msgpack.Decoder(Envelope).decode


class Session:
    """A handle on one session group, for pushing actions to its connections from anywhere
    (a background task, a webhook handler)."""

    def __init__(self, hub: Hub, group_id: str) -> None:
        self.hub = hub
        self.group_id = group_id

    async def trigger_action(self, action: str, data: Mapping[str, Any] | None = None) -> None:
        """Run ``action`` for every open connection of the group and push the updates.
        Called from inside an action, it runs once that action has committed."""
        await self.hub.trigger(self.group_id, action, dict(data or {}))

    def __repr__(self) -> str:
        return f"<Session {self.group_id[:8]}...>"


class _Subscribing:
    """A subscription of a channel on its way: the members that join the channel meanwhile
    wait for it (``done``), and fail with it."""

    def __init__(self) -> None:
        self.done = asyncio.Event()
        #: Why it failed; set when it succeeds or fails (a cancelled one counts as failed).
        self.failure: BroadcastUnavailable | None = BroadcastUnavailable("the subscription was given up")


class _Holding:
    """What ``ctx.subscribe`` returns for a tab: awaited, it waits until the subscription of
    the topic's channel holds, or has failed (the tab is then closed once its run is over)."""

    __slots__ = ("channel", "hub")

    def __init__(self, hub: Hub, channel: str) -> None:
        self.hub = hub
        self.channel = channel

    def __await__(self) -> Generator[Any, None, None]:
        with contextlib.suppress(BroadcastUnavailable):
            yield from self.hub._subscribed(self.channel).__await__()


class _GroupRun(msgspec.Struct, frozen=True):
    """A session group's part of a delivery (a :class:`~livetemplate.fanout.Delivery`): the
    action to run on each of ``views``, one after the other."""

    # PERF: a Struct is made in C (one per group a broadcast reaches)
    hub: Hub
    views: list[LiveView]
    action: str
    data: dict[str, Any]
    commit: bool
    once: str | None

    def run(self) -> Coroutine[Any, Any, None]:
        return self.hub._deliver_group(self.views, self.action, self.data, self.commit, self.once)

    def run_at_once(self) -> Coroutine[Any, Any, None] | None:
        if self.once is not None:  # its claim waits on the store
            return self.run()
        return self.hub._deliver_at_once(self.views, self.action, self.data, self.commit)

    def busy(self) -> bool:
        """Whether the run would wait at once for a lock of the group or of a view."""
        for view in self.views:
            if view.lock.locked():
                return True
        return self.views[0].group.lock.locked()


class Hub:
    """Membership and delivery for one app in this process."""

    def __init__(
        self,
        groups: Groups,
        broadcaster: Broadcaster,
        *,
        namespace: str,
        instance_id: str,
        metrics: Metrics,
        open_topics: bool = False,
        topic_acl: TopicAcl | None = None,
        keep_alive: float | None = None,
    ) -> None:
        self.groups = groups
        self.broadcaster = broadcaster
        self.namespace = namespace
        self.instance_id = instance_id
        self.metrics = metrics
        self.open_topics = open_topics
        self.topic_acl = topic_acl
        self.views: set[LiveView] = set()
        self._by_group: dict[str, list[LiveView]] = {}
        self._by_topic: dict[str, set[LiveView]] = {}
        #: the topics each view is subscribed to here. PERF: a tuple, not a copy of the view's set
        #: (a set of one topic takes 216 bytes, a tuple 48; compared once a run, in ``settle``)
        self._topics_of: dict[LiveView, tuple[str, ...]] = {}
        #: the topics views joined while a run of theirs went on (``ctx.subscribe``), until
        #: :meth:`sync_topics` records them, or leaves those of a run that failed
        self._early: dict[LiveView, set[str]] = {}
        self._loop: asyncio.AbstractEventLoop | None = None
        self._subscribing: dict[str, _Subscribing] = {}  # by channel: subscriptions on their way
        self._tasks: set[asyncio.Task[Any]] = set()
        self._seen: collections.OrderedDict[str, None] = collections.OrderedDict()  # recent envelope ids
        self._ids = itertools.count()
        self.fan_out = FanOut(self.spawn)
        #: Reads the groups served here again every ``keep_alive`` seconds: nothing else reads
        #: a group while its tabs stay open and unchanged, and the store's time to live (which
        #: a read renews) would run out under them.
        self._keep_alive = Periodic(self._read_again, keep_alive) if keep_alive and groups.persisted else None
        self._reading_again: asyncio.Task[Any] | None = None
        #: What the broadcaster calls, for every channel: one bound method (a channel per group)
        self._handler = self._on_envelope
        groups.in_use = self.serves
        if hasattr(broadcaster, "on_resubscribe"):  # a shared broadcaster that can lose messages
            previous: ResubscribeHook | None = broadcaster.on_resubscribe

            async def resubscribed(channels: list[str]) -> None:
                await self.resync()
                if previous is not None:
                    await previous(channels)

            broadcaster.on_resubscribe = resubscribed

    # -- membership --------------------------------------------------------------------------

    def serves(self, group_id: str) -> bool:
        """Whether a view of the group is open here."""
        return group_id in self._by_group

    def views_of(self, group_id: str) -> list[LiveView]:
        return list(self._by_group.get(group_id, ()))

    async def attach(self, view: LiveView) -> None:
        """Serve ``view`` here: the first of its group subscribes to the group's channel, then
        reads the group again (the group's tabs attached meanwhile wait for both). A commit
        made elsewhere after the group was read for the view, but before the subscription
        held, is neither in what was read nor heard: it is in what is read now, and every
        later one is heard."""
        self._loop = asyncio.get_running_loop()
        self.views.add(view)
        members = self._by_group.setdefault(view.group.id, [])
        members.append(view)
        channel = self._group_channel(view.group.id)
        try:
            if len(members) == 1:
                if self._keep_alive is not None:
                    self._keep_alive.start()
                reread = view.group if self.groups.persisted else None
                await self._subscription(channel, self._on_its_way(channel), reread)
            else:  # another tab of the group subscribes it (and reads the group again): wait for it
                await self._subscribed(channel)
        except BaseException:
            self.views.discard(view)  # not served here: the group's next tab subscribes again
            members.remove(view)
            if not members:
                del self._by_group[view.group.id]
            raise

    async def detach(self, view: LiveView) -> None:
        self.views.discard(view)  # joins nothing more early
        view.topics.clear()
        await self.sync_topics(view)
        self._topics_of.pop(view, None)
        members = self._by_group.get(view.group.id)
        if members is not None and view in members:
            members.remove(view)
            if not members:
                del self._by_group[view.group.id]
                await self.broadcaster.unsubscribe(self._group_channel(view.group.id), self._handler)

    # -- after a run ----------------------------------------------------------------------------

    async def settle(
        self,
        view: LiveView | None,
        outcome: Outcome | None,
        *,
        group_id: str | None = None,
        running: Collection[LiveView] = (),
    ) -> None:
        """Carry out what a run of ``view`` (None: an HTTP request of ``group_id``) asks:
        topic subscriptions, refreshing the group's other tabs here (but those about to run
        the same action: ``running``) and elsewhere, publishes and pushes. Topics that cannot
        be subscribed raise ``BroadcastUnavailable``, once the rest is done."""
        unsubscribed: BroadcastUnavailable | None = None
        if view is not None:
            group_id = view.group.id
            if self._topics_moved(view):
                try:
                    await self.sync_topics(view)
                except BroadcastUnavailable as exc:  # the group's other tabs must not go stale for it
                    unsubscribed = exc
        if outcome is not None and outcome.success:
            assert group_id is not None
            if outcome.committed is not None:
                self._refresh(group_id, view, running)
                channel = self._told(group_id)
                if channel is not None:
                    await self._send(channel, group_id, "commit", snapshot=outcome.committed)
            self._follow_up(outcome)
        if unsubscribed is not None:
            raise unsubscribed

    def settle_at_once(self, view: LiveView, outcome: Outcome | None, running: Collection[LiveView] = ()) -> bool:
        """:meth:`settle` of a run of ``view`` as plain calls, when it waits for nothing: its
        topics are subscribed and no other instance is to hear of its commit. False, having
        done nothing, when it would wait."""
        if self._topics_moved(view):
            return False
        if outcome is not None and outcome.success:
            if outcome.committed is not None:
                if self._told(view.group.id) is not None:
                    return False
                self._refresh(view.group.id, view, running)
            self._follow_up(outcome)
        return True

    def topics_synced(self, view: LiveView) -> bool:
        """Whether the view's topics here are those it is subscribed to (see :meth:`sync_topics`)."""
        return not self._topics_moved(view)

    def _topics_moved(self, view: LiveView) -> bool:
        """Whether the view's topics here are not those it is subscribed to (a run changed them)."""
        had = self._topics_of.get(view, ())
        early = self._early  # PERF: empty but while runs join topics: no lookup a recipient
        return len(view.topics) != len(had) or not view.topics.issuperset(had) or bool(early and view in early)

    def _told(self, group_id: str) -> str | None:
        """The channel on which other instances hear of the group's commits; None if nobody does."""
        if self._alone():  # PERF: nobody to tell (an envelope took 22 µs a commit), no channel to name
            return None
        channel = self._group_channel(group_id)
        return channel if self._others_listen(channel) else None

    def _follow_up(self, outcome: Outcome) -> None:
        """Start the publishes and pushes a run asked for."""
        for publish in outcome.publishes:
            self.spawn(self.publish(publish.topic, publish.action, publish.data))
        for push in outcome.deferred:
            self.spawn(push())

    async def sync_topics(self, view: LiveView) -> None:
        """Bring the hub's topic membership in line with the view's subscriptions. A
        transport has the view call it, still locked, before the frames of a run of the
        client's are sent: once a client has its page, or the reply to the action that
        subscribed, every message published on its topics after that reaches it (a shared
        broadcaster's subscription holds once confirmed)."""
        early = self._early.pop(view, ())  # joined as its run went on: perhaps still on their way
        member = set(self._topics_of.get(view, ()))  # what the view is a member of here, as it goes
        member.update(early)
        wanted = view.topics
        if member == wanted and not early:
            return
        try:
            for topic in early:
                with contextlib.suppress(BroadcastUnavailable):
                    await self._subscribed(TOPIC_CHANNEL + topic)
                if view not in self._by_topic.get(topic, ()):  # it failed, and took its members with it
                    member.discard(topic)  # joined again below if wanted: a second try, which may raise
            for topic in wanted - member:
                await self._join(topic, view)  # may fail: the topics joined before it are kept
                member.add(topic)
            for topic in member - wanted:
                member.discard(topic)
                remaining = self._by_topic.get(topic)
                if remaining is not None:
                    remaining.discard(view)
                    if not remaining:
                        del self._by_topic[topic]
                        await self.broadcaster.unsubscribe(TOPIC_CHANNEL + topic, self._handler)
        finally:
            self._topics_of[view] = tuple(member)

    async def _join(self, topic: str, view: LiveView) -> None:
        """Make ``view`` a member of ``topic`` here, once the topic's subscription holds."""
        subscribers = self._by_topic.get(topic)
        if subscribers is None:
            await self._first_member(topic, *self._open_topic(topic, view))
            return
        subscribers.add(view)  # subscribed here, or on its way: held once it is
        try:
            await self._subscribed(TOPIC_CHANNEL + topic)
        except BaseException:
            subscribers.discard(view)
            raise

    def _open_topic(self, topic: str, view: LiveView) -> tuple[set[LiveView], _Subscribing]:
        """Make ``view`` the first member of ``topic`` here: the topic's subscription is on
        its way from now on (members that join meanwhile wait for it); :meth:`_first_member`
        makes it."""
        subscribers = self._by_topic[topic] = {view}
        return subscribers, self._on_its_way(TOPIC_CHANNEL + topic)

    async def _first_member(self, topic: str, subscribers: set[LiveView], pending: _Subscribing) -> None:
        try:
            await self._subscription(TOPIC_CHANNEL + topic, pending, None)
        except BaseException:
            if self._by_topic.get(topic) is subscribers:
                del self._by_topic[topic]  # with the views that joined meanwhile: they fail too
            raise

    def admit(self, topic: str, ctx: Context, exchange: Exchange) -> Awaitable[None] | None:
        """The topic gate of ``ctx.subscribe``: :meth:`authorize`, and a tab served here joins
        the topic at once, before its run is over. A message published on the topic from
        then on (once the subscription holds, with a shared broadcaster) runs on the tab after
        that run, which :meth:`sync_topics` then records; or leaves, if the run failed. Returns
        what to await for the subscription to hold."""
        self.authorize(topic, ctx)
        if not isinstance(exchange, LiveView) or exchange not in self.views:
            return None
        loop = self._loop
        assert loop is not None  # set by attach
        try:
            running: asyncio.AbstractEventLoop | None = asyncio.get_running_loop()
        except RuntimeError:
            running = None
        if running is not loop:  # a sync action in a worker thread
            loop.call_soon_threadsafe(self._join_early, topic, exchange)
            return None
        self._join_early(topic, exchange)
        return _Holding(self, TOPIC_CHANNEL + topic)

    def _join_early(self, topic: str, view: LiveView) -> None:
        """What :meth:`admit` does for a tab, on the event loop's thread."""
        if view not in self.views or topic in self._topics_of.get(view, ()):
            return
        early = self._early.setdefault(view, set())
        if topic in early:
            return
        early.add(topic)
        subscribers = self._by_topic.get(topic)
        if subscribers is not None:
            subscribers.add(view)
        else:
            self.spawn(self._subscribe_early(topic, *self._open_topic(topic, view)))

    async def _subscribe_early(self, topic: str, subscribers: set[LiveView], pending: _Subscribing) -> None:
        with contextlib.suppress(BroadcastUnavailable):  # the run reports it, in sync_topics
            await self._first_member(topic, subscribers, pending)

    def _on_its_way(self, channel: str) -> _Subscribing:
        """A subscription of ``channel`` (for its first member here) is on its way: the
        members that join it meanwhile wait for it with :meth:`_subscribed`, and fail with it.
        :meth:`_subscription` makes it."""
        pending = self._subscribing[channel] = _Subscribing()
        return pending

    async def _subscription(self, channel: str, pending: _Subscribing, reread: Group | None) -> None:
        """Subscribe ``channel``, then read ``reread`` (the channel's session group) again;
        the members waiting for the subscription wait for both."""
        try:
            await self.broadcaster.subscribe(channel, self._handler)
            if reread is not None:
                with contextlib.suppress(StoreUnavailable):  # left stale: read again at its next use
                    await self.groups.reload(reread)
            pending.failure = None
        except BroadcastUnavailable as exc:
            pending.failure = exc
            raise
        finally:
            del self._subscribing[channel]
            pending.done.set()

    async def _subscribed(self, channel: str) -> None:
        """Wait until a subscription of ``channel`` on its way (another member's) holds."""
        pending = self._subscribing.get(channel)
        if pending is not None:
            await pending.done.wait()
            if pending.failure is not None:
                raise BroadcastUnavailable(f"cannot subscribe {channel!r}: {pending.failure}")

    def _refresh(self, group_id: str, done: LiveView | None = None, running: Collection[LiveView] = ()) -> None:
        """Give the group's tabs here its committed persisted fields, but ``done`` (the tab
        whose run committed them) and ``running`` (tabs about to run the same action)."""
        for view in self._by_group.get(group_id, ()):
            if view is not done and view not in running:
                self.spawn(self._refresh_view(view))

    async def _refresh_view(self, view: LiveView) -> None:
        reply = await view.refresh(render=self._keeping_up)
        if view.outbox is not None:
            view.outbox.put(reply.frames)

    def _keeping_up(self, view: LiveView) -> bool:
        """Whether the view's client reads fast enough to be sent every render; if not, its
        renders are coalesced into one update sent once its outbox has drained."""
        outbox = view.outbox
        if outbox is None or not outbox.backed_up:
            return True
        self.metrics.websocket_buffer_full.inc()
        if outbox.on_drained is None:
            outbox.on_drained = lambda: self.spawn(self._catch_up(view))
        return False

    async def _catch_up(self, view: LiveView) -> None:
        reply = await view.catch_up()
        if view.outbox is not None:
            view.outbox.put(reply.frames)

    # -- topics ---------------------------------------------------------------------------------

    def authorize(self, topic: str, ctx: Context) -> None:
        """The topic policy: a session's own topic is allowed, the rest of ``lvt:`` never;
        other topics as ``open_topics`` or ``topic_acl`` say (denied by default)."""
        if topic.startswith(RESERVED_TOPICS):
            if topic != ctx.self_topic:
                raise TopicForbidden(topic)
            return
        if self.open_topics:
            return
        if self.topic_acl is None or not self.topic_acl(topic, ctx):
            raise TopicForbidden(topic)

    async def publish(self, topic: str, action: str, data: Mapping[str, Any] | None = None) -> None:
        """Run ``action`` (with ``data``) for every connection subscribed to ``topic``, in
        this instance and, through the broadcaster, in the others. Called from inside an
        action, it runs once that action has committed."""
        check_topic(topic)
        payload = dict(data or {})
        if defer(lambda: self.publish(topic, action, payload)):
            return
        channel = TOPIC_CHANNEL + topic
        if not self._others_listen(channel):
            self._deliver(self._by_topic.get(topic, ()), action, payload)
            return
        envelope_id = self._new_id()
        # PERF: the other instances' copy goes out before the local runs start. Started after
        # them, it waited (redis-py yields while it takes a pooled connection) until every local
        # subscriber had run, so other instances got it only after this one's whole fan-out.
        # benchmarks/test_cross_instance.py runs both instances on one 2-core box, where they
        # share the CPU anyway: no gain shows there (B's first connection ~0.9 s either way at
        # load 6); on separate hosts B no longer waits for A's fan-out. A broadcaster that
        # does not answer holds the local delivery up for ``LOCAL_AFTER`` at most.
        sending = asyncio.ensure_future(
            self._send(channel, topic, "topic", action=action, data=payload, envelope_id=envelope_id)
        )
        await asyncio.wait((sending,), timeout=LOCAL_AFTER)
        # Other instances run it for their tabs too: a session's persisted fields change once
        # (the instance that claims the message commits).
        self._deliver(self._by_topic.get(topic, ()), action, payload, once=envelope_id)
        await sending

    # -- session groups ---------------------------------------------------------------------------

    def session(self, group_id: str) -> Session:
        return Session(self, group_id)

    async def trigger(self, group_id: str, action: str, data: dict[str, Any]) -> None:
        """Run ``action`` for every open view of the group, here and elsewhere; the group's
        persisted fields change once, in the first run."""
        if defer(lambda: self.trigger(group_id, action, data)):
            return
        views = self.views_of(group_id)
        channel = self._group_channel(group_id)
        elsewhere = self._others_listen(channel)  # another instance may have a view of the group
        if not views and not elsewhere:
            raise NotAvailable(f"session group {group_id} has no open connection")
        self._deliver(views, action, data)
        if elsewhere:
            # the persisted fields change once: here when a view is here, else where the push lands
            await self._send(channel, group_id, "push", action=action, data=data, commit=not views)

    def _alone(self) -> bool:
        """Whether nobody but this hub hears anything it sends: an in-process broadcaster that
        no other app in the process subscribed to (the usual case)."""
        broadcaster = self.broadcaster
        return isinstance(broadcaster, InProcessBroadcaster) and broadcaster.alone(self._handler)

    def _others_listen(self, channel: str) -> bool:
        """Whether anyone but this hub may hear ``channel``: always with a shared broadcaster;
        in-process, when another app in this process subscribed to it."""
        if isinstance(self.broadcaster, InProcessBroadcaster):
            return self.broadcaster.heard_besides(channel, self._handler)
        return True

    # -- delivery --------------------------------------------------------------------------------

    def _deliver(
        self,
        views: Collection[LiveView],
        action: str,
        data: dict[str, Any],
        *,
        commit: bool = True,
        once: str | None = None,
    ) -> None:
        """Run ``action`` on each view, the views of a session group one after the other
        (their runs take turns on the group's lock anyway); the group's persisted fields
        change once, in the first run that changes them (with ``once``, a change other
        instances make too: in the first run of the instance that claims it). See
        :mod:`.fanout` for how the groups' runs share the loop."""
        targets = list(views)  # those subscribed now: later (un)subscriptions do not change this broadcast
        several: dict[str, list[LiveView]] = {}  # the groups with more than one view here
        for view in targets:
            members = self._by_group.get(view.group.id)
            if members is None or len(members) > 1:
                several.setdefault(view.group.id, []).append(view)
        self.metrics.publishes_sent.inc(len(targets))  # counted per receiving connection, as it is queued
        self.fan_out.start(action, self._group_runs(targets, several, action, data, commit, once))

    def _group_runs(
        self,
        targets: list[LiveView],
        several: dict[str, list[LiveView]],
        action: str,
        data: dict[str, Any],
        commit: bool,
        once: str | None,
    ) -> Iterator[_GroupRun]:
        """The broadcast's part of each session group, in the order of its first view, made as
        the fan-out takes them. PERF: made all at once, a broadcast's thousands of them outlived
        young-generation collections and were walked again by the older generations'."""
        for view in targets:
            group_views = several.get(view.group.id) if several else None
            if group_views is None:
                yield _GroupRun(self, [view], action, data, commit, once)
            elif group_views[0] is view:  # the group's views run one after the other, at its first
                yield _GroupRun(self, group_views, action, data, commit, once)

    def _deliver_at_once(
        self, views: list[LiveView], action: str, data: dict[str, Any], commit: bool
    ) -> Coroutine[Any, Any, None] | None:
        """:meth:`_deliver_group` as plain calls while its runs wait for nothing (see
        :meth:`LiveView.push_at_once`): None once done, else the coroutine that does the rest."""
        for index, view in enumerate(views):
            reply = view.push_at_once(action, data, commit, self._keeping_up)
            if reply is None:
                return self._deliver_group(views[index:], action, data, commit, None)
            outcome = reply.outcome
            if not self.settle_at_once(view, outcome, views[index + 1 :] if len(views) > 1 else ()):
                return self._deliver_group(views[index:], action, data, commit, None, reply)
            if view.outbox is not None:
                view.outbox.put(reply.frames)
            if outcome is not None and outcome.committed is not None:
                commit = False
        return None

    async def _deliver_group(
        self,
        views: list[LiveView],
        action: str,
        data: dict[str, Any],
        commit: bool,
        once: str | None,
        pushed: Reply | None = None,
    ) -> None:
        """Run ``action`` on each of ``views`` in turn (``pushed``: the first one's run, made already)."""
        for index, view in enumerate(views):
            if index == 0 and pushed is not None:
                reply = pushed
            else:
                reply = await view.push(action, data, commit=commit, once=once, render=self._keeping_up)
            if view.outbox is not None:
                view.outbox.put(reply.frames)
            if reply.outcome is not None and reply.outcome.success:
                commit = commit and reply.outcome.committed is None
                try:
                    await self.settle(view, reply.outcome, running=views[index + 1 :] if len(views) > 1 else ())
                except BroadcastUnavailable as exc:  # the page would go stale unseen
                    if view.outbox is not None:
                        view.outbox.socket.unsubscribed(exc)
            elif self._early and view in self._early:  # a failed run leaves the topics it joined
                await self.sync_topics(view)

    # -- other instances ------------------------------------------------------------------------------

    def _group_channel(self, group_id: str) -> str:
        return f"{GROUP_CHANNEL}{self.namespace}:{group_id}"

    async def _send(
        self,
        channel: str,
        target: str,
        kind: str,
        *,
        action: str = "",
        data: dict[str, Any] | None = None,
        snapshot: Snapshot | None = None,
        commit: bool = True,
        envelope_id: str | None = None,
    ) -> None:
        """Tell the other instances, on ``channel`` (callers first ask :meth:`_others_listen`)."""
        envelope = Envelope(
            kind,
            target,
            self.instance_id,
            envelope_id or self._new_id(),
            action,
            data or {},
            snapshot.data if snapshot is not None else None,
            snapshot.version if snapshot is not None else 0,
            commit,
        )
        try:
            await self.broadcaster.publish(channel, _encode(envelope))
        except Exception as exc:
            logger.warning("publishing on %r failed: %s", channel, exc)
            self.metrics.errors.labels("broadcast_publish").inc()

    async def _on_envelope(self, message: bytes) -> None:
        try:
            envelope = _decode(message)
        except msgspec.DecodeError:
            logger.warning("dropped an undecodable message from the broadcaster")
            self.metrics.errors.labels("broadcast_decode").inc()
            return
        if envelope.origin == self.instance_id or self._delivered_before(envelope.id):
            return
        if envelope.kind == "topic":
            self._deliver(
                self._by_topic.get(envelope.target, ()), envelope.action, envelope.data, once=envelope.id or None
            )
        elif envelope.kind == "push":
            self._deliver(self.views_of(envelope.target), envelope.action, envelope.data, commit=envelope.commit)
        elif envelope.kind == "commit" and envelope.snapshot is not None:
            snapshot = Snapshot(envelope.snapshot, envelope.version)
            if self.groups.replace(envelope.target, snapshot) is not None:
                self._refresh(envelope.target)
        else:
            logger.warning("dropped a broadcaster message of unknown kind %r", envelope.kind)

    def overruled(self, key: str) -> None:
        """The store dropped this instance's change of a group (its write-back after an outage
        found another instance's newer change): its tabs here take the store's state."""
        group = self.groups.overrule(key)
        if group is not None and group.id in self._by_group:
            self.spawn(self._reread(group.id))

    def _new_id(self) -> str:
        """An id for an envelope, unique across instances."""
        return f"{self.instance_id}:{next(self._ids)}"

    def _delivered_before(self, envelope_id: str) -> bool:
        if not envelope_id:
            return False
        if envelope_id in self._seen:
            return True
        self._seen[envelope_id] = None
        if len(self._seen) > 4096:
            self._seen.popitem(last=False)
        return False

    async def resync(self, why: str = "messages of other instances may be lost") -> None:
        """Read every group with a view here again and bring the views up to date,
        ``RESYNC_BATCH`` groups at a time: messages from other instances may have been missed
        (the broadcaster lost its connection, or fell behind and dropped some), or their time
        to live in the store runs on (``why`` says which, in the log). Groups the store cannot
        be read for are tried again, ``RESYNC_RETRY`` seconds later, then twice as long each
        time (at most ``RESYNC_RETRY_MAX``)."""
        pending = list(self._by_group)
        if not pending:
            return
        logger.info("resynchronising %d session groups: %s", len(pending), why)
        delay = RESYNC_RETRY
        while True:
            unread = []
            for start in range(0, len(pending), RESYNC_BATCH):  # read together: one round trip, not one each
                batch = pending[start : start + RESYNC_BATCH]
                read = await asyncio.gather(*(self._reread(group_id) for group_id in batch))
                unread += [group_id for group_id, done in zip(batch, read, strict=True) if not done]
            if not unread:
                return
            logger.warning(
                "resynchronising: the session store could not be read for %d groups; trying again in %.1f s",
                len(unread),
                delay,
            )
            await asyncio.sleep(delay)
            pending, delay = unread, min(delay * 2, RESYNC_RETRY_MAX)

    async def _reread(self, group_id: str) -> bool:
        """Read a group served here again and refresh its tabs; False when the store could not
        be read (the group stays marked stale), or serves from its fallback: that knows
        nothing of what other instances changed meanwhile."""
        group = self.groups.find(group_id)
        if group is None or group_id not in self._by_group:  # no longer served here
            return True
        if self.groups.degraded:
            group.stale = True
            return False
        try:
            await self.groups.reload(group)
        except StoreUnavailable:
            return False
        self._refresh(group_id)
        return True

    def _read_again(self) -> None:
        if self._reading_again is None or self._reading_again.done():  # not one more while the store is down
            why = "their time to live in the session store runs on while their tabs are open"
            self._reading_again = self._start(self.resync(why))

    # -- tasks ----------------------------------------------------------------------------------------

    def spawn(self, coroutine: Coroutine[Any, Any, Any]) -> None:
        """Run ``coroutine`` in the background; its failure is logged."""
        self._start(coroutine)

    def _start(self, coroutine: Coroutine[Any, Any, Any]) -> asyncio.Task[Any]:
        task = asyncio.get_running_loop().create_task(coroutine)
        self._tasks.add(task)
        task.add_done_callback(self._task_done)
        return task

    def _task_done(self, task: asyncio.Task[Any]) -> None:
        self._tasks.discard(task)
        if not task.cancelled() and task.exception() is not None:
            logger.error("background task failed", exc_info=task.exception())

    async def close(self) -> None:
        """Stop background work."""
        if self._keep_alive is not None:
            await self._keep_alive.stop()
        for task in list(self._tasks):
            task.cancel()
        await asyncio.gather(*self._tasks, return_exceptions=True)
        # An early subscription's task cancelled before it ran never settles: its waiters (a
        # tab leaving) fail as if it had, rather than wait for ever.
        for pending in self._subscribing.values():
            pending.done.set()
