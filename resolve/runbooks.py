"""Runbook catalog: the YAML contract, its strict schema, versioning and safe templating.

A runbook file holds one or more YAML documents (``---``), each::

    apiVersion: opsloop/v1
    kind: Runbook
    metadata: {name: restart-leaking}
    spec:
      match: {alert_labels: {alertname: "MemoryLeak"}, service: "cart", hypothesis_kind: resource}
      mode: approve                  # suggest | approve | autonomous
      hosts: [deployer.local]        # optional: the only hosts http steps may call
      steps:
        - name: restart
          http: {method: POST, url: "http://deployer.local/restart", json: {service: "{{ service }}"}}
          timeout: 30s
          retries: 2
      verify: {window: 10m}
      rollback: []
      limits: {max_runs_per_hour: 3, max_concurrent: 1}

Safety is decided at load time where it can be: a ``command`` executable must be an absolute
path on the allowlist (``OPSLOOP_RESOLVE_ALLOWED_COMMANDS``) and may not be templated; an
``http`` URL's host may not be templated and must be one the runbook names (``spec.hosts``,
else the hosts its steps name literally). Values are rendered by a Jinja2
``SandboxedEnvironment`` with ``StrictUndefined``; each rendered value stays *one* argv
element or *one* JSON string, is capped at :data:`MAX_VALUE_CHARS` and is refused when it
holds a NUL or a newline.

Example
-------
>>> rb = parse_runbooks('''
... apiVersion: opsloop/v1
... kind: Runbook
... metadata: {name: note}
... spec:
...   match: {service: "cart"}
...   steps: [{name: echo, command: ["/bin/echo", "{{ incident.id }}", "{{ labels.pod }}"]}]
... ''', "inline.yaml", allowed_commands={"/bin/echo"})[0]
>>> ctx = TemplateContext("cart", {"id": "INC-1"}, {"pod": "a; rm -rf /"}, {}, {})
>>> render_step(rb, rb.spec.steps[0], ctx).argv
('/bin/echo', 'INC-1', 'a; rm -rf /')
"""

from __future__ import annotations

import hashlib
import json
import re
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal
from urllib.parse import urlsplit

import yaml
from jinja2 import StrictUndefined, TemplateError
from jinja2.sandbox import SandboxedEnvironment
from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator, model_validator

from core.errors import ActionError, ConfigError
from core.model import HypothesisKind

__all__ = [
    "MAX_VALUE_CHARS",
    "CdeventSpec",
    "HttpSpec",
    "RenderError",
    "RenderedStep",
    "Runbook",
    "Step",
    "TemplateContext",
    "allowed_commands_from",
    "load_files",
    "parse_duration",
    "parse_runbooks",
    "render_step",
]

#: Longest rendered value (one argv element or one JSON string).
MAX_VALUE_CHARS = 1024
_DURATION = re.compile(r"^\s*(\d+(?:\.\d+)?)\s*(ms|s|m|h|d)?\s*$")
_UNIT_S = {"ms": 0.001, "s": 1.0, "m": 60.0, "h": 3600.0, "d": 86400.0}


def parse_duration(value: str | float | int) -> float:
    """Seconds in ``30s``, ``10m``, ``1h``, ``250ms`` or a bare number of seconds.

    >>> parse_duration("10m"), parse_duration(5), parse_duration("250ms")
    (600.0, 5.0, 0.25)
    """
    if isinstance(value, bool):
        raise ValueError("a duration is a number of seconds or text such as '30s'")
    if isinstance(value, int | float):
        seconds = float(value)
    else:
        m = _DURATION.match(value)
        if m is None:
            raise ValueError(f"bad duration {value!r} (expected e.g. 30s, 10m, 1h)")
        seconds = float(m.group(1)) * _UNIT_S[m.group(2) or "s"]
    if seconds <= 0:
        raise ValueError("a duration must be positive")
    return seconds


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class HttpSpec(_Strict):
    """A webhook: AWX/Rundeck job trigger, workflow dispatch, a deploy API."""

    method: Literal["GET", "POST", "PUT", "PATCH", "DELETE"] = "POST"
    url: str = Field(max_length=2048)
    json_body: Any = Field(default=None, alias="json")
    headers: dict[str, str] = Field(default_factory=dict)

    @field_validator("url")
    @classmethod
    def _literal_host(cls, url: str) -> str:
        parts = urlsplit(url)
        if parts.scheme not in ("http", "https") or not parts.hostname:
            raise ValueError(f"url {url!r} must be http(s)://host/...")
        if "{" in parts.netloc or "}" in parts.netloc:
            raise ValueError("the url's host may not be templated (http steps go only to named hosts)")
        return url


class CdeventSpec(_Strict):
    """A CDEvents CloudEvent sent to the configured sink (``OPSLOOP_RESOLVE_CDEVENTS_SINK``)."""

    type: str = Field(pattern=r"^dev\.cdevents\.[a-z]+\.[a-z]+\.\d+\.\d+\.\d+$", max_length=200)
    subject: str = Field(default="{{ service }}", max_length=500)
    data: dict[str, Any] = Field(default_factory=dict)


class Step(_Strict):
    """One step: exactly one of ``http``, ``command`` or ``cdevent``."""

    name: str = Field(pattern=r"^[A-Za-z0-9][A-Za-z0-9_.-]{0,62}$")
    http: HttpSpec | None = None
    command: tuple[str, ...] | None = Field(default=None, min_length=1, max_length=64)
    cdevent: CdeventSpec | None = None
    timeout: float = 30.0
    retries: int = Field(default=0, ge=0, le=10)

    @field_validator("timeout", mode="before")
    @classmethod
    def _duration(cls, value: Any) -> float:
        return parse_duration(value)

    @model_validator(mode="after")
    def _one_kind(self) -> Step:
        kinds = [k for k in ("http", "command", "cdevent") if getattr(self, k) is not None]
        if len(kinds) != 1:
            raise ValueError(f"a step has exactly one of http, command, cdevent (got {kinds or 'none'})")
        return self

    @property
    def kind(self) -> str:
        """``http``, ``command`` or ``cdevent``."""
        return "http" if self.http else "command" if self.command else "cdevent"


class Match(_Strict):
    """Every given condition must hold (regexes anchored, Alertmanager matcher semantics)."""

    alert_labels: dict[str, str] = Field(default_factory=dict)
    service: str | None = None
    hypothesis_kind: HypothesisKind | None = None

    @model_validator(mode="after")
    def _regexes(self) -> Match:
        for where, pattern in [*((f"alert_labels.{k}", v) for k, v in self.alert_labels.items()),
                               ("service", self.service or "")]:  # fmt: skip
            try:
                re.compile(pattern)
            except re.error as exc:
                raise ValueError(f"{where}: bad regex {pattern!r}: {exc}") from exc
        return self


class VerifySpec(_Strict):
    """How long the signals that opened the incident must stay restored."""

    window: float = 300.0

    @field_validator("window", mode="before")
    @classmethod
    def _duration(cls, value: Any) -> float:
        return parse_duration(value)


class Limits(_Strict):
    """Per-runbook rate and concurrency limits."""

    max_runs_per_hour: int = Field(default=3, ge=1, le=1000)
    max_concurrent: int = Field(default=1, ge=1, le=100)


class Spec(_Strict):
    """What a runbook matches, how it runs, and how restoration is checked."""

    match: Match = Field(default_factory=Match)
    mode: Literal["suggest", "approve", "autonomous"] = "suggest"
    hosts: tuple[str, ...] = ()
    steps: tuple[Step, ...] = Field(min_length=1, max_length=50)
    verify: VerifySpec = Field(default_factory=VerifySpec)
    rollback: tuple[Step, ...] = Field(default=(), max_length=50)
    limits: Limits = Field(default_factory=Limits)

    @model_validator(mode="after")
    def _names_and_hosts(self) -> Spec:
        names = [s.name for s in (*self.steps, *self.rollback)]
        dupes = sorted({n for n in names if names.count(n) > 1})
        if dupes:
            raise ValueError(f"step names must be unique, repeated: {dupes}")
        if self.hosts:
            for s in (*self.steps, *self.rollback):
                host = urlsplit(s.http.url).hostname if s.http else None
                if host is not None and host not in self.hosts:
                    raise ValueError(
                        f"step {s.name!r} calls {host!r}, not one of spec.hosts {list(self.hosts)}"
                    )
        return self

    @property
    def allowed_hosts(self) -> frozenset[str]:
        """The hosts http steps may call: ``hosts``, else those the steps name."""
        if self.hosts:
            return frozenset(self.hosts)
        return frozenset(urlsplit(s.http.url).hostname or "" for s in (*self.steps, *self.rollback) if s.http)


class Metadata(_Strict):
    """Name (the runbook's identity across versions) and a description."""

    name: str = Field(pattern=r"^[a-z0-9]([a-z0-9-]{0,61}[a-z0-9])?$")
    description: str = Field(default="", max_length=2000)
    labels: dict[str, str] = Field(default_factory=dict)


class RunbookDoc(_Strict):
    """One YAML document of kind Runbook."""

    api_version: Literal["opsloop/v1"] = Field(alias="apiVersion")
    kind: Literal["Runbook"]
    metadata: Metadata
    spec: Spec


@dataclass(frozen=True, slots=True)
class Runbook:
    """A validated runbook with its content hash (same content, same hash) and catalog version."""

    name: str
    spec: Spec
    doc: Mapping[str, Any]
    hash: str
    source: str = ""
    version: int = 0

    @property
    def mode(self) -> str:
        return self.spec.mode


def allowed_commands_from(text: str | Iterable[str]) -> frozenset[str]:
    """The allowlist from ``OPSLOOP_RESOLVE_ALLOWED_COMMANDS`` (comma-separated absolute paths).

    >>> sorted(allowed_commands_from("/bin/echo, /usr/bin/true"))
    ['/bin/echo', '/usr/bin/true']
    """
    items = text.split(",") if isinstance(text, str) else list(text)
    found = frozenset(i.strip() for i in items if i.strip())
    bad = sorted(p for p in found if not Path(p).is_absolute())
    if bad:
        raise ConfigError(f"OPSLOOP_RESOLVE_ALLOWED_COMMANDS holds relative paths {bad}; use absolute ones")
    return found


def _content_hash(doc: Mapping[str, Any]) -> str:
    canonical = json.dumps(doc, sort_keys=True, separators=(",", ":"), default=str)
    return hashlib.sha256(canonical.encode()).hexdigest()[:16]


def _loc(err: Mapping[str, Any]) -> str:
    return ".".join(str(p) for p in err.get("loc", ())) or "(document)"


def parse_runbooks(text: str, source: str, *, allowed_commands: Iterable[str] = ()) -> list[Runbook]:
    """Validate every document of a runbook file; ``ConfigError`` naming file, document and field."""
    allowed = frozenset(allowed_commands)
    try:
        docs = [d for d in yaml.safe_load_all(text)]
    except yaml.YAMLError as exc:
        raise ConfigError(f"{source}: not YAML: {exc}") from exc
    found: list[Runbook] = []
    for index, raw in enumerate(docs):
        if raw is None:
            continue
        where = f"{source}: document {index}"
        if not isinstance(raw, dict):
            raise ConfigError(f"{where}: expected a mapping with apiVersion, kind, metadata, spec")
        try:
            doc = RunbookDoc.model_validate(raw)
        except ValidationError as exc:
            first = exc.errors()[0]
            raise ConfigError(f"{where}: {_loc(first)}: {first['msg']}") from exc
        for group, steps in (("steps", doc.spec.steps), ("rollback", doc.spec.rollback)):
            for i, step in enumerate(steps):
                if step.command is None:
                    continue
                exe = step.command[0]
                at = f"{where}: spec.{group}.{i}.command ({doc.metadata.name}/{step.name})"
                if "{" in exe:
                    raise ConfigError(f"{at}: the executable may not be templated")
                if exe not in allowed:
                    raise ConfigError(f"{at}: {exe!r} is not on OPSLOOP_RESOLVE_ALLOWED_COMMANDS")
        if any(r.name == doc.metadata.name for r in found):
            raise ConfigError(f"{where}: metadata.name: runbook {doc.metadata.name!r} defined twice")
        _check_templates(doc, where)
        found.append(Runbook(doc.metadata.name, doc.spec, raw, _content_hash(raw), source))
    return found


def load_files(paths: Sequence[Path], *, allowed_commands: Iterable[str] = ()) -> list[Runbook]:
    """Parse runbook files; a name defined in two files is an error naming both."""
    found: dict[str, Runbook] = {}
    for path in paths:
        try:
            text = path.read_text(encoding="utf-8")
        except OSError as exc:
            raise ConfigError(f"{path}: cannot read: {exc}") from exc
        for rb in parse_runbooks(text, str(path), allowed_commands=allowed_commands):
            if rb.name in found:
                raise ConfigError(f"{path}: runbook {rb.name!r} is also defined in {found[rb.name].source}")
            found[rb.name] = rb
    return list(found.values())


# ---------------------------------------------------------------------- templates

_ENV = SandboxedEnvironment(undefined=StrictUndefined, autoescape=False, keep_trailing_newline=True)


class RenderError(ActionError):
    """A value could not be rendered, or rendered to something unsafe (never recoverable)."""

    def __init__(self, message: str) -> None:
        super().__init__(message, recoverable=False)


@dataclass(frozen=True, slots=True)
class TemplateContext:
    """What templates may read: ``service``, ``incident.*``, ``labels.*``, ``annotations.*``, ``hypothesis.*``,
    ``change.*``."""

    service: str
    incident: Mapping[str, Any]
    labels: Mapping[str, str]
    annotations: Mapping[str, str]
    hypothesis: Mapping[str, str]
    #: the change the hypothesis names: ``id``, ``service``, ``version`` and ``previous_version``
    #: (the last known good version from the change records)
    change: Mapping[str, str] = field(default_factory=dict)

    def as_dict(self) -> dict[str, Any]:
        return {"service": self.service, "incident": dict(self.incident), "labels": dict(self.labels),
                "annotations": dict(self.annotations), "hypothesis": dict(self.hypothesis),
                "change": {"id": "", "service": "", "version": "", "previous_version": "", **self.change}}  # fmt: skip


def _check_templates(doc: RunbookDoc, where: str) -> None:
    """Every template must compile (undefined names are found when rendering)."""
    for group, steps in (("steps", doc.spec.steps), ("rollback", doc.spec.rollback)):
        for i, step in enumerate(steps):
            for value in _strings(step.model_dump(by_alias=True, exclude={"name", "timeout", "retries"})):
                try:
                    _ENV.parse(value)
                except TemplateError as exc:
                    raise ConfigError(
                        f"{where}: spec.{group}.{i} ({step.name}): bad template {value!r}: {exc}"
                    ) from exc


def _strings(value: Any) -> Iterable[str]:
    if isinstance(value, str):
        yield value
    elif isinstance(value, Mapping):
        for v in value.values():
            yield from _strings(v)
    elif isinstance(value, list | tuple):
        for v in value:
            yield from _strings(v)


def render_value(template: str, ctx: Mapping[str, Any], where: str) -> str:
    """Render one value; ``RenderError`` if undefined, too long, or holding NUL or a newline.

    >>> render_value("{{ labels.pod }}", {"labels": {"pod": "p-1"}}, "x")
    'p-1'
    >>> render_value("{{ labels.pod }}", {"labels": {"pod": "a\\nb"}}, "x")
    Traceback (most recent call last):
    ...
    resolve.runbooks.RenderError: x: rendered value holds a NUL or newline
    """
    if "{" not in template:
        value = template
    else:
        try:
            value = _ENV.from_string(template).render(ctx)
        except TemplateError as exc:
            raise RenderError(f"{where}: cannot render {template!r}: {exc}") from exc
    if "\x00" in value or "\n" in value or "\r" in value:
        raise RenderError(f"{where}: rendered value holds a NUL or newline")
    if len(value) > MAX_VALUE_CHARS:
        raise RenderError(f"{where}: rendered value is longer than {MAX_VALUE_CHARS} characters")
    return value


def _render_json(value: Any, ctx: Mapping[str, Any], where: str) -> Any:
    if isinstance(value, str):
        return render_value(value, ctx, where)
    if isinstance(value, Mapping):
        return {str(k): _render_json(v, ctx, f"{where}.{k}") for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [_render_json(v, ctx, f"{where}.{i}") for i, v in enumerate(value)]
    return value


@dataclass(frozen=True, slots=True)
class RenderedStep:
    """A step with every value rendered: what a dry run shows and the executor runs."""

    name: str
    kind: str
    timeout_s: float
    retries: int
    argv: tuple[str, ...] = ()
    request: Mapping[str, Any] = field(default_factory=dict)

    def to_wire(self) -> dict[str, Any]:
        out: dict[str, Any] = {"name": self.name, "kind": self.kind, "timeout_s": self.timeout_s,
                               "retries": self.retries}  # fmt: skip
        if self.kind == "command":
            out["argv"] = list(self.argv)
        else:
            out["request"] = dict(self.request)
        return out

    @classmethod
    def from_wire(cls, data: Mapping[str, Any]) -> RenderedStep:
        return cls(data["name"], data["kind"], float(data["timeout_s"]), int(data["retries"]),
                   tuple(data.get("argv", ())), dict(data.get("request", {})))  # fmt: skip


def render_step(runbook: Runbook, step: Step, ctx: TemplateContext) -> RenderedStep:
    """Render one step for ``ctx``; ``RenderError`` names the runbook, step and value."""
    values = ctx.as_dict()
    where = f"{runbook.name}/{step.name}"
    if step.command is not None:
        argv = (step.command[0], *(render_value(a, values, f"{where}: argv[{i + 1}]")
                                   for i, a in enumerate(step.command[1:])))  # fmt: skip
        return RenderedStep(step.name, "command", step.timeout, step.retries, argv=argv)
    if step.http is not None:
        url = render_value(step.http.url, values, f"{where}: url")
        host = urlsplit(url).hostname
        if host not in runbook.spec.allowed_hosts:
            raise RenderError(f"{where}: url host {host!r} is not one the runbook names")
        request = {"method": step.http.method, "url": url,
                   "json": _render_json(step.http.json_body, values, f"{where}: json"),
                   "headers": _render_json(step.http.headers, values, f"{where}: headers")}  # fmt: skip
        return RenderedStep(step.name, "http", step.timeout, step.retries, request=request)
    assert step.cdevent is not None
    request = {"type": step.cdevent.type, "subject": render_value(step.cdevent.subject, values, f"{where}: subject"),
               "data": _render_json(step.cdevent.data, values, f"{where}: data")}  # fmt: skip
    return RenderedStep(step.name, "cdevent", step.timeout, step.retries, request=request)
