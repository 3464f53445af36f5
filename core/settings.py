"""Settings, read from the environment (``OPSLOOP_*``) once and passed down explicitly."""

from __future__ import annotations

from pathlib import Path

from pydantic import Field, SecretStr
from pydantic_settings import BaseSettings, SettingsConfigDict


class Settings(BaseSettings):
    """Every tunable of opsloop, with the default an SRE would expect.

    Built once at start-up (``Settings()``) and handed to whatever needs it; nothing reads
    the environment at import time.
    """

    model_config = SettingsConfigDict(env_prefix="OPSLOOP_", extra="ignore")

    db: str = Field(default="./opsloop.duckdb", description="DuckDB file, or ':memory:'")
    host: str = "127.0.0.1"
    port: int = 8080
    auth: bool = Field(default=True, description="require bearer tokens (turn off only for local play)")
    max_body_bytes: int = Field(default=20 * 1024 * 1024, description="decompressed request size limit")
    queue_max_rows: int = Field(default=2_000_000, description="rows waiting for commit before 429")
    commit_max_rows: int = Field(default=200_000, description="rows coalesced into one commit")
    commit_linger_s: float = Field(default=0.002, description="how long the writer waits to fill a commit")
    retry_after_s: int = 1
    scrape_config: Path | None = None
    scrape_interval_s: float = 15.0
    log_level: str = "info"
    detect_enabled: bool = Field(default=True, description="score committed points in the server")
    detect_threshold: float | None = Field(
        default=None,
        description="anomaly probability threshold (default: the detector's suggestion, else 0.999)",
    )
    detect_threshold_min: float = Field(default=0.2, description="lowest threshold feedback may set")
    detect_threshold_max: float = Field(default=0.99999, description="highest threshold feedback may set")
    detect_feedback_step: float = Field(
        default=1.25, gt=1.0, description="a false positive divides the tail 1 - threshold by this"
    )
    detect_controls: Path | None = Field(default=None, description="YAML list of per-selector controls")
    detect_warm_points: int = Field(
        default=30,
        ge=0,
        description="points of its own history a series needs before it may alert; the flat views"
        " settle after tens of points and slower views (seasonal profiles) join only once they have"
        " their own days of coverage, so 30 points (30 min at 60 s) lets a new install alert in its first hour",
    )
    # cold start (issue 14): how long a series counts as young
    detect_young_s: float = Field(
        default=86400.0,
        ge=0.0,
        description="seconds of its own history during which a series is young: before a seasonal view"
        " vouches for its band, only a relative deviation makes its alerts significant, and its alerts"
        " open an incident together with another alert, not alone",
    )
    detect_snapshot_interval_s: float = Field(default=60.0, description="seconds between state snapshots")
    # traces (issue 18): span-derived series (ingest.span_metrics) and how long spans are kept
    span_metrics_grace_s: float = Field(
        default=60.0,
        ge=0.0,
        description="a minute of spans is derived once the newest span is this much later",
    )
    span_metrics_poll_s: float = Field(
        default=10.0, gt=0.0, description="seconds between span derivation rounds"
    )
    retention_spans_s: float = Field(
        default=7 * 86400.0,
        ge=0.0,
        description="spans older than this before the newest are deleted (0 = keep)",
    )
    retention_logs_s: float = Field(
        default=30 * 86400.0,
        ge=0.0,
        description="log records older than this before the newest are deleted (0 = keep)",
    )
    retention_events_s: float = Field(default=0.0, ge=0.0, description="the same for CloudEvents (0 = keep)")
    retention_interval_s: float = Field(
        default=3600.0, gt=0.0, description="seconds between retention rounds"
    )
    # cluster mode (issue 19, api.bus): NATS JetStream between front ends and partition workers
    bus: str = Field(
        default="", description="nats://host:port: serve becomes a front end publishing to JetStream"
    )
    bus_partitions: int = Field(
        default=4, ge=1, description="series partitions, fixed when the stream is created"
    )
    bus_max_bytes: int = Field(
        default=1 << 30, ge=1 << 20, description="stream size at which front ends answer 429 (discard new)"
    )
    detect_max_backlog_rows: int = Field(
        default=2_000_000, description="points held for detection before it re-reads them from the store"
    )
    correlation_rules: Path | None = Field(default=None, description="YAML correlation rules and defaults")
    incident_resolve_after_s: float = Field(
        default=300.0, description="quiet seconds before an incident resolves"
    )
    alert_learning_s: float = Field(
        default=0.0,
        ge=0.0,
        description="optional extra floor, in seconds of a series' own history, before it may alert"
        " (default none: warm-up is counted in points, see detect_warm_points)",
    )
    deploy_window_s: float = Field(
        default=1800.0, description="alerts this soon after a change are linked to it"
    )
    deploy_grace_s: float = Field(default=180.0, description="alerts this soon after a change are held")
    escalate_after_s: dict[str, float] = Field(
        default_factory=lambda: {"P1": 300.0, "P2": 900.0, "P3": 3600.0},
        description='seconds unacknowledged before escalation, per priority (JSON: {"P1": 300, ...})',
    )
    notify_webhooks: list[dict[str, str]] = Field(
        default_factory=list,
        description='outgoing webhooks, JSON: [{"url": "...", "format": "cdevents|slack"}]',
    )
    slo_interval_s: float = Field(default=60.0, description="seconds between SLO evaluations in the server")
    notify_retry_max: int = Field(default=8, description="delivery attempts before a notification is dropped")
    public_url: str = Field(default="http://127.0.0.1:8080", description="base URL used in links we send")
    # error-budget policy -> reliability backlog, and the trackers it is delivered to (slo.policy, slo.trackers)
    backlog_close_above: float = Field(
        default=0.5, ge=0.0, le=1.0, description="budget fraction remaining at which a backlog item closes"
    )
    backlog_recurrence_min: int = Field(default=3, ge=2, description="incidents of one cause that recur")
    backlog_update_step: float = Field(
        default=0.05, gt=0.0, description="budget consumption change worth a new item revision"
    )
    backlog_github_repo: str = Field(default="", description="owner/repo for backlog issues ('' = off)")
    backlog_github_token: SecretStr = Field(default=SecretStr(""), description="GitHub token (bearer)")
    backlog_github_api: str = "https://api.github.com"
    backlog_github_labels: list[str] = Field(default_factory=lambda: ["opsloop", "reliability"])
    backlog_jira_url: str = Field(default="", description="Jira base URL ('' = off)")
    backlog_jira_project: str = ""
    backlog_jira_email: str = Field(default="", description="Jira Cloud user; '' = bearer PAT (Data Center)")
    backlog_jira_token: SecretStr = Field(default=SecretStr(""), description="Jira API token or PAT")
    backlog_jira_api_version: int = Field(default=3, ge=2, le=3, description="2: plain text, 3: ADF")
    backlog_jira_issue_type: str = "Task"
    backlog_jira_close_transition: str = Field(
        default="", description="transition id applied when an item closes ('' = comment only)"
    )
    backlog_webhook_url: str = Field(default="", description="POST each backlog change as JSON here")
    # problem management (resolve.problems): which incidents recur, and for how long a problem stays live
    problem_window_s: float = Field(
        default=14 * 86400.0,
        gt=0.0,
        description="an incident recurs when a matching one opened at most this long before it (14 days)",
    )
    problem_similarity: float = Field(
        default=0.5,
        gt=0.0,
        le=1.0,
        description="Jaccard overlap of services, and of alert names or log templates, that makes two"
        " incidents the same problem (a shared leading cause stands in for the names)",
    )
    problem_min_incidents: int = Field(
        default=2, ge=2, description="matching incidents that make a problem (2: the first recurrence)"
    )
    # one writer, many readers (issue 16): analysts' SQL limits (api/routers/sql.py) and Parquet snapshots (core.snapshot)
    sql_max_rows: int = Field(default=1_000_000, ge=1, description="most rows one POST /api/v1/sql answers")
    sql_timeout_s: float = Field(default=30.0, gt=0.0, description="a SQL query is interrupted after this")
    snapshot_dir: Path | None = Field(default=None, description="export the main tables to Parquet here")
    snapshot_interval_s: float = Field(default=300.0, gt=0.0, description="seconds between Parquet snapshots")
    snapshot_keep: int = Field(default=3, ge=1, description="snapshots kept (older ones are deleted)")
    # ChatOps and the live stream (api.chat, api.routers.chat, api.routers.stream)
    chat_users: Path = Field(
        default=Path("./chat-users.yaml"),
        description="YAML map of chat users to roles ('opsloop chat users add'); a missing file means read-only chat",
    )
    slack_signing_secret: SecretStr = Field(
        default=SecretStr(""), description="Slack app signing secret ('' = Slack off)"
    )
    slack_bot_token: SecretStr = Field(
        default=SecretStr(""), description="Slack bot token for answers to mentions"
    )
    slack_api_url: str = Field(default="https://slack.com/api/", description="Slack Web API base URL")
    mattermost_token: SecretStr = Field(
        default=SecretStr(""), description="Mattermost slash command token ('' = off)"
    )
    # runbook execution (issue 15, resolve.executor): guard rails shared by every runbook
    resolve_allowed_commands: str = Field(
        default="", description="comma-separated absolute paths a command step may run ('' = none)"
    )
    resolve_paused: bool = Field(default=False, description="kill switch: no runbook step runs")
    resolve_cdevents_sink: str = Field(default="", description="URL cdevent steps post CloudEvents to")
    resolve_service_max_runs_per_hour: int = Field(default=6, ge=1, description="automated runs per service")
    resolve_service_max_concurrent: int = Field(default=1, ge=1, description="runs at once per service")
    resolve_budget_actions: int = Field(
        default=20, ge=1, description="blast radius: automated steps per window across the estate"
    )
    resolve_budget_window_s: float = Field(default=3600.0, gt=0.0, description="blast-radius window")
    resolve_retry_wait_s: float = Field(default=1.0, ge=0.0, description="first back-off between retries")
