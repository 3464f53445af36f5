"""Outbound connectors that deliver backlog items to GitHub Issues, Jira and a generic webhook.

``deliver_pending(store, trackers)`` pushes every item revision a tracker has not yet seen,
and records in ``backlog_deliveries`` the issue it created (number or key, URL) and the
revision delivered, so a later run updates that issue instead of opening another, and an
unchanged item is never sent twice.

* **GitHub** (REST, ``X-GitHub-Api-Version: 2022-11-28``, ``Authorization: Bearer``): the
  first revision is ``POST {api}/repos/{owner}/{repo}/issues`` (``title``, Markdown ``body``,
  ``labels``), answered 201 with ``number`` and ``html_url``; later revisions are ``PATCH
  .../issues/{number}`` with ``state`` ``open`` or ``closed`` (``state_reason: completed``).
* **Jira** (``Authorization: Basic base64(email:token)``, or ``Bearer`` with a Data Center
  PAT when no email is set): ``POST {base}/rest/api/{2|3}/issue`` with the description as
  plain text with ``*`` bullets (v2) or an Atlassian Document Format doc (v3), answered 201
  ``{id, key, self}``; updates are ``PUT .../issue/{key}`` (204). Closing: transitions are
  workflow-specific, so opsloop updates the fields, adds the ``opsloop-closed`` label and a
  comment saying why, and applies a transition only when ``backlog_jira_close_transition``
  names one.
* **Webhook**: ``POST`` ``{"kind", "revision", "item"}`` as JSON (``item`` as the API shows it).

Failures raise ``ActionError``: recoverable for 429, 5xx and network errors (retried with
back-off within a run, and again on the next run), not for other 4xx (the revision is marked
``failed`` and not retried until the item changes). An item closed before it was ever
delivered is ``skipped``: no issue is opened just to be closed.
"""

from __future__ import annotations

import base64
import logging
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any, Protocol

import httpx

from core.errors import ActionError, ConfigError
from core.model import BacklogItem, Delivery
from core.settings import Settings
from core.store import Store
from core.telemetry import BACKLOG_DELIVERIES
from core.wire import backlog_item_to_wire
from slo import backlog_repository as repo

__all__ = [
    "ExternalRef",
    "GitHubTracker",
    "JiraTracker",
    "Tracker",
    "WebhookTracker",
    "adf_document",
    "deliver_pending",
    "description_blocks",
    "markdown_body",
    "trackers_from_settings",
]

log = logging.getLogger(__name__)

MARKER = "opsloop-backlog-id"


@dataclass(frozen=True, slots=True)
class ExternalRef:
    """Where a tracker keeps an item: the issue number or key (if any) and its URL."""

    external_id: str
    url: str


class Tracker(Protocol):
    """One delivery target; ``push`` creates, updates or closes the item's issue."""

    name: str

    def push(self, item: BacklogItem, revision: int, previous: Delivery | None) -> ExternalRef | None:
        """Deliver ``revision`` of ``item``; None when there was nothing to deliver (skipped)."""
        ...


# ------------------------------------------------------------------ rendering


def _pct(x: Any) -> str:
    return f"{float(x):.0%}" if isinstance(x, int | float) else "n/a"


def description_blocks(item: BacklogItem, revision: int) -> list[tuple[str, list[str]]]:
    """The item as (heading, bullets) blocks, rendered per tracker (Markdown, Jira text, ADF).

    >>> blocks = description_blocks(BacklogItem("BLI-1", "slo-a", "service:a", "t", 2.5, "open",
    ...     {"state": "at_risk", "budget": {"consumed": 0.6, "remaining": 0.4}}), 1)
    >>> blocks[0][0]
    'Error budget of slo-a is at_risk: 60% consumed, 40% remaining.'
    """
    ev = item.evidence
    budget: Mapping[str, Any] = ev.get("budget", {})
    wsjf: Mapping[str, Any] = ev.get("wsjf", {})
    burns = ", ".join(f"{w}: {r:.2f}x" for w, r in ev.get("burn_rates", {}).items() if r is not None)
    summary = [
        f"Cause: {item.cause}"
        + (f" ({_pct(ev['cause_share'])} of incident time)" if "cause_share" in ev else ""),
        f"Reasons: {', '.join(ev.get('reasons', []))}; status: {item.status} (revision {revision})",
        f"Bad events: {budget.get('bad_events', 0):g}; bad minutes: {budget.get('bad_minutes', 0):g}",
        f"Burn rates: {burns or 'none'}",
        f"WSJF priority {item.priority_score:g} = cost of delay {wsjf.get('cost_of_delay', 0):g} "
        f"/ job size {wsjf.get('job_size', 0):g}; recommended reliability capacity {_pct(item.capacity_share)}",
    ]
    blocks = [
        (
            f"Error budget of {item.slo} is {ev.get('state', 'unknown')}: {_pct(budget.get('consumed'))} "
            f"consumed, {_pct(budget.get('remaining'))} remaining.",
            summary,
        )
    ]
    incidents = [
        f"{i['id']} ({i.get('priority', '')}) opened {i.get('opened_at', '')}, "
        f"{float(i.get('duration_s') or 0) / 60:.0f} min: {i.get('title', '')} {i.get('url', '')}".rstrip()
        for i in ev.get("incidents", [])
    ]
    if incidents:
        blocks.append(("Incidents:", incidents))
    factors = [
        f"{f['kind']} {f['name']}: {f['count']} times, {float(f['duration_s']) / 60:.0f} min"
        for f in ev.get("top_factors", [])
    ]
    if factors:
        blocks.append(("Top contributing factors:", factors))
    links = ev.get("links", {})
    if links:
        blocks.append(("Links:", [f"item: {links.get('item', '')}", f"SLO: {links.get('slo', '')}"]))
    return blocks


def markdown_body(item: BacklogItem, revision: int) -> str:
    """GitHub-flavoured Markdown, ending with a hidden marker naming the item."""
    parts = []
    for heading, bullets in description_blocks(item, revision):
        parts.append(f"**{heading}**" if bullets else heading)
        parts.append("\n".join(f"- {b}" for b in bullets))
    parts.append(f"<!-- {MARKER}: {item.id} -->")
    return "\n\n".join(p for p in parts if p)


def jira_text(item: BacklogItem, revision: int) -> str:
    """Jira v2 plain-text (wiki markup) description: paragraphs and ``*`` bullets."""
    return "\n".join(
        line
        for heading, bullets in description_blocks(item, revision)
        for line in [heading, *(f"* {b}" for b in bullets)]
    )


def _adf_text(text: str) -> dict[str, Any]:
    return {"type": "paragraph", "content": [{"type": "text", "text": text}]}


def adf_document(blocks: Sequence[tuple[str, Sequence[str]]]) -> dict[str, Any]:
    """An Atlassian Document Format doc: a paragraph per heading, a bullet list per block.

    >>> doc = adf_document([("Hello", ["a"])])
    >>> doc["type"], doc["version"], [c["type"] for c in doc["content"]]
    ('doc', 1, ['paragraph', 'bulletList'])
    """
    content: list[dict[str, Any]] = []
    for heading, bullets in blocks:
        content.append(_adf_text(heading))
        if bullets:
            items = [{"type": "listItem", "content": [_adf_text(b)]} for b in bullets]
            content.append({"type": "bulletList", "content": items})
    return {"type": "doc", "version": 1, "content": content}


# ------------------------------------------------------------------ HTTP


def _send(
    client: httpx.Client, method: str, url: str, *, json: Any, headers: Mapping[str, str], ok: Sequence[int]
) -> httpx.Response:
    """One request; ``ActionError`` unless the status is in ``ok`` (recoverable: 429, 5xx, network)."""
    try:
        resp = client.request(method, url, json=json, headers=dict(headers))
    except httpx.HTTPError as exc:
        raise ActionError(f"{method} {url}: {type(exc).__name__}: {exc}", recoverable=True) from exc
    if resp.status_code not in ok:
        recoverable = resp.status_code == 429 or resp.status_code >= 500
        raise ActionError(
            f"{method} {url}: HTTP {resp.status_code}: {resp.text[:300]}", recoverable=recoverable
        )
    return resp


def _reply(resp: httpx.Response, *keys: str) -> dict[str, Any]:
    try:
        body = resp.json()
    except ValueError as exc:
        raise ActionError(f"{resp.request.url}: reply is not JSON", recoverable=False) from exc
    if not isinstance(body, dict) or any(k not in body for k in keys):
        raise ActionError(f"{resp.request.url}: reply lacks {', '.join(keys)}", recoverable=False)
    return body


class GitHubTracker:
    """GitHub Issues: one issue per item, updated in place, closed when the item closes."""

    name = "github"

    def __init__(
        self, repo: str, token: str, *, api: str = "https://api.github.com",
        labels: Sequence[str] = ("opsloop", "reliability"), client: httpx.Client | None = None,
    ) -> None:  # fmt: skip
        owner, _, name = repo.partition("/")
        if not owner or not name or "/" in name:
            raise ConfigError(f"backlog_github_repo must be owner/repo, got {repo!r}")
        self.issues_url = f"{api.rstrip('/')}/repos/{owner}/{name}/issues"
        self.labels = list(labels)
        self.headers = {
            "Accept": "application/vnd.github+json",
            "Authorization": f"Bearer {token}",
            "X-GitHub-Api-Version": "2022-11-28",
        }
        self.client = client or httpx.Client(timeout=10.0)

    def _labels(self, item: BacklogItem) -> list[str]:
        extra = [f"service:{item.service}"] if item.service else []
        return [*self.labels, *extra, *(["downgraded"] if item.status == "downgraded" else [])]

    def push(self, item: BacklogItem, revision: int, previous: Delivery | None) -> ExternalRef | None:
        """Create the issue (201), or PATCH it (200) with the new body and state."""
        number = previous.external_id if previous else ""
        body = {"title": item.title, "body": markdown_body(item, revision), "labels": self._labels(item)}
        if not number:
            if item.status == "closed":
                return None
            resp = _send(self.client, "POST", self.issues_url, json=body, headers=self.headers, ok=(201,))
            reply = _reply(resp, "number", "html_url")
            return ExternalRef(str(reply["number"]), str(reply["html_url"]))
        closed = item.status == "closed"
        patch = {
            **body,
            "state": "closed" if closed else "open",
            **({"state_reason": "completed"} if closed else {}),
        }
        resp = _send(
            self.client, "PATCH", f"{self.issues_url}/{number}", json=patch, headers=self.headers, ok=(200,)
        )
        url = resp.json().get("html_url") if resp.content else None
        return ExternalRef(number, str(url or (previous.url if previous else "")))


class JiraTracker:
    """Jira issues through REST v2 (plain-text description) or v3 (ADF description)."""

    name = "jira"

    def __init__(
        self, url: str, project: str, token: str, *, email: str = "", api_version: int = 3,
        issue_type: str = "Task", close_transition: str = "", labels: Sequence[str] = ("opsloop", "reliability"),
        client: httpx.Client | None = None,
    ) -> None:  # fmt: skip
        if api_version not in (2, 3):
            raise ConfigError(f"backlog_jira_api_version must be 2 or 3, got {api_version}")
        if not project:
            raise ConfigError("backlog_jira_project is required when backlog_jira_url is set")
        self.base = url.rstrip("/")
        self.api = f"{self.base}/rest/api/{api_version}"
        self.version = api_version
        self.project, self.issue_type, self.close_transition = project, issue_type, close_transition
        self.labels = [label.replace(" ", "-") for label in labels]
        auth = (
            "Basic " + base64.b64encode(f"{email}:{token}".encode()).decode() if email else f"Bearer {token}"
        )
        self.headers = {"Authorization": auth, "Accept": "application/json"}
        self.client = client or httpx.Client(timeout=10.0)

    def _description(self, item: BacklogItem, revision: int) -> str | dict[str, Any]:
        if self.version == 2:
            return jira_text(item, revision) + f"\n\n{MARKER}: {item.id}"
        blocks = [*description_blocks(item, revision), (f"{MARKER}: {item.id}", [])]
        return adf_document(blocks)

    def _fields(self, item: BacklogItem, revision: int) -> dict[str, Any]:
        labels = [*self.labels, *(["opsloop-closed"] if item.status == "closed" else [])]
        if item.service:
            labels.append(f"service-{item.service}".replace(" ", "-"))
        return {
            "summary": item.title[:255],
            "description": self._description(item, revision),
            "labels": labels,
        }

    def push(self, item: BacklogItem, revision: int, previous: Delivery | None) -> ExternalRef | None:
        """Create the issue (201), or PUT its fields (204); on close also comment (and transition)."""
        key = previous.external_id if previous else ""
        if not key:
            if item.status == "closed":
                return None
            fields = {"project": {"key": self.project}, "issuetype": {"name": self.issue_type},
                      **self._fields(item, revision)}  # fmt: skip
            resp = _send(self.client, "POST", f"{self.api}/issue", json={"fields": fields}, headers=self.headers,
                         ok=(201,))  # fmt: skip
            reply = _reply(resp, "id", "key")
            return ExternalRef(str(reply["key"]), f"{self.base}/browse/{reply['key']}")
        issue = f"{self.api}/issue/{key}"
        _send(self.client, "PUT", issue, json={"fields": self._fields(item, revision)}, headers=self.headers,
              ok=(200, 204))  # fmt: skip
        if item.status == "closed":
            text = (
                f"opsloop closed this item (revision {revision}): the error budget of {item.slo} recovered."
            )
            comment: str | dict[str, Any] = text if self.version == 2 else adf_document([(text, [])])
            _send(
                self.client,
                "POST",
                f"{issue}/comment",
                json={"body": comment},
                headers=self.headers,
                ok=(201,),
            )
            if self.close_transition:
                _send(self.client, "POST", f"{issue}/transitions", json={"transition": {"id": self.close_transition}},
                      headers=self.headers, ok=(200, 204))  # fmt: skip
        return ExternalRef(key, previous.url if previous and previous.url else f"{self.base}/browse/{key}")


class WebhookTracker:
    """POST each item revision as JSON: ``{"kind": created|updated|..., "revision", "item"}``."""

    name = "webhook"

    def __init__(self, url: str, *, client: httpx.Client | None = None) -> None:
        self.url = url
        self.client = client or httpx.Client(timeout=10.0)

    def push(self, item: BacklogItem, revision: int, previous: Delivery | None) -> ExternalRef | None:
        """POST the change; any 2xx is success."""
        kind = str(item.evidence.get("change", "created" if previous is None else "updated"))
        payload = {"kind": kind, "revision": revision, "item": backlog_item_to_wire(item, revision)}
        _send(self.client, "POST", self.url, json=payload, headers={}, ok=tuple(range(200, 300)))
        return ExternalRef("", "")


def trackers_from_settings(settings: Settings, client: httpx.Client | None = None) -> list[Tracker]:
    """The trackers ``settings`` configures (none by default); ``ConfigError`` when half-configured."""
    out: list[Tracker] = []
    if settings.backlog_github_repo:
        token = settings.backlog_github_token.get_secret_value()
        if not token:
            raise ConfigError("backlog_github_token is required when backlog_github_repo is set")
        out.append(GitHubTracker(settings.backlog_github_repo, token, api=settings.backlog_github_api,
                                 labels=settings.backlog_github_labels, client=client))  # fmt: skip
    if settings.backlog_jira_url:
        token = settings.backlog_jira_token.get_secret_value()
        if not token:
            raise ConfigError("backlog_jira_token is required when backlog_jira_url is set")
        out.append(JiraTracker(
            settings.backlog_jira_url, settings.backlog_jira_project, token, email=settings.backlog_jira_email,
            api_version=settings.backlog_jira_api_version, issue_type=settings.backlog_jira_issue_type,
            close_transition=settings.backlog_jira_close_transition, client=client,
        ))  # fmt: skip
    if settings.backlog_webhook_url:
        out.append(WebhookTracker(settings.backlog_webhook_url, client=client))
    return out


# ------------------------------------------------------------------ the flow


def _now() -> datetime:
    return datetime.now(UTC).replace(tzinfo=None)


def deliver_pending(
    store: Store,
    trackers: Sequence[Tracker],
    *,
    attempts: int = 3,
    backoff_s: float = 0.5,
    sleep: Callable[[float], None] = time.sleep,
    now: datetime | None = None,
) -> list[Delivery]:
    """Push every item revision each tracker has not seen; return the deliveries recorded.

    A recoverable failure is retried ``attempts`` times with exponential back-off, then left
    as ``retry`` (the next run tries again) and that tracker is not tried again in this run
    (an outage costs one timeout per run, not one per item); a refusal is recorded as
    ``failed`` for that revision. The recorded issue id makes every later push an update, never a second issue.
    """
    if not trackers:
        return []
    items = repo.list_items(store, sort="newest", limit=1_000_000)
    known = {(d.item_id, d.tracker): d for d in repo.deliveries_of(store)}
    recorded: list[Delivery] = []
    down: set[str] = set()  # trackers that failed recoverably: spare them the rest of this run
    for stored in reversed(items):  # oldest first: issues open in the order items appeared
        item, revision = stored.item, stored.revision
        for tracker in trackers:
            previous = known.get((item.id, tracker.name))
            if tracker.name in down or (previous is not None and previous.revision >= revision):
                continue
            delivery = _push(tracker, item, revision, previous, attempts, backoff_s, sleep, now or _now())
            repo.record_delivery(store, delivery)
            BACKLOG_DELIVERIES.labels(tracker.name, delivery.status).inc()
            recorded.append(delivery)
            if delivery.status == "retry":
                down.add(tracker.name)
    return recorded


def _push(
    tracker: Tracker, item: BacklogItem, revision: int, previous: Delivery | None, attempts: int,
    backoff_s: float, sleep: Callable[[float], None], now: datetime,
) -> Delivery:  # fmt: skip
    tries = (previous.attempts if previous and previous.status == "retry" else 0) + 1
    keep_id, keep_url = (previous.external_id, previous.url) if previous else ("", "")
    for attempt in range(max(1, attempts)):
        try:
            ref = tracker.push(item, revision, previous)
        except ActionError as exc:
            last = attempt == max(1, attempts) - 1
            if exc.recoverable and not last:
                sleep(backoff_s * 2**attempt)
                tries += 1
                continue
            log.warning("backlog item %s to %s: %s", item.id, tracker.name, exc.message)
            return Delivery(
                item.id, tracker.name, keep_id, keep_url,
                "retry" if exc.recoverable else "failed",
                (previous.revision if previous else 0) if exc.recoverable else revision,
                tries, exc.message, previous.synced_at if previous else None,
            )  # fmt: skip
        if ref is None:
            return Delivery(item.id, tracker.name, keep_id, keep_url, "skipped", revision, 0, "", now)
        return Delivery(item.id, tracker.name, ref.external_id or keep_id, ref.url or keep_url, "synced",
                        revision, 0, "", now)  # fmt: skip
    raise AssertionError("unreachable")  # pragma: no cover
