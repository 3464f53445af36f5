"""Runbook files: strict schema with errors naming file, document and field; allowlist; hosts; templates."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from core.errors import ConfigError
from core.store import Store
from resolve.catalog import Catalog
from resolve.runbooks import (
    MAX_VALUE_CHARS,
    RenderError,
    TemplateContext,
    parse_runbooks,
    render_step,
)

ECHO = "/bin/echo"

GOOD = """
apiVersion: opsloop/v1
kind: Runbook
metadata: {name: rollback-bad-deploy}
spec:
  match:
    alert_labels: {alertname: "HighErrorRate|HighLatency"}
    service: "checkout|cart"
    hypothesis_kind: change
  mode: autonomous
  steps:
    - name: rollback
      http: {method: POST, url: "http://deployer.local/rollback",
             json: {service: "{{ service }}", change: "{{ hypothesis.change_id }}"}}
      timeout: 30s
      retries: 2
    - name: note
      command: ["/bin/echo", "{{ incident.id }}", "{{ labels.instance }}"]
  verify: {window: 10m}
  rollback:
    - name: undo
      http: {url: "http://deployer.local/undo", json: {service: "{{ service }}"}}
  limits: {max_runs_per_hour: 3, max_concurrent: 1}
---
apiVersion: opsloop/v1
kind: Runbook
metadata: {name: page}
spec:
  steps: [{name: tell, cdevent: {type: dev.cdevents.incident.reported.0.1.0}}]
"""


def _ctx(**labels: str) -> TemplateContext:
    return TemplateContext(
        "cart", {"id": "INC-7"}, labels, {}, {"service": "cart", "kind": "change", "change_id": "c1"}
    )


def test_the_issue_example_parses_with_every_field() -> None:
    first, second = parse_runbooks(GOOD, "rb.yaml", allowed_commands={ECHO})
    assert first.name == "rollback-bad-deploy" and second.name == "page"
    assert first.spec.steps[0].timeout == 30.0 and first.spec.steps[0].retries == 2
    assert first.spec.verify.window == 600.0 and first.mode == "autonomous"
    assert first.spec.allowed_hosts == {"deployer.local"}
    step = render_step(first, first.spec.steps[0], _ctx(instance="i-1"))
    assert step.request["json"] == {"service": "cart", "change": "c1"}
    assert render_step(first, first.spec.steps[1], _ctx(instance="i-1")).argv == (ECHO, "INC-7", "i-1")


@pytest.mark.parametrize(
    ("mutation", "expected"),
    [
        (("mode: autonomous", "mode: yolo"), "rb.yaml: document 0: spec.mode"),
        (("retries: 2", "retries: 2\n      shell: true"), "rb.yaml: document 0: spec.steps.0.shell"),
        (("timeout: 30s", "timeout: soon"), "rb.yaml: document 0: spec.steps.0.timeout"),
        (
            ("kind: Runbook\nmetadata: {name: page}", "kind: Runbook\nmetadata: {name: Page!}"),
            "rb.yaml: document 1: metadata.name",
        ),
        (('"http://deployer.local/undo"', '"http://{{ labels.host }}/undo"'), "may not be templated"),
        (("hypothesis_kind: change", "hypothesis_kind: luck"), "spec.match.hypothesis_kind"),
        (('service: "checkout|cart"', 'service: "(unclosed"'), "bad regex"),
        (("limits: {max_runs_per_hour: 3", "limits: {max_runs_per_hour: 0"), "spec.limits.max_runs_per_hour"),
    ],
    ids=["mode", "unknown-field", "duration", "name", "templated-host", "kind", "regex", "limit"],
)
def test_errors_name_file_document_and_field(mutation: tuple[str, str], expected: str) -> None:
    text = GOOD.replace(*mutation)
    assert text != GOOD
    with pytest.raises(ConfigError, match=expected.replace("|", r"\|").replace(".", r"\.")):
        parse_runbooks(text, "rb.yaml", allowed_commands={ECHO})


def test_a_command_off_the_allowlist_fails_the_load_naming_the_step() -> None:
    with pytest.raises(ConfigError, match=r"spec\.steps\.1\.command \(rollback-bad-deploy/note\).*/bin/echo"):
        parse_runbooks(GOOD, "rb.yaml", allowed_commands={"/usr/bin/true"})


def test_an_http_step_may_only_call_the_hosts_the_runbook_names() -> None:
    text = GOOD.replace("spec:\n  match:", "spec:\n  hosts: [other.local]\n  match:", 1)
    with pytest.raises(ConfigError, match=r"deployer\.local.*not one of spec\.hosts"):
        parse_runbooks(text, "rb.yaml", allowed_commands={ECHO})


def test_reloading_changed_content_makes_a_new_version_and_same_content_keeps_it() -> None:
    with Store(":memory:") as store:
        catalog = Catalog(store, {ECHO})
        assert [(x.runbook.version, x.changed) for x in catalog.load_text(GOOD, "a.yaml")] == [
            (1, True),
            (1, True),
        ]
        assert [(x.runbook.version, x.changed) for x in catalog.load_text(GOOD, "a.yaml")] == [
            (1, False),
            (1, False),
        ]
        changed = catalog.load_text(GOOD.replace("window: 10m", "window: 15m"), "a.yaml")
        assert [(x.runbook.name, x.runbook.version, x.changed) for x in changed] == [
            ("rollback-bad-deploy", 2, True), ("page", 1, False)]  # fmt: skip
        active = {x.runbook.name: x.runbook for x in catalog.active()}
        assert active["rollback-bad-deploy"].version == 2
        assert active["rollback-bad-deploy"].spec.verify.window == 900.0


@given(
    st.text(min_size=1, max_size=200).filter(lambda s: "\x00" not in s and "\n" not in s and "\r" not in s)
)
def test_any_label_value_renders_as_exactly_one_literal_argv_element(value: str) -> None:
    rb = parse_runbooks(GOOD, "rb.yaml", allowed_commands={ECHO})[0]
    step = render_step(rb, rb.spec.steps[1], _ctx(instance=value))
    assert step.argv == (ECHO, "INC-7", value)


@pytest.mark.parametrize(
    "value", ["a\nb", "a\x00b", "a\rb", "x" * (MAX_VALUE_CHARS + 1)], ids=["nl", "nul", "cr", "long"]
)
def test_unsafe_values_are_refused(value: str) -> None:
    rb = parse_runbooks(GOOD, "rb.yaml", allowed_commands={ECHO})[0]
    with pytest.raises(RenderError, match="rollback-bad-deploy/note"):
        render_step(rb, rb.spec.steps[1], _ctx(instance=value))


def test_an_undefined_name_is_an_error_not_an_empty_string() -> None:
    rb = parse_runbooks(GOOD, "rb.yaml", allowed_commands={ECHO})[0]
    with pytest.raises(RenderError, match="instance"):
        render_step(rb, rb.spec.steps[1], _ctx())


def test_templates_are_sandboxed() -> None:
    text = GOOD.replace('"{{ labels.instance }}"', '"{{ labels.__class__.__mro__ }}"')
    rb = parse_runbooks(text, "rb.yaml", allowed_commands={ECHO})[0]
    with pytest.raises(RenderError):
        render_step(rb, rb.spec.steps[1], _ctx(instance="x"))
