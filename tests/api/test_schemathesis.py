"""schemathesis against ``/openapi.json`` of a real served app, every operation, with a valid token.

Each operation gets a bounded number of generated requests (valid and invalid ones); every answer
must be no 5xx, a documented status, the documented content type and body schema, and any time in
a JSON body must be RFC 3339 with ``Z``. The budget keeps the whole run well under two minutes.
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import schemathesis
from hypothesis import HealthCheck, Phase, given, settings
from hypothesis.errors import Unsatisfiable
from schemathesis.generation import GenerationMode
from schemathesis.specs.openapi.checks import (
    content_type_conformance,
    response_schema_conformance,
    status_code_conformance,
)

from core.settings import Settings
from tests.conftest import LiveServer, free_port, serving

EXAMPLES = 8  # per operation and mode: ~70 operations x 2 modes stays well under two minutes
_ISO = re.compile(r"^\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}(\.\d+)?(?P<zone>Z|[+-]\d{2}:\d{2})?$")


def naive_times(value: Any, path: str = "$") -> Iterator[str]:
    """Paths in a JSON value whose string is an ISO time without ``Z``.

    >>> list(naive_times({"a": ["2024-05-01T00:00:00Z", "2024-05-01T00:00:00"]}))
    ['$.a[1]']
    """
    if isinstance(value, dict):
        for key, item in value.items():
            yield from naive_times(item, f"{path}.{key}")
    elif isinstance(value, list):
        for i, item in enumerate(value):
            yield from naive_times(item, f"{path}[{i}]")
    elif isinstance(value, str):
        m = _ISO.match(value)
        if m and m.group("zone") != "Z":
            yield path


@pytest.fixture(scope="module")
def served(tmp_path_factory: pytest.TempPathFactory) -> Iterator[LiveServer]:
    """One server for the whole fuzz run, with an admin token (every scope)."""
    tmp: Path = tmp_path_factory.mktemp("fuzz")
    settings = Settings(db=str(tmp / "fuzz.duckdb"), port=free_port(), max_body_bytes=1024 * 1024)
    with serving(settings) as live:
        live.token = live.store.create_token(["admin"], "fuzz")
        yield live


def test_every_operation_holds_under_fuzzing(served: LiveServer) -> None:
    schema = schemathesis.openapi.from_url(f"{served.url}/openapi.json")
    headers = {"Authorization": f"Bearer {served.token}"}
    checks = [
        schemathesis.checks.not_a_server_error,
        status_code_conformance,
        content_type_conformance,
        response_schema_conformance,
    ]
    operations = [op.ok() for op in schema.get_all_operations()]
    assert len(operations) > 30, "the fuzz run should see every route"
    failures: list[str] = []
    for operation in operations:
        for mode in (GenerationMode.POSITIVE, GenerationMode.NEGATIVE):

            @given(case=operation.as_strategy(generation_mode=mode))
            @settings(
                max_examples=EXAMPLES,
                phases=[Phase.explicit, Phase.generate],
                suppress_health_check=list(HealthCheck),
                deadline=None,
                database=None,
            )
            def run(case: schemathesis.Case) -> None:
                response = case.call(base_url=served.url, headers=headers, timeout=30)
                if response.status_code == 400 and response.text == "Invalid HTTP request received.":
                    return  # uvicorn refused the bytes (a fuzzed header such as content-length: f): the app never saw it
                case.validate_response(response, checks=checks)
                if "json" in response.headers.get("content-type", [""])[0]:
                    bad = list(naive_times(response.json()))
                    assert not bad, f"times without Z at {bad}"

            try:
                run()
            except Unsatisfiable:  # nothing to make invalid (an operation without inputs)
                assert mode is GenerationMode.NEGATIVE, f"{operation.label}: no valid request"
            except (AssertionError, BaseExceptionGroup) as exc:  # report every operation's failure
                failures.append(f"{operation.label} [{mode.value}]: {str(exc)[:1500]}")
    assert not failures, "\n\n".join(failures)
