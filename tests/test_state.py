"""The held count across a restart of the service (dcf77shm.service.state)."""

from __future__ import annotations

import json
from pathlib import Path

from dcf77shm.decode.guard import Guard, GuardState, HeldClock
from dcf77shm.model import NS_PER_S
from dcf77shm.service.state import StateFile, boot_id


def _locked_guard() -> Guard:
    g = Guard()
    g.model = HeldClock(5 * NS_PER_S, 1_700_000_000, 1e9 + 20.0, 1e9 + 20.0, 5 * NS_PER_S, 0)
    g.state = GuardState.LOCKED
    return g


def test_this_machine_has_a_boot_id() -> None:
    b = boot_id()
    assert b is not None and len(b) >= 32


def test_a_restart_in_the_same_boot_continues_the_held_count(tmp_path: Path) -> None:
    f = tmp_path / "state.json"
    StateFile(f, boot="boot-1").save(_locked_guard())
    assert json.loads(f.read_text())["boot_id"] == "boot-1"
    g = Guard()
    line = StateFile(f, boot="boot-1").restore(g)
    assert "continuing the held count" in line
    # Holdover from the last confirmed second: a relock must agree with it.
    assert g.state is GuardState.HOLDOVER and g.model == _locked_guard().model


def test_another_boot_starts_afresh(tmp_path: Path) -> None:
    f = tmp_path / "state.json"
    StateFile(f, boot="boot-1").save(_locked_guard())
    g = Guard()
    assert "another boot" in StateFile(f, boot="boot-2").restore(g)
    assert g.model is None and g.state is GuardState.ACQUIRING


def test_a_bad_or_missing_file_is_ignored_with_a_line(tmp_path: Path) -> None:
    f = tmp_path / "state.json"
    assert "no held count yet" in StateFile(f, boot="b").restore(Guard())
    for junk in (
        "not json",
        "[]",
        '{"format": 1, "boot_id": "b", "clock": "CLOCK_MONOTONIC_RAW"}',
        '{"format": 1, "boot_id": "b", "clock": "CLOCK_MONOTONIC_RAW", "guard": {}}',
    ):
        f.write_text(junk)
        g = Guard()
        line = StateFile(f, boot="b").restore(g)
        assert "ignored" in line or "no held count" in line, (junk, line)
        assert g.model is None


def test_nothing_is_kept_before_the_rate_is_learned(tmp_path: Path) -> None:
    f = tmp_path / "state.json"
    g = _locked_guard()
    g.state = GuardState.LEARNING
    StateFile(f, boot="b").save(g)
    assert not f.exists()


def test_an_unwritable_state_file_is_a_warning_not_a_crash(tmp_path: Path, caplog) -> None:  # type: ignore[no-untyped-def]
    f = tmp_path / "missing-dir" / "state.json"
    StateFile(f, boot="b").save(_locked_guard())
    StateFile(f, boot="b").save(_locked_guard())
    assert any("cannot keep the held count" in r.message for r in caplog.records)
