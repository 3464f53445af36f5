"""The stored runbook catalog: load (versioning changed content), list the active versions."""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass, replace
from datetime import datetime

import yaml

from core.store import Store
from resolve import actions_repository as repo
from resolve.audit import AuditLog
from resolve.runbooks import Runbook, parse_runbooks

__all__ = ["Catalog", "Loaded"]


@dataclass(frozen=True, slots=True)
class Loaded:
    """A runbook as stored: its version, and whether this load made a new one."""

    runbook: Runbook
    changed: bool
    loaded_at: datetime | None = None


class Catalog:
    """Runbooks in the store; a stored runbook is validated again as it is read."""

    def __init__(self, store: Store, allowed_commands: Iterable[str] = ()) -> None:
        self.store = store
        self.allowed_commands = frozenset(allowed_commands)

    def load(self, runbooks: Sequence[Runbook], by: str = "") -> list[Loaded]:
        """Store each runbook; unchanged content keeps its version, changed content is the next."""
        out = []
        for rb in runbooks:
            version, changed = repo.save_runbook(self.store, rb.name, rb.hash, rb.source, dict(rb.doc), by)
            if changed:
                AuditLog(self.store).append("runbook", rb.name, {"version": version, "hash": rb.hash,
                                                                 "source": rb.source, "by": by})  # fmt: skip
            out.append(Loaded(replace(rb, version=version), changed))
        return out

    def load_text(self, text: str, source: str, by: str = "") -> list[Loaded]:
        """Validate a YAML text (``ConfigError`` naming source, document and field), then store it."""
        return self.load(parse_runbooks(text, source, allowed_commands=self.allowed_commands), by)

    def active(self) -> list[Loaded]:
        """The active version of each runbook, by name."""
        out = []
        for name, version, hash_, source, at, doc in repo.active_runbooks(self.store):
            # the stored doc passes the same checks as a file (the allowlist may have shrunk since)
            parsed = parse_runbooks(yaml.safe_dump(doc), f"{source or 'store'} ({name} v{version})",
                                    allowed_commands=self.allowed_commands)  # fmt: skip
            out.append(Loaded(replace(parsed[0], version=version, hash=hash_, source=source), False, at))
        return out

    def runbooks(self) -> list[Runbook]:
        """The active runbooks; one that no longer validates is left out (listed with its error)."""
        found = []
        for name, version, hash_, source, _, doc in repo.active_runbooks(self.store):
            try:
                parsed = parse_runbooks(
                    yaml.safe_dump(doc), source or name, allowed_commands=self.allowed_commands
                )
            except Exception:
                continue
            found.append(replace(parsed[0], version=version, hash=hash_, source=source))
        return found
