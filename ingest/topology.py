"""Service topology (a lightweight CMDB) from YAML or JSON.

::

    services:
      - name: checkout
        tier: 1                 # 1 (most critical) .. 4; default 3
        owner: team-checkout
        depends_on: [payments, cart]
        consumer_facing: true   # default false
        attributes: {slack: "#checkout"}   # free-form, optional

Validation is strict, as for Alertmanager's config: unknown keys are errors (a typo such as
``depend_on`` would otherwise silently drop edges), names are unique, every ``depends_on``
entry names a listed service, and a service may not depend on itself. Cycles are allowed
(real systems have them). Errors name the path: ``services[3].depends_on[1]``.
"""

from __future__ import annotations

import json
import re
from collections.abc import Sequence
from typing import Any

import yaml

from core.batch import WriteBatch
from core.errors import DecodeError, SchemaError
from core.model import ConfigurationItem
from core.store import Store

FORMAT = "topology"
SERVICE_KEYS = ("name", "tier", "owner", "depends_on", "consumer_facing", "attributes")
_NAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9._:/-]*\Z")


def load_document(text: bytes | str, content_type: str = "") -> Any:
    """Parse a topology document: JSON when the content type says so, YAML otherwise.

    YAML aliases are refused: expanded into JSON attributes they can blow up exponentially.
    """
    if "json" in content_type.lower():
        try:
            return json.loads(text)
        except (ValueError, RecursionError) as exc:
            raise DecodeError("body", f"invalid JSON: {exc}") from exc
    if isinstance(text, bytes):
        try:
            text = text.decode("utf-8")
        except UnicodeDecodeError as exc:
            raise DecodeError("body", "topology must be UTF-8 text") from exc
    try:
        for event in yaml.parse(text, Loader=yaml.SafeLoader):
            if isinstance(event, yaml.AliasEvent):
                raise DecodeError("body", "YAML aliases (*name) are not allowed in a topology")
        return yaml.safe_load(text)
    except (yaml.YAMLError, RecursionError) as exc:
        raise DecodeError("body", f"invalid YAML: {exc}") from exc


def parse_topology(document: Any) -> list[ConfigurationItem]:
    """Validate a parsed document and return its services; raise ``SchemaError`` naming the path.

    >>> items = parse_topology({"services": [
    ...     {"name": "web", "tier": 1, "depends_on": ["db"], "consumer_facing": True},
    ...     {"name": "db", "tier": 2, "owner": "dba"}]})
    >>> [(ci.name, ci.tier, ci.depends_on) for ci in items]
    [('web', 1, ('db',)), ('db', 2, ())]
    >>> parse_topology({"services": [{"name": "web", "depends_on": ["nope"]}]})
    Traceback (most recent call last):
    ...
    core.errors.SchemaError: services[0].depends_on[0]: unknown service 'nope'
    """
    if not isinstance(document, dict):
        raise SchemaError("services", "expected a mapping with a 'services' list")
    extra = [k for k in document if k != "services"]
    if extra:
        raise SchemaError(str(extra[0]), "unknown top-level key (only 'services' is allowed)")
    services = document.get("services")
    if services is None:
        services = []
    if not isinstance(services, list):
        raise SchemaError("services", "must be a list")
    names: dict[str, int] = {}
    for i, entry in enumerate(services):
        where = f"services[{i}]"
        if not isinstance(entry, dict):
            raise SchemaError(where, "each service must be a mapping")
        name = entry.get("name")
        if not isinstance(name, str) or not _NAME.match(name):
            raise SchemaError(f"{where}.name", "required: letters, digits and . _ : / - (no spaces)")
        if name in names:
            raise SchemaError(
                f"{where}.name", f"duplicate service {name!r} (first at services[{names[name]}])"
            )
        names[name] = i
    return [_item(entry, f"services[{i}]", names) for i, entry in enumerate(services)]


def _item(entry: dict[Any, Any], where: str, names: dict[str, int]) -> ConfigurationItem:
    for key in entry:
        if key not in SERVICE_KEYS:
            raise SchemaError(f"{where}.{key}", f"unknown key (allowed: {', '.join(SERVICE_KEYS)})")
    name: str = entry["name"]
    tier = entry.get("tier", 3)
    if type(tier) is not int or not 1 <= tier <= 4:
        raise SchemaError(f"{where}.tier", f"must be an integer from 1 to 4, got {tier!r}")
    owner = entry.get("owner", "")
    if owner is None:
        owner = ""
    if not isinstance(owner, str):
        raise SchemaError(f"{where}.owner", "must be a string")
    consumer_facing = entry.get("consumer_facing", False)
    if not isinstance(consumer_facing, bool):
        raise SchemaError(f"{where}.consumer_facing", "must be true or false")
    attributes = entry.get("attributes") or {}
    if not isinstance(attributes, dict) or not all(isinstance(k, str) for k in attributes):
        raise SchemaError(f"{where}.attributes", "must be a mapping with string keys")
    try:
        json.dumps(attributes, allow_nan=False)
    except (TypeError, ValueError) as exc:
        raise SchemaError(f"{where}.attributes", f"must hold plain JSON values: {exc}") from exc
    depends = entry.get("depends_on") or []
    if not isinstance(depends, list):
        raise SchemaError(f"{where}.depends_on", "must be a list of service names")
    seen: set[str] = set()
    for j, dep in enumerate(depends):
        at = f"{where}.depends_on[{j}]"
        if not isinstance(dep, str):
            raise SchemaError(at, "must be a service name")
        if dep == name:
            raise SchemaError(at, f"{name!r} cannot depend on itself")
        if dep not in names:
            raise SchemaError(at, f"unknown service {dep!r}")
        if dep in seen:
            raise SchemaError(at, f"{dep!r} is listed twice")
        seen.add(dep)
    return ConfigurationItem(
        name=name,
        tier=tier,
        owner=owner,
        depends_on=tuple(depends),
        consumer_facing=consumer_facing,
        attributes=attributes,
    )


def decode_topology(body: bytes, content_type: str = "") -> WriteBatch:
    """Parse and validate a topology body into a batch that replaces the stored topology."""
    items = parse_topology(load_document(body, content_type))
    return WriteBatch(source=FORMAT, topology=items)


def current_topology(store: Store, *, learned: bool = True) -> list[ConfigurationItem]:
    """Return the stored topology, services sorted by name.

    With ``learned`` (the default), services the declared topology does not list come from
    the call graph learned from spans (``attributes.learned``); a declared service wins.
    """
    declared = _declared_topology(store)
    if not learned:
        return declared
    from ingest.span_metrics import learned_topology, merge_topology

    return merge_topology(declared, learned_topology(store))


def _declared_topology(store: Store) -> list[ConfigurationItem]:
    rows = store.query(
        "SELECT service, tier, owner, depends_on, consumer_facing, attributes FROM topology ORDER BY service"
    )
    return [
        ConfigurationItem(
            name=r[0],
            tier=int(r[1]) if r[1] is not None else 3,
            owner=r[2] or "",
            depends_on=tuple(r[3] or ()),
            consumer_facing=bool(r[4]),
            attributes=json.loads(r[5]) if r[5] else {},
        )
        for r in rows
    ]


def to_document(items: Sequence[ConfigurationItem]) -> dict[str, Any]:
    """Return services in the same shape ``parse_topology`` reads (round-trips)."""
    services = []
    for ci in items:
        entry: dict[str, Any] = {
            "name": ci.name,
            "tier": ci.tier,
            "owner": ci.owner,
            "depends_on": list(ci.depends_on),
            "consumer_facing": ci.consumer_facing,
        }
        if ci.attributes:
            entry["attributes"] = dict(ci.attributes)
        services.append(entry)
    return {"services": services}
