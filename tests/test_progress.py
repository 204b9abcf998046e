"""The progress bar: off unless on a terminal (or asked), throttled, safe at the edges."""

from __future__ import annotations

import io

import pytest

from cytoflow_res import _progress
from cytoflow_res._progress import Progress


class FakeClock:
    def __init__(self) -> None:
        self.t = 1000.0

    def __call__(self) -> float:
        return self.t


class FakeTTY(io.StringIO):
    def isatty(self) -> bool:
        return True


class BrokenStream(io.StringIO):
    def write(self, s: str) -> int:
        raise BrokenPipeError(32, "Broken pipe")


@pytest.fixture
def clock(monkeypatch: pytest.MonkeyPatch) -> FakeClock:
    fake = FakeClock()
    monkeypatch.setattr(_progress, "_now", fake)
    return fake


@pytest.fixture(autouse=True)
def wide_terminal(monkeypatch: pytest.MonkeyPatch) -> None:
    # shutil.get_terminal_size reads COLUMNS first; keep lines from being cut in these tests
    monkeypatch.setenv("COLUMNS", "200")


def test_enabled_draws_counts_and_ends_line(clock: FakeClock) -> None:
    out = io.StringIO()
    with Progress(3, desc="fits", enabled=True, stream=out) as bar:
        for name in ("a.fcs", "b.fcs", "c.fcs"):
            clock.t += 0.5
            bar.update(note=name)
    text = out.getvalue()
    assert text.endswith("\n")
    assert text.count("\n") == 1
    assert "fits [" in text
    assert "1/3 (33%)" in text
    assert "3/3 (100%)" in text
    assert "c.fcs" in text
    last = text.rsplit("\r", 1)[-1]
    assert last.startswith("fits [####################] 3/3 (100%) 2.0 files/s c.fcs")


def test_rate_and_eta(clock: FakeClock) -> None:
    out = io.StringIO()
    bar = Progress(20, enabled=True, stream=out)
    clock.t += 5.0
    bar.update(10)
    assert "10/20 (50%) 2.0 files/s ETA 0:05" in out.getvalue()
    assert "[##########..........]" in out.getvalue()
    clock.t += 3600.0
    assert "ETA 1:00:05" in bar.line()  # 10 steps in 3605 s: another 3605 s to go
    assert "0.00 files/s" in bar.line()
    bar.close()


def test_enabled_none_with_non_tty_writes_nothing(clock: FakeClock) -> None:
    out = io.StringIO()
    with Progress(5, stream=out) as bar:
        assert not bar.enabled
        for _ in range(5):
            bar.update()
    assert out.getvalue() == ""


def test_enabled_none_with_tty_draws(clock: FakeClock) -> None:
    out = FakeTTY()
    with Progress(2, stream=out) as bar:
        assert bar.enabled
        bar.update(2)
    assert "2/2 (100%)" in out.getvalue()
    assert out.getvalue().endswith("\n")


def test_default_stream_is_stderr_and_quiet_when_captured(capsys: pytest.CaptureFixture[str]) -> None:
    with Progress(2) as bar:
        bar.update(2)
    assert capsys.readouterr().err == ""


def test_total_zero(clock: FakeClock) -> None:
    out = io.StringIO()
    with Progress(0, enabled=True, stream=out):
        pass
    assert "0/0 (100%)" in out.getvalue()
    assert out.getvalue().endswith("\n")


def test_update_past_total(clock: FakeClock) -> None:
    out = io.StringIO()
    with Progress(2, enabled=True, stream=out) as bar:
        for _ in range(3):
            clock.t += 1.0
            bar.update()
    last = out.getvalue().rsplit("\r", 1)[-1]
    assert "[####################] 3/2 (100%)" in last
    assert "ETA" not in last


def test_negative_total() -> None:
    with pytest.raises(ValueError, match="total must be 0 or more steps, not -1"):
        Progress(-1)


def test_redraws_are_throttled(clock: FakeClock) -> None:
    out = io.StringIO()
    bar = Progress(100, enabled=True, stream=out)
    for _ in range(50):  # all within the same instant: only the first draws
        bar.update()
    assert out.getvalue().count("\r") == 1
    clock.t += 0.05
    bar.update()
    assert out.getvalue().count("\r") == 1
    clock.t += 0.06
    bar.update()
    assert out.getvalue().count("\r") == 2
    bar.update(48)  # reaching the total always draws
    assert out.getvalue().count("\r") == 3
    bar.close()  # already showing 100/100: only the newline
    assert out.getvalue().count("\r") == 3
    assert "100/100 (100%)" in out.getvalue().rsplit("\r", 1)[-1]


def test_close_draws_pending_state_once(clock: FakeClock) -> None:
    out = io.StringIO()
    bar = Progress(10, enabled=True, stream=out)
    bar.update()
    bar.update()  # throttled, not drawn
    bar.close()
    bar.close()
    text = out.getvalue()
    assert text.count("\r") == 2
    assert text.rstrip("\n").rsplit("\r", 1)[-1].startswith("[####................] 2/10 (20%)")
    assert text.count("\n") == 1
    bar.update()  # after close: counted, not drawn
    assert bar.n == 3
    assert out.getvalue() == text


def test_shorter_line_blanks_out_the_longer_one(clock: FakeClock) -> None:
    out = io.StringIO()
    bar = Progress(3, enabled=True, stream=out)
    clock.t += 1.0
    bar.update(note="a-very-long-file-name.fcs")
    long_line = out.getvalue()
    clock.t += 1.0
    bar.update(note="b.fcs")
    short = out.getvalue()[len(long_line):]
    assert len(short) == len(long_line)  # padded with spaces to cover the old text
    assert short.rstrip().endswith("b.fcs")
    bar.close()


def test_line_cut_to_terminal_width(clock: FakeClock, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("COLUMNS", "40")
    out = io.StringIO()
    with Progress(3, desc="cell cycle", enabled=True, stream=out) as bar:
        bar.update(note="x" * 100)
    assert all(len(chunk.rstrip("\n")) <= 39 for chunk in out.getvalue().split("\r"))


def test_closes_line_on_error(clock: FakeClock) -> None:
    out = io.StringIO()
    with pytest.raises(RuntimeError, match="boom"), Progress(4, enabled=True, stream=out) as bar:
        bar.update()
        raise RuntimeError("boom")
    assert out.getvalue().endswith("\n")


def test_broken_stream_turns_the_bar_off(clock: FakeClock) -> None:
    bar = Progress(3, enabled=True, stream=BrokenStream())
    bar.update()  # must not raise
    assert not bar.enabled
    bar.update()
    bar.close()
