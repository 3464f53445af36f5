"""Who may act from chat: a YAML map of ``platform:user_id`` to a role, optionally limited to channels.

The file (``OPSLOOP_CHAT_USERS``, default ``./chat-users.yaml``) looks like::

    slack:U012AB3CD:
      name: alice
      role: responder        # viewer | responder | approver
      channels: [C0INCIDENTS] # optional: acting only in these channel ids (or names)

Unknown users, and known users outside their channels, may read only. ``responder`` may ack,
assign, note, resolve and silence; ``approver`` may also approve or reject runbook actions. The
server re-reads the file when it changes, so ``opsloop chat users add`` takes effect at once.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from enum import IntEnum
from pathlib import Path
from typing import Any

import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError

from core.errors import ConfigError

__all__ = ["ChatUser", "Role", "UserDirectory", "load_users", "save_users"]


class Role(IntEnum):
    """What a chat user may do; a higher role includes the lower ones."""

    VIEWER = 0
    RESPONDER = 1
    APPROVER = 2

    @classmethod
    def parse(cls, text: str) -> Role:
        """A role from its name.

        >>> Role.parse("Responder")
        <Role.RESPONDER: 1>
        """
        try:
            return cls[text.strip().upper()]
        except KeyError:
            names = ", ".join(r.name.lower() for r in cls)
            raise ConfigError(f"unknown chat role {text!r} (expected one of {names})") from None


class _Entry(BaseModel):
    model_config = ConfigDict(extra="forbid")

    name: str = Field(default="", max_length=200)
    role: str = "viewer"
    channels: list[str] = Field(default_factory=list)


@dataclass(frozen=True, slots=True)
class ChatUser:
    """One mapped user: ``key`` is ``platform:user_id``."""

    key: str
    name: str
    role: Role
    channels: tuple[str, ...] = ()

    def role_in(self, *channel: str) -> Role:
        """The user's role in a channel (known by id or name): viewer outside their channels."""
        if self.channels and not set(self.channels) & {c for c in channel if c}:
            return Role.VIEWER
        return self.role


def _parse(raw: Any, source: str) -> dict[str, ChatUser]:
    if raw is None:
        return {}
    if not isinstance(raw, Mapping):
        raise ConfigError(f"{source}: expected a map of 'platform:user_id' to {{name, role, channels}}")
    out: dict[str, ChatUser] = {}
    for key, value in raw.items():
        key = str(key)
        if ":" not in key:
            raise ConfigError(f"{source}: user {key!r} must be 'platform:user_id' (e.g. slack:U012AB3CD)")
        try:
            entry = _Entry.model_validate(value or {})
        except ValidationError as exc:
            raise ConfigError(f"{source}: user {key!r}: {exc.errors()[0]['msg']}") from exc
        out[key] = ChatUser(key, entry.name, Role.parse(entry.role), tuple(entry.channels))
    return out


def load_users(path: Path) -> dict[str, ChatUser]:
    """Read the user map (an absent file is an empty map); ``ConfigError`` naming the file and user."""
    if not path.exists():
        return {}
    try:
        raw = yaml.safe_load(path.read_text(encoding="utf-8"))
    except yaml.YAMLError as exc:
        raise ConfigError(f"{path}: not YAML: {exc}") from exc
    return _parse(raw, str(path))


def save_users(path: Path, users: Mapping[str, ChatUser]) -> None:
    """Write the user map back (sorted by key, so diffs stay small)."""
    doc: dict[str, dict[str, Any]] = {}
    for key in sorted(users):
        u = users[key]
        entry: dict[str, Any] = {"role": u.role.name.lower()}
        if u.name:
            entry["name"] = u.name
        if u.channels:
            entry["channels"] = list(u.channels)
        doc[key] = entry
    path.write_text(yaml.safe_dump(doc, sort_keys=True), encoding="utf-8")


class UserDirectory:
    """The user map, re-read whenever the file's modification time changes."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self._stamp: float | None = None
        self._users: dict[str, ChatUser] = {}

    def get(self, platform: str, user_id: str) -> ChatUser | None:
        """The mapped user, or None (read-only)."""
        try:
            stamp = self.path.stat().st_mtime_ns if self.path.exists() else None
        except OSError:
            stamp = None
        if stamp != self._stamp:
            self._users = load_users(self.path) if stamp is not None else {}
            self._stamp = stamp
        return self._users.get(f"{platform}:{user_id}")
