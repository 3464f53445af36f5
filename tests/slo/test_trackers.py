"""Tracker connectors against local servers that answer as GitHub, Jira and a webhook receiver do."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import timedelta
from typing import Any

import httpx
import pytest

from core.errors import ConfigError
from core.model import BudgetState
from core.settings import Settings
from core.store import Store
from slo import backlog_repository as repo
from slo.policy import PolicyConfig, apply_policy
from slo.trackers import (
    GitHubTracker,
    JiraTracker,
    Tracker,
    WebhookTracker,
    deliver_pending,
    trackers_from_settings,
)
from tests.conftest import free_port
from tests.slo.backlog_helpers import T0, seed_incident, status
from tests.slo.fake_trackers import fake_api

CONFIG = PolicyConfig(public_url="http://ops.example")


def no_sleep(_: float) -> None:
    pass


@pytest.fixture
def client() -> Iterator[httpx.Client]:
    with httpx.Client(timeout=5.0) as c:
        yield c


def burn(store: Store, remaining: float = 0.3, hours: int = 0) -> None:
    """Evaluate the checkout SLO at ``T0 + hours`` with ``remaining`` budget (at risk below 0.5)."""
    at = T0 + timedelta(hours=hours)
    state = BudgetState.AT_RISK if remaining < 0.5 else BudgetState.HEALTHY
    apply_policy(store, [status(state, remaining=remaining, at=at)], None, at, CONFIG)


def deliver(store: Store, tracker: Tracker, attempts: int = 3) -> list[repo.Delivery]:
    return deliver_pending(store, [tracker], attempts=attempts, backoff_s=0.0, sleep=no_sleep)


# ------------------------------------------------------------------ GitHub


def test_github_issue_is_created_once_updated_in_place_and_closed(store: Store, client: httpx.Client) -> None:
    seed_incident(store, "INC-1", T0 - timedelta(hours=2), "payments-db")
    with fake_api("github") as gh:
        tracker = GitHubTracker("acme/shop", "ghp_secret", api=gh.url, client=client)
        burn(store)
        (d,) = deliver(store, tracker)
        (create,) = gh.requests
        assert (create.method, create.path) == ("POST", "/repos/acme/shop/issues")
        assert create.headers["authorization"] == "Bearer ghp_secret"
        assert create.headers["x-github-api-version"] == "2022-11-28"
        assert create.headers["accept"] == "application/vnd.github+json"
        assert "payments-db" in create.body["title"] and "service:checkout" in create.body["labels"]
        item = repo.list_items(store)[0].item
        assert "INC-1" in create.body["body"] and f"opsloop-backlog-id: {item.id}" in create.body["body"]
        assert (d.status, d.external_id, d.url, d.revision) == (
            "synced", "1", "https://github.example/acme/shop/issues/1", 1,
        )  # fmt: skip

        assert deliver(store, tracker) == [] and len(gh.requests) == 1  # nothing new: nothing sent

        burn(store, remaining=0.1, hours=1)  # more burn: revision 2 -> PATCH the same issue
        deliver(store, tracker)
        assert [(r.method, r.path) for r in gh.requests[1:]] == [("PATCH", "/repos/acme/shop/issues/1")]
        assert gh.requests[-1].body["state"] == "open"

        burn(store, remaining=0.8, hours=30)  # recovery closes the item and the issue
        deliver(store, tracker)
        assert gh.requests[-1].body["state"] == "closed" and gh.issues["1"]["state"] == "closed"
        assert len(gh.issues) == 1


def test_a_server_error_is_retried_without_a_second_issue(store: Store, client: httpx.Client) -> None:
    with fake_api("github") as gh:
        tracker = GitHubTracker("acme/shop", "t", api=gh.url, client=client)
        burn(store)
        gh.fail_with = [500, 502]
        (d,) = deliver(store, tracker)
        assert d.status == "synced" and len(gh.requests) == 3 and len(gh.issues) == 1
        assert deliver(store, tracker) == [] and len(gh.issues) == 1


def test_a_retry_left_for_the_next_run_still_opens_one_issue(store: Store, client: httpx.Client) -> None:
    with fake_api("github") as gh:
        tracker = GitHubTracker("acme/shop", "t", api=gh.url, client=client)
        burn(store)
        gh.fail_with = [429]
        (first,) = deliver(store, tracker, attempts=1)
        assert (first.status, first.external_id, first.attempts) == ("retry", "", 1)
        (second,) = deliver(store, tracker, attempts=1)
        assert second.status == "synced" and len(gh.issues) == 1
        assert repo.deliveries_of(store)[0].external_id == "1"


def test_a_validation_error_is_not_retried(store: Store, client: httpx.Client) -> None:
    with fake_api("github") as gh:
        tracker = GitHubTracker("acme/shop", "t", api=gh.url, client=client)
        burn(store)
        gh.fail_with = [422, 422, 422]
        (d,) = deliver(store, tracker)
        assert d.status == "failed" and "422" in d.last_error and len(gh.requests) == 1
        assert deliver(store, tracker) == [] and len(gh.requests) == 1  # not until the item changes


def test_a_network_error_is_recoverable(store: Store, client: httpx.Client) -> None:
    tracker = GitHubTracker("acme/shop", "t", api=f"http://127.0.0.1:{free_port()}", client=client)
    burn(store)
    (d,) = deliver(store, tracker, attempts=2)
    assert d.status == "retry" and d.attempts == 2 and d.revision == 0


def test_an_item_closed_before_delivery_opens_no_issue(store: Store, client: httpx.Client) -> None:
    with fake_api("github") as gh:
        tracker = GitHubTracker("acme/shop", "t", api=gh.url, client=client)
        burn(store)
        burn(store, remaining=0.9, hours=5)
        (d,) = deliver(store, tracker)
        assert d.status == "skipped" and gh.requests == []


# ------------------------------------------------------------------ Jira


@pytest.mark.parametrize("version", [2, 3], ids=["v2-plain-text", "v3-adf"])
def test_jira_issue_with_the_description_format_of_the_api_version(
    store: Store, client: httpx.Client, version: int
) -> None:
    seed_incident(store, "INC-1", T0 - timedelta(hours=2), "payments-db")
    with fake_api("jira") as jira:
        tracker = JiraTracker(
            jira.url, "OPS", "tok", email="sre@example.com", api_version=version, client=client
        )
        burn(store)
        (d,) = deliver(store, tracker)
        (create,) = jira.requests
        assert (create.method, create.path) == ("POST", f"/rest/api/{version}/issue")
        assert jira.basic_user() == "sre@example.com:tok"
        fields = create.body["fields"]
        assert fields["project"] == {"key": "OPS"} and fields["issuetype"] == {"name": "Task"}
        assert len(fields["summary"]) <= 255 and all(" " not in label for label in fields["labels"])
        description = fields["description"]
        if version == 2:
            assert isinstance(description, str) and "* " in description and "INC-1" in description
        else:
            assert description["type"] == "doc" and description["version"] == 1
            kinds = [block["type"] for block in description["content"]]
            assert "paragraph" in kinds and "bulletList" in kinds
            texts = [
                str(node["text"])
                for block in description["content"]
                for node in _walk(block)
                if node.get("type") == "text"
            ]
            assert any("INC-1" in t for t in texts)
        assert (d.external_id, d.url) == ("OPS-1", f"{jira.url}/browse/OPS-1")

        burn(store, remaining=0.1, hours=1)
        deliver(store, tracker)
        assert [(r.method, r.path) for r in jira.requests[1:]] == [
            ("PUT", f"/rest/api/{version}/issue/OPS-1")
        ]

        burn(store, remaining=0.9, hours=30)
        deliver(store, tracker)
        assert [(r.method, r.path) for r in jira.requests[2:]] == [
            ("PUT", f"/rest/api/{version}/issue/OPS-1"),
            ("POST", f"/rest/api/{version}/issue/OPS-1/comment"),
        ]
        assert "opsloop-closed" in jira.issues["OPS-1"]["labels"] and len(jira.comments) == 1
        assert len(jira.issues) == 1 and jira.transitions == []


def _walk(node: dict[str, Any]) -> Iterator[dict[str, Any]]:
    yield node
    for child in node.get("content", []):
        yield from _walk(child)


def test_jira_close_applies_the_configured_transition_and_bearer_without_email(
    store: Store, client: httpx.Client
) -> None:
    with fake_api("jira") as jira:
        tracker = JiraTracker(jira.url, "OPS", "pat", api_version=2, close_transition="31", client=client)
        burn(store)
        burn(store, remaining=0.2, hours=1)  # keep it open and deliver it before it closes
        deliver(store, tracker)
        burn(store, remaining=0.9, hours=30)
        deliver(store, tracker)
        assert jira.requests[0].headers["authorization"] == "Bearer pat"
        assert jira.transitions == [("OPS-1", {"transition": {"id": "31"}})]


def test_a_jira_bad_request_is_not_retried(store: Store, client: httpx.Client) -> None:
    with fake_api("jira") as jira:
        tracker = JiraTracker(jira.url, "OPS", "t", email="a@b", client=client)
        burn(store)
        jira.fail_with = [400]
        (d,) = deliver(store, tracker)
        assert d.status == "failed" and len(jira.requests) == 1 and jira.issues == {}


# ------------------------------------------------------------------ webhook and configuration


def test_webhook_receives_each_change_with_its_kind(store: Store, client: httpx.Client) -> None:
    with fake_api("webhook") as hook:
        tracker = WebhookTracker(f"{hook.url}/backlog", client=client)
        burn(store)
        deliver(store, tracker)
        burn(store, remaining=0.9, hours=30)
        deliver(store, tracker)
        kinds = [(r.body["kind"], r.body["revision"], r.body["item"]["status"]) for r in hook.requests]
        assert kinds == [("created", 1, "open"), ("closed", 2, "closed")]
        assert hook.requests[0].body["item"]["id"] == repo.list_items(store)[0].item.id
        assert hook.requests[0].path == "/backlog"


def test_every_tracker_gets_every_revision_once(store: Store, client: httpx.Client) -> None:
    with fake_api("github") as gh, fake_api("webhook") as hook:
        trackers: list[Tracker] = [
            GitHubTracker("acme/shop", "t", api=gh.url, client=client),
            WebhookTracker(hook.url, client=client),
        ]
        burn(store)
        assert len(deliver_pending(store, trackers, backoff_s=0.0, sleep=no_sleep)) == 2
        assert deliver_pending(store, trackers, backoff_s=0.0, sleep=no_sleep) == []
        assert {d.tracker for d in repo.deliveries_of(store)} == {"github", "webhook"}


@pytest.mark.parametrize(
    ("settings", "names"),
    [
        ({}, []),
        ({"backlog_github_repo": "acme/shop", "backlog_github_token": "t"}, ["github"]),
        (
            {"backlog_jira_url": "http://j", "backlog_jira_project": "OPS", "backlog_jira_token": "t"},
            ["jira"],
        ),
        ({"backlog_webhook_url": "http://w"}, ["webhook"]),
    ],
    ids=["none", "github", "jira", "webhook"],
)
def test_trackers_come_from_settings(settings: dict[str, str], names: list[str]) -> None:
    assert [t.name for t in trackers_from_settings(Settings(**settings))] == names  # type: ignore[arg-type]


@pytest.mark.parametrize(
    "settings",
    [
        {"backlog_github_repo": "acme", "backlog_github_token": "t"},
        {"backlog_github_repo": "acme/shop"},
        {"backlog_jira_url": "http://j", "backlog_jira_token": "t"},
        {"backlog_jira_url": "http://j", "backlog_jira_project": "OPS"},
    ],
    ids=["repo-not-owner-slash-name", "github-no-token", "jira-no-project", "jira-no-token"],
)
def test_half_configured_trackers_are_refused(settings: dict[str, str]) -> None:
    with pytest.raises(ConfigError):
        trackers_from_settings(Settings(**settings))  # type: ignore[arg-type]


def test_a_tracker_that_is_down_is_tried_once_per_run(store: Store, client: httpx.Client) -> None:
    apply_policy(
        store,
        [status(BudgetState.AT_RISK, remaining=0.3, slo=f"slo-{n}") for n in range(3)],
        None,
        T0,
        CONFIG,
    )
    with fake_api("github") as gh:
        tracker = GitHubTracker("acme/shop", "t", api=gh.url, client=client)
        gh.fail_with = [503]
        (d,) = deliver(store, tracker, attempts=1)
        assert d.status == "retry" and len(gh.requests) == 1
        assert [x.status for x in deliver(store, tracker, attempts=1)] == ["synced"] * 3
        assert len(gh.issues) == 3
