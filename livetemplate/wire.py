"""Names of the LiveTemplate wire protocol, defined once: the tree, the frames and their
meta, the client's messages and control actions, cookies, hooks and channels.

The tree format is what ``@livetemplate/client`` 0.25.x consumes: a node is an object whose
``"s"`` holds the statics and whose numeric keys ``"0"``, ``"1"``, ... hold the dynamic slots;
a range (a loop) holds its item statics in ``"s"``, its items in ``"d"``, an optional
``"m"`` with ``"idKey"``, and an optional ``"else"`` node; each item carries its key in
``"_k"``. Updates to a range are lists of operations.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Annotated, Any, Final

import msgspec

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

#: Key of ``meta.errors`` for an error that is not about one form field, and for a message
#: refused because the connection sends too many.
GENERAL_ERROR: Final = "_general"
RATE_LIMIT_ERROR: Final = "_rate_limit"

# -- messages from the client -----------------------------------------------------------------

#: Control actions: a heartbeat (answered with ``PONG``, nothing runs) and a same-page
#: navigation (``mount`` runs again with the new query).
PING: Final = "__ping__"
NAVIGATE: Final = "__navigate__"
PONG: Final = b'{"pong":true}'
#: Upload messages (section 1.9 of the protocol); their fields sit at the top level.
UPLOAD_START: Final = "upload_start"
UPLOAD_CHUNK: Final = "upload_chunk"
UPLOAD_COMPLETE: Final = "upload_complete"
CANCEL_UPLOAD: Final = "cancel_upload"
UPLOAD_ACTIONS: Final = frozenset({UPLOAD_START, UPLOAD_CHUNK, UPLOAD_COMPLETE, CANCEL_UPLOAD})
#: The server's progress message, and the header of the client's upload requests over HTTP
#: (``start``, ``complete``, ``proxied``).
UPLOAD_PROGRESS: Final = "upload_progress"
UPLOAD_HEADER: Final = "x-lvt-upload"


class Incoming(msgspec.Struct):
    """A client message: ``{"action": ..., "data": {...}, "submitter": ...}``."""

    action: str
    data: dict[str, Any] | None = None
    submitter: str | None = None


_Count = Annotated[int, msgspec.Meta(ge=0)]


class FileInfo(msgspec.Struct):
    """A file the client is about to upload, as ``upload_start`` describes it."""

    name: str
    type: str = ""
    size: _Count = 0


class UploadedRef(msgspec.Struct):
    """A file the client put into external storage itself (``upload_complete`` over HTTP)."""

    client_name: str
    type: str = ""
    size: _Count = 0
    ref: str = ""


class UploadStart(Incoming):
    upload_name: str = ""
    files: list[FileInfo] = []


class UploadChunk(Incoming):
    entry_id: str = ""
    chunk_base64: bytes = b""  # decoded (and checked) from base64 by the JSON decoder
    offset: _Count = 0
    total: _Count = 0


class UploadComplete(Incoming):
    upload_name: str = ""
    entry_ids: list[str] = []
    entries: list[UploadedRef] = []  # over HTTP, where the server holds no entry


class CancelUpload(Incoming):
    entry_id: str = ""


UploadMessage = UploadStart | UploadChunk | UploadComplete | CancelUpload


class MalformedMessage(ValueError):
    """A client message that is not JSON, or not an action object; says which."""


_decode_incoming = msgspec.json.Decoder(Incoming).decode
_decode_upload = {
    UPLOAD_START: msgspec.json.Decoder(UploadStart).decode,
    UPLOAD_CHUNK: msgspec.json.Decoder(UploadChunk).decode,
    UPLOAD_COMPLETE: msgspec.json.Decoder(UploadComplete).decode,
    CANCEL_UPLOAD: msgspec.json.Decoder(CancelUpload).decode,
}


def decode_incoming(text: str | bytes) -> Incoming:
    """Decode a client message (an upload message into its own type); raises
    :class:`MalformedMessage` with a clear reason."""
    try:
        incoming = _decode_incoming(text)
        decode = _decode_upload.get(incoming.action)
        return incoming if decode is None else decode(text)
    except msgspec.ValidationError as exc:
        raise MalformedMessage(f"malformed message: {exc}") from None
    except msgspec.DecodeError as exc:
        raise MalformedMessage(f"malformed message: not JSON ({exc})") from None
    except RecursionError:
        raise MalformedMessage("malformed message: nested too deeply") from None


# -- lifecycle hooks of a controller ----------------------------------------------------------

HOOK_MOUNT: Final = "mount"  # page load, connect, __navigate__
HOOK_CONNECT: Final = "on_connect"
HOOK_DISCONNECT: Final = "on_disconnect"
HOOKS: Final = frozenset({HOOK_MOUNT, HOOK_CONNECT, HOOK_DISCONNECT})

# -- HTTP ----------------------------------------------------------------------------------------

#: The cookie naming a browser's session group, and the one carrying a flash message
#: across the redirect of a form post.
SESSION_COOKIE: Final = "livetemplate-id"
FLASH_COOKIE: Final = "lvt-flash"
#: Answer to the client's HEAD probe: ``enabled`` or ``disabled``.
WEBSOCKET_HEADER: Final = "x-livetemplate-websocket"
#: Hidden form field carrying the CSRF token of forms posted without JavaScript.
CSRF_FIELD: Final = "_csrf"
#: Form fields that name the action of a plain form post (written by the client or a template).
ACTION_FIELDS: Final = ("lvt-action", "lvt-submitter")
#: Where the client's bundle is served, below the app's path.
ASSET_PREFIX: Final = "/_livetemplate/"

# -- topics and channels ----------------------------------------------------------------------------

#: A session group's own topic is ``SESSION_TOPIC + group id``; the rest of ``lvt:`` is reserved.
RESERVED_TOPICS: Final = "lvt:"
SESSION_TOPIC: Final = "lvt:session:"
#: Broadcaster channels (a shared broadcaster adds its own prefix, ``livetemplate:`` for Redis):
#: ``topic:<topic>`` for a topic, ``group:<app>:<group id>`` for a session group of one app.
TOPIC_CHANNEL: Final = "topic:"
GROUP_CHANNEL: Final = "group:"
#: The error envelope the client dispatches as ``lvt:error``.
ERROR_TYPE: Final = "error"
TOPIC_FORBIDDEN: Final = "topic_forbidden"


#: No action can have a longer name: longer ones are refused before any lookup, and echoed
#: cut to this length in ``meta.action``.
MAX_ACTION_NAME: Final = 128


def meta(
    success: bool,
    errors: Mapping[str, str] | None = None,
    *,
    action: str | None = None,
    capabilities: Sequence[str] = (),
) -> dict[str, Any]:
    """The ``meta`` of an update frame. The action is echoed as the client sent it (it
    matches on it), cut if it is longer than any action name can be."""
    out: dict[str, Any] = {META_SUCCESS: success, META_ERRORS: dict(errors) if errors else {}}
    if action is not None:
        out[META_ACTION] = action[:MAX_ACTION_NAME]
    if capabilities:
        out[META_CAPABILITIES] = list(capabilities)
    return out


def error_meta(detail: str, *, action: str | None = None) -> dict[str, Any]:
    """The ``meta`` of a frame reporting a failure that is not about one field."""
    return meta(False, {GENERAL_ERROR: detail}, action=action)


def topic_forbidden(topic: str) -> bytes:
    """The error envelope for a subscription the topic policy refused."""
    return msgspec.json.encode({"type": ERROR_TYPE, "code": TOPIC_FORBIDDEN, "topic": topic})
