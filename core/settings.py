"""Settings, read from the environment (``OPSLOOP_*``) once and passed down explicitly."""

from __future__ import annotations

from pathlib import Path

from pydantic import Field
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
    detect_snapshot_interval_s: float = Field(default=60.0, description="seconds between state snapshots")
    detect_max_backlog_rows: int = Field(
        default=2_000_000, description="points held for detection before it re-reads them from the store"
    )
    correlation_rules: Path | None = Field(default=None, description="YAML correlation rules and defaults")
    incident_resolve_after_s: float = Field(
        default=300.0, description="quiet seconds before an incident resolves"
    )
    alert_learning_s: float = Field(
        default=86400.0, description="history a series needs before its anomalies may alert (one daily cycle)"
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
    notify_retry_max: int = Field(default=8, description="delivery attempts before a notification is dropped")
    public_url: str = Field(default="http://127.0.0.1:8080", description="base URL used in links we send")
