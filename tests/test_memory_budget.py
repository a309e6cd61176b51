"""The suite's memory guard (tests/conftest.py): a session whose peak exceeds the budget fails."""
import os
from types import SimpleNamespace

import pytest

import conftest


def finish(monkeypatch, budget: int) -> pytest.ExitCode:
    monkeypatch.setattr(conftest, 'PEAK_RSS_BUDGET', budget)
    lines = []
    reporter = SimpleNamespace(write_line=lambda text, **kwargs: lines.append(text))
    session = SimpleNamespace(
        exitstatus=pytest.ExitCode.OK,
        config=SimpleNamespace(pluginmanager=SimpleNamespace(get_plugin=lambda name: reporter)))
    conftest.pytest_sessionfinish(session, pytest.ExitCode.OK)
    return session.exitstatus, lines


def test_peak_covers_what_is_resident_now():
    """ru_maxrss in bytes (Linux reports KiB): at least the resident set read from /proc
    while 256 MiB of touched memory is held."""
    block = b'\1' * (256 * 2**20)
    with open('/proc/self/statm') as statm:
        resident = int(statm.read().split()[1]) * os.sysconf('SC_PAGE_SIZE')
    assert resident > len(block)
    # The kernel updates the high-water mark in batches of pages: allow 16 MiB of lag.
    assert resident - 16 * 2**20 <= conftest.peak_rss()['self'] < 64 * resident
    del block


def test_session_over_budget_fails_and_says_why(monkeypatch):
    status, lines = finish(monkeypatch, budget=2**20)  # 1 MiB: every pytest process is over
    assert status == pytest.ExitCode.TESTS_FAILED
    assert len(lines) == 1 and 'memory budget exceeded: self peaked at' in lines[0]


def test_session_within_budget_passes(monkeypatch):
    assert finish(monkeypatch, budget=2**50) == (pytest.ExitCode.OK, [])
