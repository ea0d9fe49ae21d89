"""The counter app the load harness serves: ``examples/counter`` with every connection
subscribed to the topic ``counter``, so that a publish fans out to all of them. Admission
limits are lifted (the harness opens thousands of connections from a few addresses)."""

from __future__ import annotations

from typing import Any

import livetemplate
from examples.counter.app import TEMPLATE, Counter, CounterController
from livetemplate import Context

TOPIC = "counter"


class BroadcastCounter(CounterController):
    """The counter, listening to the topic that the harness publishes on."""

    def mount(self, state: Counter, ctx: Context) -> Counter:
        ctx.subscribe(TOPIC)
        return state


def create_app(**options: Any) -> livetemplate.LiveApp:
    settings: dict[str, Any] = {
        "open_topics": True,
        "max_connections": None,
        "max_connections_per_group": None,
        "message_rate_limit": None,
    }
    settings.update(options)
    return livetemplate.mount(BroadcastCounter(), Counter(), template=TEMPLATE, **settings)
