"""The README quick start, run verbatim: every command of its tested block succeeds.

The block is taken from README.md's "Quick start" section (the ``bash`` block after the sentence
naming this test) and run with ``bash -e`` in a fresh directory laid out like a clone (``.venv``
and ``samples`` linked in), on a fresh database, with the server it starts running meanwhile.
Only the port is chosen by the test (``OPSLOOP_PORT``), so parallel runs do not collide.
"""

from __future__ import annotations

import os
import re
import signal
import subprocess
from pathlib import Path

from tests.conftest import free_port

ROOT = Path(__file__).resolve().parents[1]


def quickstart_block(readme: str) -> str:
    """The shell block of the Quick start that names this test.

    >>> quickstart_block("## Quick start\\ntests/test_quickstart.py runs\\n```bash\\necho hi\\n```\\n## Next")
    'echo hi\\n'
    """
    section = readme.split("## Quick start", 1)[1].split("\n## ", 1)[0]
    tail = section.split("tests/test_quickstart.py", 1)[1]
    match = re.search(r"```bash\n(.*?)```", tail, re.S)
    assert match, "the Quick start has a bash block after naming tests/test_quickstart.py"
    return match.group(1)


def test_readme_quick_start_runs_verbatim(tmp_path: Path) -> None:
    block = quickstart_block((ROOT / "README.md").read_text())
    assert "opsloop serve" in block and "token create --scope admin" in block
    (tmp_path / ".venv").symlink_to(ROOT / ".venv")
    (tmp_path / "samples").symlink_to(ROOT / "samples")
    env = {k: v for k, v in os.environ.items() if not k.startswith("OPSLOOP_")}
    env["OPSLOOP_PORT"] = str(free_port())
    script = "set -euo pipefail\nset -x\ntrap 'kill $(jobs -p) 2>/dev/null || true' EXIT\n" + block
    proc = subprocess.Popen(
        ["bash", "-c", script],
        cwd=tmp_path,
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
        start_new_session=True,
    )
    try:
        out, _ = proc.communicate(timeout=420)
    finally:
        if proc.poll() is None:
            os.killpg(proc.pid, signal.SIGKILL)
            proc.wait()
    log = (tmp_path / "serve.log").read_text() if (tmp_path / "serve.log").exists() else ""
    assert proc.returncode == 0, f"{out[-6000:]}\n--- serve.log ---\n{log[-3000:]}"
    assert "Traceback" not in out and "Traceback" not in log, out[-4000:]
    assert f"listening on http://127.0.0.1:{env['OPSLOOP_PORT']}" in log
    assert "1 token (1 admin)" in log
    assert "committed" in out and "samples/metrics.csv" in out
    assert "Disk [/var] full" in out, "the silence's matcher is shown literally"
    assert "INC-1" in out
