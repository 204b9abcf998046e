"""The report in a real browser: headless Chromium renders it offline, and nothing goes wrong.

Chromium runs with networking made impossible (a proxy on a closed port, every host name
unresolvable), so a report that needed the network would show it: the Content-Security-Policy
of the page blocks any load and Chromium logs the violation as a console message. The test
fails on any console message (blocked loads, script errors, uncaught exceptions), checks that
the screenshot shows a page, and that the DOM holds the hostile names of the run as text.

Without Chromium the tests skip, except under CI (``CI=true``), where they fail: ``.ci/run``
installs it.
"""

from __future__ import annotations

import os
import shutil
import subprocess
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from cytoflow_res.experiment import Experiment
from cytoflow_res.report import write_report
from tests.test_report import HOSTILE, HOSTILE_FILE, messy_design

BROWSERS = ("chromium", "chromium-browser")
FLAGS = (
    "--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
    "--disable-background-networking", "--disable-component-update", "--disable-sync",
    "--disable-dev-shm-usage", "--proxy-server=127.0.0.1:9", "--host-resolver-rules=MAP * ~NOTFOUND",
    "--enable-logging=stderr", "--v=0",
)
TIMEOUT = 120


def _in_ci() -> bool:
    return os.environ.get("CI", "").strip().lower() in {"1", "true", "yes"}


@pytest.fixture(scope="module")
def chromium() -> str:
    for name in BROWSERS:
        found = shutil.which(name)
        if found:
            return found
    why = "headless Chromium (Debian package 'chromium') is not installed"
    if _in_ci():
        pytest.fail(f"{why}; CI must install it (.ci/run does: apt-get install chromium)")
    pytest.skip(f"{why}: browser test skipped")


@pytest.fixture(scope="module")
def report(tmp_path_factory: pytest.TempPathFactory) -> Path:
    folder = tmp_path_factory.mktemp("browser")
    sheet = messy_design(folder / "data", apoptosis_arms=("vehicle", "drugA"), cellcycle=False,
                         corrupt=False)
    result = Experiment.from_design(sheet).run(progress=False)
    return write_report(result, folder / "out")  # the report draws its own figures


def _browse(binary: str, page: Path, profile: Path, *args: str) -> subprocess.CompletedProcess[str]:
    command = [binary, *FLAGS, f"--user-data-dir={profile}", *args, page.as_uri()]
    return subprocess.run(command, capture_output=True, text=True, timeout=TIMEOUT, check=False)


def _console(stderr: str) -> list[str]:
    """Chromium's log lines of console messages (errors, CSP violations, uncaught exceptions)."""
    return [line for line in stderr.splitlines() if ":CONSOLE" in line or "Uncaught" in line]


def test_report_renders_offline_without_console_messages(chromium: str, report: Path, tmp_path: Path) -> None:
    shot = tmp_path / "shot.png"
    done = _browse(chromium, report, tmp_path / "profile", f"--screenshot={shot}", "--window-size=1280,2000",
                   "--hide-scrollbars")
    assert done.returncode == 0, done.stderr[-2000:]
    assert _console(done.stderr) == []
    assert shot.is_file()
    with Image.open(shot) as image:
        assert image.size == (1280, 2000)
        grey = np.asarray(image.convert("L"), dtype=float)
    ink = grey < 128
    assert 0.005 < ink.mean() < 0.5  # text and figures, not a blank or black page
    assert ink[:400].any()  # the title and banner at the top
    assert grey.std() > 10


def test_dom_holds_the_hostile_names_as_text(chromium: str, report: Path, tmp_path: Path) -> None:
    done = _browse(chromium, report, tmp_path / "profile", "--dump-dom")
    assert done.returncode == 0, done.stderr[-2000:]
    assert _console(done.stderr) == []
    dom = done.stdout
    assert "cytoflow_res report" in dom
    assert "<script" not in dom.lower()
    assert "&lt;script&gt;alert(1)&lt;/script&gt;" in dom
    assert HOSTILE not in dom
    assert "evil&lt;img src=x onerror=alert(1)&gt;.fcs" in dom
    assert HOSTILE_FILE not in dom
