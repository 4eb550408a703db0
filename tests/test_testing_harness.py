"""The shipped test doubles (dcf77shm.testing) where they meet an installed package."""

from __future__ import annotations

from pathlib import Path

import pytest

from dcf77shm.errors import RuntimeFailure
from dcf77shm.testing.chronyd import CHRONY_DIR


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
