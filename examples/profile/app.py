"""Profile: a name and an avatar, uploaded as soon as it is chosen (in chunks over the
WebSocket, with progress; by a multipart POST without the socket; with the form without
JavaScript), checked by type, content and size, and served back from the app's own folder.

    uvicorn examples.profile.app:app
"""

from __future__ import annotations

import re
import secrets
import tempfile
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Annotated

import msgspec

import livetemplate
from livetemplate import Context, FieldError, Persist, Upload
from livetemplate.app import Route
from livetemplate.request import Request
from livetemplate.transports.response import Responder
from livetemplate.types import Receive

#: Where avatars are kept, by type: the name of a stored file is the server's, never the user's.
EXTENSIONS = {"image/png": ".png", "image/jpeg": ".jpg", "image/gif": ".gif", "image/webp": ".webp"}
AVATARS = "/avatars/"
_STORED = re.compile(r"[0-9a-f]{16}\.(png|jpg|gif|webp)")


class Profile(msgspec.Struct):
    name: Annotated[str, Persist] = ""
    avatar: Annotated[str, Persist] = ""  # the stored file's name
    uploads: Annotated[int, Persist] = 0


class ProfileController:
    def __init__(self, folder: Path) -> None:
        self.folder = folder

    def upload_avatar_complete(self, state: Profile, ctx: Context) -> Profile:
        """The avatar arrived (over the WebSocket, or by the client's POST): keep it."""
        return self._take_avatar(state, ctx)

    def save(self, state: Profile, ctx: Context) -> Profile:
        """The form: the name, and (without JavaScript) the avatar posted with it."""
        name = ctx.get_str("name").strip()
        if not name:
            raise FieldError("name", "Please enter your name.")
        if len(name) > 80:
            raise FieldError("name", "At most 80 characters, please.")
        state.name = name
        state = self._take_avatar(state, ctx)
        ctx.set_flash("saved", "Profile saved.")
        return state

    def _take_avatar(self, state: Profile, ctx: Context) -> Profile:
        for file in ctx.uploads("avatar"):
            self.folder.mkdir(parents=True, exist_ok=True)
            stored = f"{secrets.token_hex(8)}{EXTENSIONS[file.content_type]}"
            file.move_to(self.folder / stored)
            state.avatar = stored
            state.uploads += 1
        return state


def create_app(avatar_dir: str | None = None, **options: object) -> livetemplate.LiveApp:
    folder = Path(avatar_dir) if avatar_dir else Path(tempfile.gettempdir()) / "livetemplate-profile-avatars"
    uploads = {
        "avatar": Upload(accept=list(EXTENSIONS), max_entries=1, max_file_size=2 * 1024 * 1024),
    }
    app = livetemplate.mount(
        ProfileController(folder),
        Profile(),
        template=Path(__file__).parent / "templates" / "profile.html",
        uploads=uploads,
        **options,
    )
    app.routes.append(Route(AVATARS, _avatar_files(folder), prefix=True))
    return app


def _avatar_files(folder: Path) -> Callable[[Request, str, Receive, Responder], Awaitable[None]]:
    """Serve the stored avatars: only names this app gave, with their type and ``nosniff``."""
    types = {extension: media for media, extension in EXTENSIONS.items()}

    async def serve(request: Request, method: str, receive: Receive, respond: Responder) -> None:
        name = request.relative_path[len(AVATARS) :]
        path = folder / name
        if method != "GET" or not _STORED.fullmatch(name) or not path.is_file():
            await respond.text(404, "Not Found")
            return
        media = types[path.suffix]
        await respond(200, path.read_bytes(), media, x_content_type_options="nosniff", cache_control="max-age=3600")

    return serve


app = create_app()
