"""ChatOps on a real server: Slack signatures, commands, buttons and events, Mattermost, the bot query.

A local peer on 127.0.0.1 answers as Slack (``response_url`` and ``chat.postMessage``).
"""

from __future__ import annotations

import html
import json
import time
from collections.abc import Iterator
from datetime import timedelta
from typing import Any
from urllib.parse import urlencode

import httpx
import pytest
from slack_sdk.signature import SignatureVerifier

from api.chat.users import ChatUser, Role, save_users
from core.model import IncidentStatus
from core.settings import Settings
from detect.incidents import repository as repo
from tests.api.alerting import incident, seed, utcnow
from tests.api.chatpeer import Peer, slack_peer
from tests.conftest import LiveServer, free_port, serving

SECRET = "8f742231b10e8888abcd99yyyzzz85a5"
MM_TOKEN = "mm-command-token"


@pytest.fixture(scope="module")
def peer() -> Iterator[Peer]:
    with slack_peer() as p:
        yield p


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory, peer: Peer) -> Iterator[LiveServer]:
    root = tmp_path_factory.mktemp("chat")
    users = root / "chat-users.yaml"
    save_users(
        users,
        {
            "slack:UALICE": ChatUser("slack:UALICE", "alice", Role.RESPONDER, ("COPS",)),
            "mattermost:malice": ChatUser("mattermost:malice", "alice", Role.RESPONDER),
        },
    )
    settings = Settings(
        db=str(root / "chat.duckdb"),
        port=free_port(),
        chat_users=users,
        slack_signing_secret=SECRET,  # type: ignore[arg-type]
        slack_bot_token="xoxb-test",  # type: ignore[arg-type]
        slack_api_url=f"{peer.url}/api/",
        mattermost_token=MM_TOKEN,  # type: ignore[arg-type]
    )
    with serving(settings) as live:
        yield live


def signed(body: str, *, at: float | None = None, secret: str = SECRET) -> dict[str, str]:
    stamp = str(int(time.time() if at is None else at))
    signature = SignatureVerifier(secret).generate_signature(timestamp=stamp, body=body)
    assert signature is not None
    return {"X-Slack-Request-Timestamp": stamp, "X-Slack-Signature": signature}


def command_body(text: str, user: str = "UALICE", channel: str = "COPS", response_url: str = "") -> str:
    return urlencode({"command": "/opsloop", "text": text, "user_id": user, "user_name": user.lower(),
                      "channel_id": channel, "channel_name": "ops", "response_url": response_url})  # fmt: skip


def post_form(server: LiveServer, path: str, body: str, headers: dict[str, str]) -> httpx.Response:
    headers = {"content-type": "application/x-www-form-urlencoded", **headers}
    return httpx.post(f"{server.url}{path}", content=body, headers=headers, timeout=10)


def blocks_text(message: dict[str, Any]) -> str:
    """Every text in a Block Kit message, unescaped."""
    out: list[str] = []

    def walk(node: Any) -> None:
        if isinstance(node, dict):
            if isinstance(node.get("text"), str):
                out.append(node["text"])
            for v in node.values():
                walk(v)
        elif isinstance(node, list):
            for v in node:
                walk(v)

    walk(message.get("blocks", []))
    return html.unescape("\n".join(out))


def status_of(server: LiveServer, iid: str) -> IncidentStatus:
    found = repo.incident_by_id(server.store, iid)
    assert found is not None
    return found.status


# ------------------------------------------------------------------ Slack commands and signatures


def test_a_signed_slack_command_answers_within_3s_with_real_incident_ids(server: LiveServer) -> None:
    now = utcnow()
    seed(server.store, [incident("CH-1", now - timedelta(minutes=5), "checkout"),
                        incident("CH-2", now - timedelta(minutes=2), "checkout", priority="P1")])  # fmt: skip
    body = command_body("incidents open checkout")
    started = time.monotonic()
    resp = post_form(server, "/api/v1/chat/slack/commands", body, signed(body))
    assert time.monotonic() - started < 3.0
    assert resp.status_code == 200, resp.text
    message = resp.json()
    assert message["blocks"][0]["type"] == "section"
    text = blocks_text(message)
    assert "CH-1" in text and "CH-2" in text and "2 open incidents on checkout" in text
    actions = [b for b in message["blocks"] if b["type"] == "actions"]
    assert {e["value"] for e in actions[0]["elements"]} == {"CH-1", "CH-2"}


@pytest.mark.parametrize(
    "headers",
    [
        lambda body: {**signed(body), "X-Slack-Signature": "v0=" + "0" * 64},
        lambda body: {},
        lambda body: {k: v for k, v in signed(body).items() if k != "X-Slack-Signature"},
        lambda body: signed(body, at=time.time() - 360),
        lambda body: signed(body, secret="another-secret"),
        lambda body: {**signed(body), "X-Slack-Request-Timestamp": "soon"},
    ],
    ids=["wrong-signature", "no-headers", "no-signature", "six-minutes-old", "other-secret", "bad-timestamp"],
)
def test_unverified_slack_requests_get_401_and_change_nothing(server: LiveServer, headers: Any) -> None:
    seed(server.store, [incident("CH-401", utcnow(), "guarded")])
    for path, body in [
        ("/api/v1/chat/slack/commands", command_body("ack CH-401")),
        ("/api/v1/chat/slack/interactions", interaction_body("CH-401", "")),
    ]:
        resp = post_form(server, path, body, headers(body))
        assert resp.status_code == 401, resp.text
    time.sleep(0.2)  # an executed button would act in the background
    assert status_of(server, "CH-401") is IncidentStatus.OPEN
    assert not any(e.kind == "status" for e in repo.timeline_of(server.store, "CH-401"))


def test_a_replayed_body_with_a_new_timestamp_fails_the_signature(server: LiveServer) -> None:
    seed(server.store, [incident("CH-RE", utcnow(), "replayed")])
    body = command_body("ack CH-RE", channel="CELSEWHERE")
    old = signed(body, at=time.time() - 120)
    assert post_form(server, "/api/v1/chat/slack/commands", body, old).status_code == 200
    replay = {**old, "X-Slack-Request-Timestamp": str(int(time.time()))}
    assert post_form(server, "/api/v1/chat/slack/commands", body, replay).status_code == 401


def test_acting_needs_a_mapped_user_in_their_channel(server: LiveServer) -> None:
    seed(server.store, [incident("CH-RO", utcnow(), "readonly")])
    for user, channel in [("UNKNOWN", "COPS"), ("UALICE", "CRANDOM")]:
        body = command_body("ack CH-RO", user=user, channel=channel)
        message = post_form(server, "/api/v1/chat/slack/commands", body, signed(body)).json()
        assert "needs the responder role" in blocks_text(message)
        assert "usage: `ack ID`" in blocks_text(message)
    assert status_of(server, "CH-RO") is IncidentStatus.OPEN
    body = command_body("ack CH-RO")
    message = post_form(server, "/api/v1/chat/slack/commands", body, signed(body)).json()
    assert "CH-RO is acknowledged" in blocks_text(message)
    assert status_of(server, "CH-RO") is IncidentStatus.ACKNOWLEDGED
    entry = [e for e in repo.timeline_of(server.store, "CH-RO") if e.kind == "status"][-1]
    assert entry.actor == "alice via slack #ops"


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("frobnicate", "unknown command 'frobnicate'"),
        ("incident", "missing the incident id"),
        ("incident NOPE-1", "incident 'NOPE-1' not found"),
        ("silence service=db soon", "expected a duration"),
        ("silence service 2h", "is not name=value"),
        ("approve ACT-1", "needs the approver role"),
        ('note "unbalanced', "missing the incident id and the text"),
    ],
    ids=["unknown", "missing-id", "not-found", "bad-duration", "bad-matcher", "role", "quote"],
)
def test_errors_say_what_was_wrong_never_a_traceback(server: LiveServer, text: str, expected: str) -> None:
    body = command_body(text)
    resp = post_form(server, "/api/v1/chat/slack/commands", body, signed(body))
    assert resp.status_code == 200
    shown = blocks_text(resp.json())
    assert expected in shown and "Traceback" not in shown and "usage:" in shown


# ------------------------------------------------------------------ buttons and events


def interaction_body(iid: str, response_url: str, user: str = "UALICE") -> str:
    payload = {"type": "block_actions", "user": {"id": user, "username": user.lower()},
               "channel": {"id": "COPS", "name": "ops"}, "response_url": response_url,
               "actions": [{"action_id": f"ack:{iid}", "value": iid, "type": "button"}]}  # fmt: skip
    return urlencode({"payload": json.dumps(payload)})


def test_the_ack_button_acknowledges_and_posts_the_update_to_response_url(
    server: LiveServer, peer: Peer
) -> None:
    seed(server.store, [incident("CH-BTN", utcnow(), "buttons")])
    body = interaction_body("CH-BTN", f"{peer.url}/respond/btn")
    resp = post_form(server, "/api/v1/chat/slack/interactions", body, signed(body))
    assert resp.status_code == 200
    [posted] = peer.wait("/respond/btn")
    assert posted["replace_original"] is True
    assert "CH-BTN is acknowledged" in blocks_text(posted) and "status acknowledged" in blocks_text(posted)
    assert status_of(server, "CH-BTN") is IncidentStatus.ACKNOWLEDGED


def test_events_url_verification_and_a_mention_answered_once_despite_retries(
    server: LiveServer, peer: Peer
) -> None:
    challenge = json.dumps(
        {"type": "url_verification", "challenge": "3eZbrw1aBm2rZgRNFdxV2595E9CY3gmdALWMmHkvFXO7tYXAYM8P"}
    )
    resp = httpx.post(f"{server.url}/api/v1/chat/slack/events", content=challenge, headers=signed(challenge))
    assert resp.json() == {"challenge": "3eZbrw1aBm2rZgRNFdxV2595E9CY3gmdALWMmHkvFXO7tYXAYM8P"}
    seed(server.store, [incident("CH-EV", utcnow(), "mentioned")])
    event = json.dumps({"type": "event_callback", "event_id": "Ev0MENTION", "event": {
        "type": "app_mention", "user": "UALICE", "channel": "CEVENTS", "ts": "1700000001.000200",
        "text": "<@UBOT> incidents open mentioned"}})  # fmt: skip
    url = f"{server.url}/api/v1/chat/slack/events"
    assert httpx.post(url, content=event, headers=signed(event)).status_code == 200
    retry = {**signed(event), "X-Slack-Retry-Num": "1", "X-Slack-Retry-Reason": "http_timeout"}
    assert httpx.post(url, content=event, headers=retry).json()["duplicate"] is True
    assert httpx.post(url, content=event, headers=signed(event)).json()["duplicate"] is True
    [posted] = peer.wait("/api/chat.postMessage")
    time.sleep(0.3)
    assert len([b for p, b in peer.received if p == "/api/chat.postMessage"]) == 1
    assert posted["channel"] == "CEVENTS" and posted["thread_ts"] == "1700000001.000200"
    assert "CH-EV" in blocks_text(posted)


# ------------------------------------------------------------------ Mattermost and the bot query


def test_mattermost_needs_its_token(server: LiveServer) -> None:
    for token in ["", "wrong"]:
        body = urlencode({"token": token, "text": "status", "user_id": "malice"})
        assert post_form(server, "/api/v1/chat/mattermost/commands", body, {}).status_code == 401


def test_the_same_question_gives_the_same_facts_on_every_channel(server: LiveServer) -> None:
    seed(server.store, [incident("CH-SAME", utcnow() - timedelta(minutes=1), "samefacts", priority="P2")])
    for text in [
        "incident CH-SAME",
        "incidents all samefacts",
        "status",
        "slo samefacts",
        "changes samefacts 1h",
    ]:
        body = command_body(text)
        slack = blocks_text(post_form(server, "/api/v1/chat/slack/commands", body, signed(body)).json())
        mm_body = urlencode({"token": MM_TOKEN, "text": text, "user_id": "malice", "user_name": "alice",
                             "channel_id": "town", "channel_name": "town-square"})  # fmt: skip
        mattermost = post_form(server, "/api/v1/chat/mattermost/commands", mm_body, {}).json()["text"]
        with server.client() as client:
            answer = client.post("/api/v1/chat/query", json={"text": text}).json()
        assert answer["ok"], answer
        for line in [answer["title"], *answer["lines"]]:
            assert line in slack, (text, line)
            assert line in mattermost, (text, line)
    assert answer["facts"]["changes"] == []  # the last question was "changes": none stored


def test_the_query_endpoint_needs_a_token_and_acts_as_its_owner(server: LiveServer) -> None:
    assert httpx.post(f"{server.url}/api/v1/chat/query", json={"text": "status"}).status_code == 401
    seed(server.store, [incident("CH-API", utcnow(), "bot")])
    with server.client() as client:
        answer = client.post(
            "/api/v1/chat/query", json={"text": "note CH-API checked the pool", "channel": "bots"}
        ).json()
    assert answer["ok"] and answer["facts"]["by"] == "tests via api #bots"
    note = [e for e in repo.timeline_of(server.store, "CH-API") if e.kind == "note"][-1]
    assert (note.actor, note.text) == ("tests via api #bots", "checked the pool")


def test_a_slow_answer_goes_to_response_url(
    server: LiveServer, peer: Peer, monkeypatch: pytest.MonkeyPatch
) -> None:
    import api.routers.chat as chat

    monkeypatch.setattr(chat, "SLACK_DEADLINE_S", 0.0)
    seed(server.store, [incident("CH-SLOW", utcnow(), "slow")])
    body = command_body("incident CH-SLOW", response_url=f"{peer.url}/respond/slow")
    resp = post_form(server, "/api/v1/chat/slack/commands", body, signed(body))
    assert "Working on it" in resp.json()["text"]
    [posted] = peer.wait("/respond/slow")
    assert "CH-SLOW" in blocks_text(posted)
