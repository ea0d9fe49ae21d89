"""Uploads over HTTP: the client's upload messages without a socket, its upload POSTs
(``X-Lvt-Upload``), and multipart forms with files, with or without JavaScript."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from ..frames import encode_frame
from ..rendering import error_frame
from ..request import ClientGone, Request
from ..runtime import Runtime
from ..types import Receive
from ..uploads import completion_action
from ..uploads.entries import errors_by_upload
from ..uploads.multipart import BodyRefused
from ..wire import UPLOAD_HEADER, UploadChunk, UploadComplete, UploadMessage, UploadStart, meta
from .http_exchange import HttpExchange, run_request, send_tree, wants_json
from .http_forms import run_form
from .response import Responder

__all__ = ["post_multipart", "post_upload"]


async def post_upload(rt: Runtime, request: Request, group_id: str, message: UploadMessage, respond: Responder) -> None:
    """Upload messages over HTTP (the client's fallbacks without a socket): ``upload_start``
    answers the entries; ``upload_complete`` carries external uploads the browser stored (no
    tab holds their entries); a chunk needs the socket; a cancel has nothing to cancel."""
    if rt.uploads is None:
        await respond.json(400, error_frame("this page declares no uploads", action=message.action))
    elif isinstance(message, UploadStart):
        await respond.json(200, await rt.uploads.start(message, group_id))
    elif isinstance(message, UploadComplete):
        exchange = HttpExchange(request)
        exchange.carry(rt.uploads.complete(message, group_id))
        try:
            await _run_completion(rt, request, group_id, message.upload_name, exchange, respond)
        finally:
            exchange.entries.clear()
    elif isinstance(message, UploadChunk):
        await respond.json(400, error_frame("upload chunks need the WebSocket", action=message.action))
    else:
        await respond.json(200, encode_frame({}, meta(True, action=message.action)))


async def _run_completion(
    rt: Runtime,
    request: Request,
    group_id: str,
    upload: str,
    exchange: HttpExchange,
    respond: Responder,
    data: Mapping[str, Any] | None = None,
) -> None:
    """Run ``upload_<name>_complete`` (when the controller has it) on the request's files,
    and answer the page's tree."""
    action = completion_action(upload)
    runs = rt.runner.actions.find(action) is not None
    await _answer_files(rt, request, group_id, exchange, action, data, respond, run=runs)


async def _answer_files(
    rt: Runtime,
    request: Request,
    group_id: str,
    exchange: HttpExchange,
    action: str,
    data: Mapping[str, Any] | None,
    respond: Responder,
    *,
    run: bool = True,
) -> None:
    """Run ``action`` on the request's files, unless one was refused (then their errors
    answer), and answer the page's tree."""
    refused = errors_by_upload(exchange.entries)
    outcome = await run_request(
        rt, request, exchange, group_id, action=action if run and not refused else None, data=data
    )
    if refused:
        outcome.success, outcome.errors = False, refused
    for cookie in exchange.set_cookies:
        respond.cookie(cookie)
    await send_tree(rt, group_id, outcome, exchange, meta(outcome.success, outcome.errors, action=action), respond)


async def post_multipart(rt: Runtime, request: Request, receive: Receive, respond: Responder) -> None:
    """A multipart form: a form with files posted without JavaScript, the client's post of a
    form with plain file inputs, or its upload POST (``X-Lvt-Upload: proxied``: proxied
    uploads, and volume ones while the socket is down). Files are read as they stream in;
    those no action takes are deleted when the request ends."""
    if rt.uploads is None:
        await respond.text(415, "Unsupported Media Type: this page declares no uploads")
        return
    group_id, new_cookie = rt.ids.of(request, rt.options.cookie_max_age)
    respond.cookie(new_cookie)
    length = request.headers.get("content-length", "")
    try:
        form = await rt.uploads.read_form(
            receive,
            request.headers.get("content-type", ""),
            int(length) if length.isdigit() else None,
            max_fields=rt.options.max_message_size,
            group_id=group_id,
        )
    except ClientGone:
        return
    except BodyRefused as exc:
        await respond.text(exc.status, exc.message)
        return
    exchange = HttpExchange(request)
    exchange.carry(form.entries)
    try:
        if request.headers.get(UPLOAD_HEADER) == "proxied":
            await _upload_post(rt, request, group_id, form.fields, exchange, respond)
        elif wants_json(request):
            await _client_form_post(rt, request, group_id, form.fields, exchange, respond)
        else:
            await run_form(rt, request, group_id, new_cookie, form.fields, exchange, respond)
    finally:
        form.entries.clear()


async def _upload_post(
    rt: Runtime, request: Request, group_id: str, fields: dict[str, Any], exchange: HttpExchange, respond: Responder
) -> None:
    """The client's POST of one upload's file: handed to the tab that announced it, when it
    is open here (its completion action runs there, its update goes over its socket), else
    completed like any HTTP request. The other fields (``lvt-upload-with``) are its data."""
    fields.pop("lvt-action", None)
    arrived = list(exchange.entries)
    uploads = {entry.upload for entry in arrived}
    if len(uploads) != 1:
        await respond.text(400, "Bad Request: an upload POST carries the files of one upload")
        return
    (upload,) = uploads
    for view in rt.hub.views_of(group_id):
        tab = view.uploads
        if tab is None or not any(tab.waiting_for(upload, e.client_name) for e in arrived):
            continue
        for entry in arrived:
            exchange.entries.take(entry)
        reply = await view.arrived(tab.adopt(arrived, fields))
        if view.outbox is not None:
            view.outbox.put(reply.frames)
        await rt.hub.settle(view, reply.outcome)
        errors = errors_by_upload(arrived)
        if errors:
            await respond.text(422, "; ".join(errors.values()))
        else:
            await respond.json(200, encode_frame({}, meta(True, action=completion_action(upload))))
        return
    await _run_completion(rt, request, group_id, upload, exchange, respond, fields)


async def _client_form_post(
    rt: Runtime, request: Request, group_id: str, fields: dict[str, Any], exchange: HttpExchange, respond: Responder
) -> None:
    """The client's post of a form with plain file inputs: its action, the fields as data."""
    action = fields.pop("lvt-action", None)
    submitter = fields.pop("lvt-submitter", None)
    action = action if isinstance(action, str) and action else "submit"
    exchange.submitter = submitter if isinstance(submitter, str) else None
    await _answer_files(rt, request, group_id, exchange, action, fields, respond)
