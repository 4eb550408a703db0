"""The shipped test doubles (dcf77shm.testing) where they meet an installed package."""

from __future__ import annotations

import contextlib
import os
from pathlib import Path

import pytest
import sysv_ipc

from dcf77shm.errors import RuntimeFailure
from dcf77shm.sinks.shm import key_for, segment_info
from dcf77shm.testing.chronyd import CHRONY_DIR, PrivateChronyd, find_chronyd, shipped_refclock


def test_an_installed_package_finds_its_drop_in_or_says_so(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # Installed from the .deb there is no chrony/ next to the source: the demo
    # and the test harness read the installed drop-in, or fail in one line.
    import dcf77shm.testing.chronyd as harness

    etc = tmp_path / "etc"
    etc.mkdir()
    monkeypatch.setattr(harness, "CHRONY_DIR", tmp_path / "no-checkout")
    monkeypatch.setattr(harness, "INSTALLED", (etc,))
    with pytest.raises(RuntimeFailure, match=r"no dcf77shm\.conf .*install the package"):
        harness.shipped_refclock("SHM", "7")
    (etc / "dcf77shm.conf").write_text((CHRONY_DIR / "dcf77shm.conf").read_text())
    assert harness.shipped_refclock("SHM", "7").startswith("refclock SHM 7 refid DCF ")


@pytest.mark.chrony
@pytest.mark.skipif(os.geteuid() != 0, reason="the private chronyd runs as root")
@pytest.mark.skipif(find_chronyd() is None, reason="chronyd not installed (make chrony)")
def test_a_private_chronyd_removes_the_segments_it_made_and_only_those(tmp_path: Path) -> None:
    # chronyd never removes the SHM segment it creates; a harness that starts
    # hundreds of them (tests, bench/served.py) would leave every one behind.
    mine, theirs = 31000 + os.getpid() % 4000, 35000 + os.getpid() % 4000
    other = sysv_ipc.SharedMemory(key_for(theirs), sysv_ipc.IPC_CREX, mode=0o600, size=96)
    try:
        lines = [shipped_refclock("SHM", str(u)) for u in (mine, theirs)]
        with PrivateChronyd(tmp_path / "c", lines):
            made = segment_info(key_for(mine))
            assert made is not None and made.nattch == 1
        assert segment_info(key_for(mine)) is None
        kept = segment_info(key_for(theirs))
        assert kept is not None and kept.shmid == other.id
    finally:
        other.remove()
        with contextlib.suppress(sysv_ipc.ExistentialError):
            sysv_ipc.SharedMemory(key_for(mine)).remove()
