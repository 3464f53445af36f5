"""The public status page in a real headless Chromium (Debian's ``chromium``) at phone size: the
component's state during a simulated incident and after it resolves, an approved public update on
the page, nothing internal in the DOM, and a screenshot kept as a test artefact
(``build/status-screenshot.png``)."""

from __future__ import annotations

import shutil
import struct
import subprocess
from collections.abc import Iterator
from dataclasses import replace
from datetime import timedelta
from html.parser import HTMLParser
from pathlib import Path

import pytest

from core.model import Alert, AlertStatus, Hypothesis, HypothesisKind
from core.settings import Settings
from tests.api.alerting import incident, seed, utcnow
from tests.conftest import LiveServer, free_port, serving

PHONE = (390, 844)
ARTEFACT = Path(__file__).resolve().parents[2] / "build" / "status-screenshot.png"
TOPOLOGY = {"services": [
    {"name": "storefront", "tier": 1, "consumer_facing": True, "depends_on": ["orders-db"]},
    {"name": "payments", "tier": 1, "depends_on": ["orders-db"]},
    {"name": "orders-db", "tier": 2},
]}  # fmt: skip
HOST, POD, EVIDENCE = "ip-10-0-3-17.internal", "orders-db-7f9c", "connection pool exhausted"
INTERNAL = (HOST, POD, EVIDENCE, "orders-db", "HighErrorRate", "SF-1", "payments-squad", "<script>")


def chromium() -> str:
    for name in ("chromium", "chromium-browser"):
        found = shutil.which(name)
        if found:
            return found
    pytest.skip("chromium is not installed (Debian package chromium: `make integration-deps` installs it)")


class PageFacts(HTMLParser):
    """What the status page's DOM says: the indicator, each component's state, incidents, updates."""

    def __init__(self) -> None:
        super().__init__()
        self.indicator = ""
        self.components: dict[str, str] = {}
        self.incidents: list[str] = []
        self.updates: list[str] = []

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        a = {k: v or "" for k, v in attrs}
        if "data-indicator" in a:
            self.indicator = a["data-indicator"]
        if "data-component" in a:
            self.components[a["data-component"]] = a.get("data-status", "")
        if "data-incident" in a:
            self.incidents.append(a.get("data-status", ""))
        if "data-update-status" in a:
            self.updates.append(a["data-update-status"])


def browse(browser: str, url: str, out: Path, name: str) -> tuple[str, Path]:
    """Open ``url`` in headless Chromium at phone size: its DOM after load, and a screenshot."""
    common = [browser, "--headless", "--disable-gpu", "--no-sandbox", "--disable-dev-shm-usage", "--no-first-run",
              "--hide-scrollbars", f"--user-data-dir={out / 'profile'}", f"--window-size={PHONE[0]},{PHONE[1]}"]  # fmt: skip
    shot = out / f"{name}.png"
    subprocess.run([*common, f"--screenshot={shot}", url], check=True, capture_output=True, timeout=120)
    dom = subprocess.run(
        [*common, "--dump-dom", url], check=True, capture_output=True, text=True, timeout=120
    )
    return dom.stdout, shot


def png_size(path: Path) -> tuple[int, int]:
    data = path.read_bytes()
    assert data[:8] == b"\x89PNG\r\n\x1a\n" and data[12:16] == b"IHDR", f"{path} is not a PNG"
    width, height = struct.unpack(">II", data[16:24])
    return int(width), int(height)


def facts(dom: str) -> PageFacts:
    parsed = PageFacts()
    parsed.feed(dom)
    return parsed


@pytest.fixture
def server(tmp_path: Path) -> Iterator[LiveServer]:
    with serving(Settings(db=str(tmp_path / "status.duckdb"), port=free_port())) as live:
        with live.client() as client:
            assert client.put("/api/v1/topology", json=TOPOLOGY).status_code == 200
        yield live


def test_status_page_in_chromium_during_and_after_an_incident(server: LiveServer, tmp_path: Path) -> None:
    browser = chromium()
    url = f"{server.url}/status"
    dom, _ = browse(browser, url, tmp_path, "before")
    before = facts(dom)
    assert before.components == {"storefront": "operational", "payments": "operational"}
    assert before.indicator == "none" and before.incidents == []

    inc = replace(incident("SF-1", utcnow() - timedelta(minutes=4), "storefront", priority="P1"),
                  title=f"storefront: {EVIDENCE} on {HOST}", services=("storefront", "orders-db"),
                  team="payments-squad",
                  hypotheses=(Hypothesis(1, "orders-db", HypothesisKind.RESOURCE, 0.9,
                                         {"log": EVIDENCE, "pod": POD}, POD, "restart <script>"),))  # fmt: skip
    alert = Alert("al-1", "fp-1", "HighErrorRate", AlertStatus.FIRING, inc.opened_at, service="orders-db",
                  labels={"pod": POD, "instance": HOST, "note": "<script>alert(1)</script>"}, incident_id="SF-1")  # fmt: skip
    seed(server.store, [inc], [alert])
    with server.client() as client:
        published = client.post("/api/v1/incidents/SF-1/public-update", json={"approve": True, "by": "alice"})
        assert published.status_code == 201, published.text
    dom, shot = browse(browser, url, tmp_path, "during")
    during = facts(dom)
    assert during.components == {"storefront": "major_outage", "payments": "operational"}
    assert during.indicator == "critical"
    assert during.incidents == ["investigating"] and during.updates == ["investigating"]
    assert published.json()["body"] in dom
    for bit in INTERNAL:
        assert bit not in dom, bit
    assert png_size(shot) == PHONE
    ARTEFACT.parent.mkdir(exist_ok=True)
    shutil.copyfile(shot, ARTEFACT)

    with server.client() as client:
        assert client.post("/api/v1/incidents/SF-1/resolve", json={}).status_code == 200
    dom, shot = browse(browser, url, tmp_path, "after")
    after = facts(dom)
    assert after.components == {"storefront": "operational", "payments": "operational"}
    assert after.indicator == "none" and after.incidents == []
    history = facts(browse(browser, f"{server.url}/status/history", tmp_path, "history")[0])
    assert history.incidents == ["resolved"] and history.updates == ["resolved", "investigating"]
    for bit in INTERNAL:
        assert bit not in dom, bit
    assert png_size(shot) == PHONE
    shutil.copyfile(shot, ARTEFACT.with_name("status-screenshot-resolved.png"))
