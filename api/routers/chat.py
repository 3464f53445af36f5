"""ChatOps endpoints: Slack (commands, interactions, events), Mattermost commands, and a plain bot query.

Every channel runs the same command (``api.chat.commands``) and renders the same answer.

- ``POST /api/v1/chat/query`` (bearer, ``read``): ``{"text": "incident INC-7"}`` -> the answer as
  JSON. The token is the identity: ``write`` may act, ``admin`` may also approve.
- ``POST /api/v1/chat/slack/commands|interactions|events``: verified with Slack's v0 signature
  (slack_sdk's ``SignatureVerifier``, ``OPSLOOP_SLACK_SIGNING_SECRET``, timestamp within 5 min);
  anything else is a 401 and runs nothing. A command answers within Slack's 3 s: when it takes
  longer the reply says so and the answer goes to ``response_url``. Button clicks answer at once
  and post the updated incident to ``response_url``. Events: ``url_verification`` is answered,
  a delivery carrying ``X-Slack-Retry-Num`` or an ``event_id`` already seen runs nothing, and an
  ``app_mention`` is answered in its thread by ``chat.postMessage`` (``OPSLOOP_SLACK_BOT_TOKEN``).
- ``POST /api/v1/chat/mattermost/commands``: verified by the command token
  (``OPSLOOP_MATTERMOST_TOKEN``, constant-time compare).

Chat users act with the role ``OPSLOOP_CHAT_USERS`` maps them to (``api.chat.users``); unknown
users may read only.
"""

from __future__ import annotations

import asyncio
import hmac
import json
import logging
import re
from collections import OrderedDict
from collections.abc import Callable
from typing import Any
from urllib.parse import parse_qs

import httpx
from fastapi import APIRouter, Depends, Request
from fastapi.responses import JSONResponse, Response
from pydantic import BaseModel, Field
from slack_sdk import WebClient
from slack_sdk.errors import SlackClientError
from slack_sdk.signature import SignatureVerifier
from starlette.concurrency import run_in_threadpool

from api.auth import credentials, require
from api.chat.commands import Answer, Caller, Services, run
from api.chat.render import mattermost_response, slack_blocks, slack_response
from api.chat.users import Role, UserDirectory
from api.common import actor_of
from core.errors import AuthError, SchemaError
from core.settings import Settings

router = APIRouter(tags=["chat"])
log = logging.getLogger(__name__)

#: How long a Slack command may run before the reply defers to ``response_url`` (Slack allows 3 s).
SLACK_DEADLINE_S = 2.0
_MENTION = re.compile(r"<@[A-Z0-9]+(?:\|[^>]*)?>")
_SEEN_EVENTS_MAX = 10_000


class ChatQuery(BaseModel):
    """A command line for ``POST /api/v1/chat/query``, and optionally the channel it came from."""

    text: str = Field(max_length=4000)
    channel: str = Field(default="", max_length=200)


# ------------------------------------------------------------------ shared


def _settings(request: Request) -> Settings:
    settings: Settings = request.app.state.settings
    return settings


def _services(request: Request) -> Services:
    state = request.app.state
    slos = getattr(state, "slos", None)
    return Services(
        store=state.store,
        pipeline=getattr(state, "incidents", None),
        slo_specs=(lambda: slos.specs) if slos is not None else (lambda: ()),
        approvals=_approvals(request),
    )


def _approvals(request: Request) -> Callable[[str, bool, str], tuple[str, str]] | None:
    """Resolve's executor decides runbook approvals, when this server runs one."""
    remediation = getattr(getattr(request.app.state, "loop", None), "remediation", None)
    if remediation is None:
        return None
    executor = remediation.executor

    def decide(action_id: str, approve: bool, by: str) -> tuple[str, str]:
        row = executor.approve(action_id, by) if approve else executor.reject(action_id, by)
        return str(row.status), str(row.incident_id)

    return decide


def _directory(request: Request) -> UserDirectory:
    directory: UserDirectory | None = getattr(request.app.state, "chat_users", None)
    if directory is None:
        directory = UserDirectory(_settings(request).chat_users)
        request.app.state.chat_users = directory
    return directory


def _caller(
    request: Request, platform: str, user_id: str, user_name: str, channel_id: str, channel_name: str
) -> Caller:
    user = _directory(request).get(platform, user_id)
    role = user.role_in(channel_id, channel_name) if user else Role.VIEWER
    return Caller(platform, user_id, (user.name if user else "") or user_name, channel_id, channel_name, role)


async def _answer(request: Request, who: Caller, text: str) -> Answer:
    return await run_in_threadpool(run, _services(request), who, text)


def _keep(request: Request, task: asyncio.Task[None]) -> None:
    """Hold a reference to a background task until it ends (asyncio keeps only weak ones)."""
    tasks: set[asyncio.Task[None]] | None = getattr(request.app.state, "chat_tasks", None)
    if tasks is None:
        tasks = set()
        request.app.state.chat_tasks = tasks
    tasks.add(task)
    task.add_done_callback(tasks.discard)


async def _post_response_url(url: str, message: dict[str, Any]) -> None:
    try:
        async with httpx.AsyncClient(timeout=10) as client:
            resp = await client.post(url, json=message)
        if resp.status_code >= 300:
            log.warning("response_url answered HTTP %s: %s", resp.status_code, resp.text[:200])
    except httpx.HTTPError as exc:
        log.warning("response_url post failed: %s", exc)


# ------------------------------------------------------------------ bot query


@router.post("/api/v1/chat/query", dependencies=[Depends(require("read"))])
async def query(request: Request, body: ChatQuery) -> dict[str, Any]:
    """Run one command as the token's owner and answer it as JSON (``facts`` + ``text``)."""
    role = Role.APPROVER
    if _settings(request).auth:
        scopes = request.app.state.tokens.scopes(credentials(request) or "") or frozenset()
        role = Role.APPROVER if "admin" in scopes else Role.RESPONDER if "write" in scopes else Role.VIEWER
    name = await run_in_threadpool(actor_of, request)
    who = Caller("api", name, name, body.channel, body.channel, role)
    return (await _answer(request, who, body.text)).to_wire()


# ------------------------------------------------------------------ Slack


async def _slack_body(request: Request) -> bytes:
    """The raw body, once its v0 signature checks out; ``AuthError`` (401) otherwise."""
    secret = _settings(request).slack_signing_secret.get_secret_value()
    if not secret.strip():
        raise AuthError("Slack is not configured: set OPSLOOP_SLACK_SIGNING_SECRET")
    body = await request.body()
    stamp = request.headers.get("x-slack-request-timestamp", "")
    signature = request.headers.get("x-slack-signature")
    if not stamp.isdigit() or not SignatureVerifier(secret).is_valid(body, stamp, signature):
        raise AuthError("Slack signature missing, wrong or older than 5 minutes")
    return body


def _form(body: bytes) -> dict[str, str]:
    return {k: v[0] for k, v in parse_qs(body.decode("utf-8", "replace"), keep_blank_values=True).items()}


@router.post("/api/v1/chat/slack/commands")
async def slack_command(request: Request) -> Response:
    """A slash command: the answer within 3 s, or a 'working on it' and the answer to ``response_url``."""
    form = _form(await _slack_body(request))
    who = _caller(request, "slack", form.get("user_id", ""), form.get("user_name", ""),
                  form.get("channel_id", ""), form.get("channel_name", ""))  # fmt: skip
    task = asyncio.ensure_future(_answer(request, who, form.get("text", "")))
    done, _ = await asyncio.wait({task}, timeout=SLACK_DEADLINE_S)
    if done:
        return JSONResponse(slack_response(task.result()))
    url = form.get("response_url", "")

    async def later() -> None:
        answer = await task
        if url:
            await _post_response_url(url, slack_response(answer))

    _keep(request, asyncio.ensure_future(later()))
    return JSONResponse({"response_type": "ephemeral", "text": "Working on it; the answer follows here."})


@router.post("/api/v1/chat/slack/interactions")
async def slack_interaction(request: Request) -> Response:
    """A Block Kit button: run its command now, then post the updated incident to ``response_url``."""
    form = _form(await _slack_body(request))
    try:
        payload = json.loads(form.get("payload", ""))
        actions = payload.get("actions") or []
        command, _, value = str(actions[0].get("action_id", "")).partition(":")
    except (ValueError, IndexError, AttributeError) as exc:
        raise SchemaError("payload", "expected a Slack block_actions payload") from exc
    user = payload.get("user") or {}
    channel = payload.get("channel") or {}
    who = _caller(request, "slack", str(user.get("id", "")), str(user.get("username") or user.get("name") or ""),
                  str(channel.get("id", "")), str(channel.get("name", "")))  # fmt: skip
    url = str(payload.get("response_url", ""))
    value = str(actions[0].get("value") or value)

    async def act() -> None:
        answer = await _answer(request, who, f"{command} {value}")
        blocks = slack_blocks(answer)
        if answer.ok and value:
            blocks += slack_blocks(await _answer(request, who, f"incident {value}"))
        message = {"replace_original": answer.ok, "response_type": "ephemeral" if not answer.ok else "in_channel",
                   "text": answer.title, "blocks": [b.to_dict() for b in blocks]}  # fmt: skip
        if url:
            await _post_response_url(url, message)

    _keep(request, asyncio.ensure_future(act()))
    return Response(status_code=200)


def _seen(request: Request, event_id: str) -> bool:
    """Whether this event id was taken before (and remember it)."""
    seen: OrderedDict[str, None] | None = getattr(request.app.state, "slack_events", None)
    if seen is None:
        seen = OrderedDict()
        request.app.state.slack_events = seen
    if event_id in seen:
        return True
    seen[event_id] = None
    while len(seen) > _SEEN_EVENTS_MAX:
        seen.popitem(last=False)
    return False


@router.post("/api/v1/chat/slack/events")
async def slack_event(request: Request) -> Response:
    """Events API: the URL challenge, and ``app_mention`` answered in the mention's thread (once)."""
    body = await _slack_body(request)
    try:
        envelope = json.loads(body)
    except ValueError as exc:
        raise SchemaError("body", "expected a Slack Events API JSON envelope") from exc
    if not isinstance(envelope, dict):
        raise SchemaError("body", "expected a Slack Events API JSON envelope")
    if envelope.get("type") == "url_verification":
        return JSONResponse({"challenge": str(envelope.get("challenge", ""))})
    # a retry means our first answer was slow or lost: the first delivery already ran it
    if request.headers.get("x-slack-retry-num") or _seen(request, str(envelope.get("event_id") or "")):
        return JSONResponse({"ok": True, "duplicate": True})
    event = envelope.get("event") or {}
    if envelope.get("type") != "event_callback" or event.get("type") != "app_mention":
        return JSONResponse({"ok": True})
    who = _caller(request, "slack", str(event.get("user", "")), "", str(event.get("channel", "")), "")
    text = _MENTION.sub("", str(event.get("text", ""))).strip()
    settings = _settings(request)
    token = settings.slack_bot_token.get_secret_value()

    async def reply() -> None:
        answer = await _answer(request, who, text)
        if not token:
            log.warning("app_mention answered nowhere: set OPSLOOP_SLACK_BOT_TOKEN")
            return
        client = WebClient(token=token, base_url=settings.slack_api_url, timeout=10)
        thread = str(event.get("thread_ts") or event.get("ts") or "")
        try:
            await run_in_threadpool(
                client.chat_postMessage, channel=who.channel_id, thread_ts=thread or None,
                text=answer.title, blocks=slack_blocks(answer),
            )  # fmt: skip
        except (SlackClientError, OSError) as exc:
            log.warning("chat.postMessage failed: %s", exc)

    _keep(request, asyncio.ensure_future(reply()))
    return JSONResponse({"ok": True})


# ------------------------------------------------------------------ Mattermost


@router.post("/api/v1/chat/mattermost/commands")
async def mattermost_command(request: Request) -> Response:
    """A Mattermost slash command, verified by its token; the answer as markdown."""
    expected = _settings(request).mattermost_token.get_secret_value()
    form = _form(await request.body())
    given = form.get("token", "")
    if not expected.strip() or not hmac.compare_digest(given.encode(), expected.encode()):
        raise AuthError("Mattermost command token missing or wrong")
    who = _caller(request, "mattermost", form.get("user_id", ""), form.get("user_name", ""),
                  form.get("channel_id", ""), form.get("channel_name", ""))  # fmt: skip
    return JSONResponse(mattermost_response(await _answer(request, who, form.get("text", ""))))
