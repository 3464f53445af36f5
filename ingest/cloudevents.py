"""CloudEvents 1.0 JSON (structured and batch mode); CDEvents service events become changes.

Sources: cloudevents/spec ``cloudevents/spec.md`` and ``formats/json-format.md``;
cdevents/spec ``continuous-deployment.md``. A ``dev.cdevents.service.<verb>.<version>``
event with verb ``deployed``/``upgraded``/``rolledback``/``removed`` is a
``core.model.Change`` of the service named by ``data.subject.id`` (``service/myapp`` ->
``myapp``), in environment ``data.subject.content.environment.id``, at the version of the
``artifactId`` package URL. A ``dev.opsloop.config.changed`` event (data: ``service``
required, ``id``, ``description``, ``version``) is a ``Change`` of kind ``config``. A
``dev.opsloop.maintenance.scheduled`` event stays an ``Event`` but its data is checked
(RFC 3339 ``start`` before ``end``, ``service`` or ``services``). Everything else is an ``Event``. ``source`` + ``id`` is the
dedup key of both. One invalid event rejects the whole request, naming ``[3].time``.

Hot path: the body is decoded by msgspec straight into ``Context`` structs (attributes
checked in C, ``data`` kept as raw JSON bytes, never turned into Python objects), so an
event costs a couple of microseconds before the store. ``Event.data`` is therefore a
``msgspec.Raw`` (the store writes it verbatim as JSON; ``json.loads(bytes(data))`` reads it).
Bodies with extension attributes take a second, keys-only decode to check them.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import re
from datetime import UTC, datetime
from typing import Annotated, Any, Literal
from urllib.parse import unquote

import msgspec

from core.batch import WriteBatch, digest_of
from core.errors import DecodeError, SchemaError, UnsupportedMediaError
from core.model import Change, ChangeKind, Event
from ingest.json_wire import naive_utc, parse_rfc3339, schema_error, utcnow

FORMAT = "cloudevents"
STRUCTURED = "application/cloudevents+json"
BATCH = "application/cloudevents-batch+json"
PLAIN = "application/json"

CONTEXT_ATTRIBUTES = frozenset(
    ("specversion", "id", "source", "type", "datacontenttype", "dataschema", "subject", "time")
)
_MEMBERS = CONTEXT_ATTRIBUTES | {"data", "data_base64"}
_EXTENSION_NAME = re.compile(r"[a-z0-9]+\Z")
_VALID_NAMES: set[str] = set()
_CDEVENT_SERVICE = "dev.cdevents.service."
_CDEVENT_CHANGE = re.compile(
    r"dev\.cdevents\.service\.(deployed|upgraded|rolledback|removed)\.(\d+\.\d+\.\d+(?:-[0-9A-Za-z.-]+)?)\Z"
)
#: opsloop's own event types: a configuration change (a ``Change``) and a maintenance window
CONFIG_CHANGED = "dev.opsloop.config.changed"
MAINTENANCE_SCHEDULED = "dev.opsloop.maintenance.scheduled"
NonEmpty = Annotated[str, msgspec.Meta(min_length=1)]
_NULL = b"null"


class Context(msgspec.Struct, forbid_unknown_fields=True):
    """One event without extensions: context attributes checked, ``data`` left as raw JSON."""

    specversion: Literal["1.0"]
    id: NonEmpty
    source: NonEmpty
    type: NonEmpty
    time: Annotated[datetime, msgspec.Meta(tz=True)] | None = None
    subject: str | None = None
    datacontenttype: str | None = None
    dataschema: str | None = None
    data: msgspec.Raw = msgspec.Raw(_NULL)
    data_base64: str | None = None


class LooseContext(Context, forbid_unknown_fields=False):
    """The same, for events with extension attributes (checked from a second, keys-only decode)."""


class _ServiceProbe(msgspec.Struct):
    """Reads only ``data.service`` out of raw event data."""

    service: Any = None


_KINDS = {
    "deployed": ChangeKind.DEPLOYED,
    "upgraded": ChangeKind.UPGRADED,
    "rolledback": ChangeKind.ROLLED_BACK,
    "removed": ChangeKind.REMOVED,
}


def media_type(content_type: str) -> str:
    """Return the bare media type of a Content-Type header (no parameters, lower case)."""
    return content_type.split(";", 1)[0].strip().lower()


def decode_events(body: bytes, content_type: str = PLAIN) -> WriteBatch:
    """Decode a structured, batch or plain JSON body; raise ``SchemaError`` naming ``[i].field``.

    >>> batch = decode_events(
    ...     b'{"specversion": "1.0", "id": "1", "source": "/ci", "type": "dev.cdevents.service.deployed.0.3.0",'
    ...     b' "data": {"subject": {"id": "service/cart", "content": {"environment": {"id": "prod"},'
    ...     b' "artifactId": "pkg:oci/cart@v1.4.2?repository_url=r.example/cart"}}}}',
    ...     STRUCTURED,
    ... )
    >>> change = batch.changes[0]
    >>> change.service, change.kind.value, change.version, change.environment
    ('cart', 'deployed', 'v1.4.2', 'prod')
    """
    mtype = media_type(content_type) or PLAIN
    if mtype not in _DECODERS:
        raise UnsupportedMediaError(
            f"Content-Type must be {STRUCTURED}, {BATCH} or {PLAIN}, got {content_type!r}"
        )
    if not body.strip():
        raise DecodeError("body", "empty body: expected JSON")
    strict, loose, keys_only = _DECODERS[mtype]
    extensions: list[dict[str, msgspec.Raw]] | None = None
    try:
        decoded = _decode(strict, body)
    except _UnknownField:
        decoded = _decode(loose, body)
        raw_keys = _decode(keys_only, body)
        extensions = raw_keys if isinstance(raw_keys, list) else [raw_keys]
    prefix = isinstance(decoded, list)
    contexts: list[Context] = decoded if isinstance(decoded, list) else [decoded]
    now = utcnow()
    events: list[Event] = []
    changes: list[Change] = []
    for i, context in enumerate(contexts):
        where = f"[{i}]." if prefix else ""
        ce = _event(context, extensions[i] if extensions is not None else None, where, now)
        match = _CDEVENT_CHANGE.match(ce.type) if ce.type.startswith(_CDEVENT_SERVICE) else None
        if match:
            changes.append(_change(ce, context.time is not None, match.group(1), where))
        elif ce.type == CONFIG_CHANGED:
            changes.append(_config_change(ce, where))
        else:
            if ce.type == MAINTENANCE_SCHEDULED:
                _check_maintenance(ce, where)
            events.append(ce)
    return WriteBatch(
        source=FORMAT,
        digest=digest_of(FORMAT, body),
        events=events,
        changes=changes,
        samples=len(contexts),
    )


class _UnknownField(Exception):
    """The fast decode met an attribute it does not know: an extension (or a typo)."""


def _decode(decoder: msgspec.json.Decoder[Any], body: bytes) -> Any:
    try:
        return decoder.decode(body)
    except msgspec.ValidationError as exc:
        if str(exc).startswith("Object contains unknown field"):
            raise _UnknownField from exc
        raise schema_error(exc) from exc
    except msgspec.DecodeError as exc:
        raise DecodeError("body", f"invalid JSON: {exc}") from exc


def _event(context: Context, raw: dict[str, msgspec.Raw] | None, where: str, now: datetime) -> Event:
    """Return one checked event as an ``Event``; extensions and ``data_base64`` checked here."""
    attributes: dict[str, Any] = {}
    if context.datacontenttype is not None:
        attributes["datacontenttype"] = context.datacontenttype
    if context.dataschema is not None:
        attributes["dataschema"] = context.dataschema
    stamp = context.time
    if stamp is None:
        ts = now
    elif stamp.tzinfo is UTC:
        ts = stamp.replace(tzinfo=None)
    else:
        ts = naive_utc(stamp, where + "time")
    data: Any = None if context.data == _NULL_RAW else context.data
    if context.data_base64 is not None:
        if data is not None:
            raise SchemaError(where + "data_base64", "data and data_base64 are mutually exclusive")
        data = _base64(context.data_base64, where + "data_base64")
        attributes["data_base64"] = True
    if raw is not None:
        extra = raw.keys() - _MEMBERS
        if extra:
            _extensions(raw, extra, attributes, where)
    subject = context.subject or ""
    return Event(
        id=context.id,
        source=context.source,
        type=context.type,
        ts=ts,
        subject=subject,
        service=_service(data, context.type, subject),
        data=data,
        attributes=attributes,
    )


def _base64(value: str, field: str) -> str:
    try:
        base64.b64decode(value, validate=True)
    except (binascii.Error, ValueError) as exc:
        raise SchemaError(field, "not valid base64") from exc
    return value


def _extensions(raw: dict[str, msgspec.Raw], names: set[str], attributes: dict[str, Any], where: str) -> None:
    for name in sorted(names):
        if name not in _VALID_NAMES:
            if not _EXTENSION_NAME.match(name):
                raise SchemaError(where + name, "extension attribute names must match [a-z0-9]+")
            if len(_VALID_NAMES) < 10_000:  # senders use a handful of extensions: skip the regex
                _VALID_NAMES.add(name)
        value = msgspec.json.decode(raw[name])
        if value is None:  # null means unset
            continue
        if type(value) not in (str, int, bool, float):
            raise SchemaError(where + name, "extension attributes must be strings, numbers or booleans")
        attributes[name] = value


def _service(data: Any, ce_type: str, subject: str) -> str:
    """The service an event is about: ``data.service``, else a CDEvents service subject."""
    if isinstance(data, msgspec.Raw):
        try:
            service = _SERVICE_PROBE.decode(data).service
        except msgspec.ValidationError:  # data is not an object
            service = None
        if type(service) is str and service:
            return service
    if subject and ce_type.startswith(_CDEVENT_SERVICE):
        return service_name(subject)
    return ""


def service_name(subject_id: str) -> str:
    """Return the service a CDEvents service subject id names.

    >>> service_name("service/myapp"), service_name("myapp"), service_name("daemonset/myapp/")
    ('myapp', 'myapp', 'myapp')
    """
    return subject_id.rstrip("/").rsplit("/", 1)[-1] or subject_id


def purl_version(artifact_id: str) -> str:
    """Return the version of a package URL, or '' when it is not a purl or has none.

    >>> purl_version("pkg:oci/myapp@sha256%3A0b31b1c0?repository_url=x")
    'sha256:0b31b1c0'
    >>> purl_version("pkg:golang/mygit.com/myorg/myapp@234fd47e07d1004f0aed9c")
    '234fd47e07d1004f0aed9c'
    >>> purl_version("six-1.14.0-py2.py3-none-any.whl")
    ''
    """
    if not artifact_id.startswith("pkg:"):
        return ""
    rest = artifact_id.split("#", 1)[0].split("?", 1)[0]
    _, at, version = rest.rpartition("@")
    return unquote(version) if at else ""


def _object(value: Any, field: str, required: bool = True) -> dict[str, Any]:
    if value is None and not required:
        return {}
    if type(value) is not dict:
        raise SchemaError(field, "must be an object")
    return value


def _change(ce: Event, has_time: bool, verb: str, where: str) -> Change:
    """Turn a CDEvents service event into a ``Change``; the CDEvent must carry a subject id."""
    if not isinstance(ce.data, msgspec.Raw):
        raise SchemaError(where + "data", "a CDEvent must carry its JSON in data")
    data = _object(msgspec.json.decode(ce.data), where + "data")
    subject = _object(data.get("subject"), where + "data.subject")
    subject_id = subject.get("id")
    if type(subject_id) is not str or not subject_id:
        raise SchemaError(where + "data.subject.id", "required: the id of the service")
    content = _object(subject.get("content"), where + "data.subject.content", required=False)
    environment = _object(
        content.get("environment"), where + "data.subject.content.environment", required=False
    )
    env_id = environment.get("id", "")
    if type(env_id) is not str:
        raise SchemaError(where + "data.subject.content.environment.id", "must be a string")
    artifact_id = content.get("artifactId", "")
    if type(artifact_id) is not str:
        raise SchemaError(where + "data.subject.content.artifactId", "must be a string")
    ts = ce.ts
    context = data.get("context")
    if not has_time and type(context) is dict and context.get("timestamp") is not None:
        ts = parse_rfc3339(context["timestamp"], where + "data.context.timestamp")
    service = service_name(subject_id)
    version = purl_version(artifact_id)
    description = (
        f"{verb} {service}" + (f" {version}" if version else "") + (f" in {env_id}" if env_id else "")
    )
    attributes = dict(ce.attributes)
    attributes.update(
        {"ce_id": ce.id, "ce_type": ce.type, "subject_id": subject_id, "artifact_id": artifact_id}
    )
    if ce.subject:
        attributes["subject"] = ce.subject
    return Change(
        id=change_id(ce.source, ce.id),
        service=service,
        kind=_KINDS[verb],
        ts=ts,
        version=version,
        environment=env_id,
        source=ce.source,
        description=description,
        attributes=attributes,
    )


def _data_object(ce: Event, where: str) -> dict[str, Any]:
    if not isinstance(ce.data, msgspec.Raw):
        raise SchemaError(where + "data", f"a {ce.type} event must carry a JSON object in data")
    return _object(msgspec.json.decode(ce.data), where + "data")


def _optional_text(data: dict[str, Any], key: str, where: str) -> str:
    value = data.get(key, "")
    if value is None:
        return ""
    if type(value) is not str:
        raise SchemaError(f"{where}data.{key}", "must be a string")
    return value


def _config_change(ce: Event, where: str) -> Change:
    """Turn a ``dev.opsloop.config.changed`` event into a ``Change`` of kind ``config``.

    ``data.id`` (the change's own id, e.g. a config repository commit) becomes the change id
    when given; otherwise the id is derived from the event's ``source`` and ``id``.
    """
    data = _data_object(ce, where)
    service = data.get("service")
    if type(service) is not str or not service:
        raise SchemaError(where + "data.service", "required: the service whose configuration changed")
    own_id = _optional_text(data, "id", where)
    version = _optional_text(data, "version", where)
    description = _optional_text(data, "description", where) or f"config change on {service}" + (
        f" to {version}" if version else ""
    )
    attributes = dict(ce.attributes)
    attributes.update({"ce_id": ce.id, "ce_type": ce.type})
    if ce.subject:
        attributes["subject"] = ce.subject
    return Change(
        id=own_id or change_id(ce.source, ce.id),
        service=service,
        kind=ChangeKind.CONFIG,
        ts=ce.ts,
        version=version,
        source=ce.source,
        description=description,
        attributes=attributes,
    )


def _check_maintenance(ce: Event, where: str) -> None:
    """Check a maintenance window's data: RFC 3339 ``start`` < ``end``, ``service`` or ``services``."""
    data = _data_object(ce, where)
    start = parse_rfc3339(data.get("start"), where + "data.start")
    end = parse_rfc3339(data.get("end"), where + "data.end")
    if end <= start:
        raise SchemaError(where + "data.end", "must be after data.start")
    service, services = data.get("service"), data.get("services")
    if service is None and services is None:
        raise SchemaError(where + "data.service", "required (or data.services): the services in maintenance")
    if service is not None and (type(service) is not str or not service):
        raise SchemaError(where + "data.service", "must be a non-empty string")
    if services is not None:
        if type(services) is not list or not services:
            raise SchemaError(where + "data.services", "must be a non-empty list of service names")
        for i, name in enumerate(services):
            if type(name) is not str or not name:
                raise SchemaError(f"{where}data.services[{i}]", "must be a non-empty string")


def change_id(source: str, event_id: str) -> str:
    """Return the change id of a CloudEvent: a hash of its ``source`` and ``id`` (the dedup key).

    >>> change_id("/ci", "1") == change_id("/ci", "1") != change_id("/ci2", "1")
    True
    """
    digest = hashlib.blake2b(f"{source}\x00{event_id}".encode(), digest_size=12).hexdigest()
    return f"ce-{digest}"


def _decoders(type_: Any, loose_type: Any, keys_type: Any) -> tuple[Any, Any, Any]:
    return (
        msgspec.json.Decoder(type_),
        msgspec.json.Decoder(loose_type),
        msgspec.json.Decoder(keys_type),
    )


_Keys = dict[str, msgspec.Raw]
_DECODERS: dict[str, tuple[Any, Any, Any]] = {
    STRUCTURED: _decoders(Context, LooseContext, _Keys),
    BATCH: _decoders(list[Context], list[LooseContext], list[_Keys]),
    PLAIN: _decoders(list[Context] | Context, list[LooseContext] | LooseContext, list[_Keys] | _Keys),
}
_SERVICE_PROBE = msgspec.json.Decoder(_ServiceProbe)
_NULL_RAW = msgspec.Raw(_NULL)
