"""The chat example across two instances (uvicorn processes) over one Redis server, in headless
Chromium with the official client: messages, the room's history and its member count reach
the tabs of both instances; rooms keep apart; a tab moving to another room moves its presence."""

from __future__ import annotations

from collections.abc import Callable

import pytest
from playwright.async_api import Browser, Page, expect

from tests.integration.instances import Instances, open_page
from tests.integration.redis_servers import Standalone

pytestmark = pytest.mark.anyio

CHAT = "examples.chat.app:create_app"


async def say(page: Page, text: str) -> None:
    await page.fill("#send input[name=text]", text)
    await page.click("#send button[name=send]")


async def call_me(page: Page, name: str) -> None:
    await page.fill("#name input[name=name]", name)
    await page.click("#name button[name=set_name]")
    await expect(page.locator("#name input[name=name]")).to_have_value(name)


async def test_the_chat_across_two_instances(
    launch: Callable[..., Instances], standalone: Standalone, prefix: str, chromium: Browser
) -> None:
    backend = f"{standalone.url}?key_prefix={prefix}&channel_prefix={prefix}"
    site = launch(CHAT, backend=backend, rooms_prefix=prefix)
    a, b = await site.start(), await site.start()

    alice = await open_page(chromium, a.url + "?room=python")
    await call_me(alice, "alice")
    await expect(alice.locator("#members")).to_have_text("1 online")
    bob = await open_page(chromium, b.url + "?room=python")
    carol = await open_page(chromium, b.url + "?room=random")
    for page in (alice, bob):
        await expect(page.locator("#members")).to_have_text("2 online")
    await expect(carol.locator("#members")).to_have_text("1 online")

    await say(alice, "hello from A")
    await expect(bob.locator("#messages li b")).to_have_text(["alice"])
    await expect(bob.locator("#messages li span")).to_have_text(["hello from A"])
    await call_me(bob, "bob")
    await say(bob, "hi from B")
    for page in (alice, bob):
        await expect(page.locator("#messages li b")).to_have_text(["alice", "bob"])
        await expect(page.locator("#messages li span")).to_have_text(["hello from A", "hi from B"])
    await expect(carol.locator("#messages li")).to_have_count(0)
    await expect(carol.locator(".empty")).to_have_text("No messages in #random yet.")

    dave = await open_page(chromium, a.url + "?room=python")  # joins later: the room's history
    await expect(dave.locator("#messages li span")).to_have_text(["hello from A", "hi from B"])
    for page in (alice, bob, dave):
        await expect(page.locator("#members")).to_have_text("3 online")

    await bob.context.close()  # bob leaves (his instance announces it)
    for page in (alice, dave):
        await expect(page.locator("#members")).to_have_text("2 online")

    await alice.click("nav a[href='?room=random']")  # a same-page link: the tab changes rooms
    await expect(alice.locator("h1")).to_have_text("#random")
    for page, count in ((alice, 2), (carol, 2), (dave, 1)):
        await expect(page.locator("#members")).to_have_text(f"{count} online")
    await say(carol, "anyone here?")  # carol has no name yet: refused, and told why
    await expect(carol.locator("#name-error")).to_have_text("Please choose a name first.")
    await call_me(carol, "carol")
    await say(carol, "anyone in random?")
    await expect(alice.locator("#messages li span")).to_have_text(["anyone in random?"])
    await expect(dave.locator("#messages li")).to_have_count(2)
    for page in (alice, carol, dave):
        await page.context.close()
