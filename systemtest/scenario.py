"""The checks in one booted suite, in the order a user meets them.

Every wait has a deadline and every check prints one line.  The source is a
paced replay of a log simulated by the installed dcf77shm to start a few
minutes before now: at each (re)start of the service the past edges go at
once and the decoder is locked within seconds, the rest follows the clock
like a live receiver whose clock is CLOCK_OFFSET_MS ahead of true time.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import json
import shlex
import time
from collections.abc import Callable
from pathlib import Path
from typing import TypeVar

from dcf77shm import chronyc
from systemtest import probes
from systemtest.container import Container, Proc
from systemtest.report import Report
from systemtest.rootfs import Suite

T = TypeVar("T")

ST = "/srv/systemtest"  # our files inside (not under /root: ProtectHome= hides it)
TOML = "/etc/dcf77shm/dcf77shm.toml"
SHM_CONF = "/etc/chrony/conf.d/dcf77shm.conf"
SOCK_CONF = "/etc/chrony/conf.d/dcf77shm-sock.conf"
SOCK_DIR = "/run/dcf77shm-sock"
SOCK = f"{SOCK_DIR}/dcf77.sock"
LIVE_LOG = f"{ST}/live.edges"
CLOCK_OFFSET_MS = 15.0  # the simulated system clock runs this far ahead: DCF says -15 ms
BACKDATE_S = 240  # the log starts this long before now: lock at once, even at first start
SELECT_S = 420  # chronyd selects DCF within this (poll 5: 32 s per measurement)
RESUME_S = 90  # new measurements after a restart within this

CHRONY_DROPIN = """\
# systemtest: chrony.service in a container (no CAP_SYS_TIME; -x in
# /etc/default/chrony: chronyd never touches the clock).
[Unit]
ConditionCapability=
"""
CHRONY_DEFAULTS = 'DAEMON_OPTS="-F 1 -x"\n'
# NTPsec's refclock line, as the README gives it ("mode 1": a 0600 segment
# if ntpd makes it; units >= 2 are 0666 otherwise).
NTPSEC_LINE = "refclock shm unit 77 refid DCF mode 1 minpoll 4 maxpoll 4 time1 0.0"
# In the container only: ntpd as root (with -u it keeps CAP_SYS_TIME, which the
# container lacks, and exits: "cap_set_proc() failed to drop root privs"), no
# kernel discipline (ntp_adjtime is refused).  The container cannot set the
# clock, so ntpd never synchronises (stratum 16): the check is that it reads
# the segment's samples, not that it selects them.  (`disable ntp`, the
# analogue of chronyd -x, keeps it unsynchronised too.)
NTPSEC_TEST_CONF = "disable kernel"
NTPSEC_DROPIN = """\
[Unit]
ConditionCapability=
[Service]
ExecStart=
ExecStart=/usr/sbin/ntpd -p /run/ntpd.pid -c /etc/ntpsec/ntp.conf -g -N
"""
CHRONY_ALLOW = "# systemtest: answer NTP clients on loopback\nallow 127.0.0.1\n"

NTP_QUERY = """\
import ntplib
r = ntplib.NTPClient().request("127.0.0.1", version=4, timeout=2)
# The reference ID's four bytes as sent (ntplib's ref_id_to_text would spell
# "DCF" out as the DCF77 transmitter's description).
refid = r.ref_id.to_bytes(4, "big").rstrip(b"\\0").decode("ascii", "replace")
print(r.stratum, refid, f"{r.offset:.6f}")
"""

GPIOD_API = """\
import datetime as dt
import gpiod
from dcf77shm.sources.gpiod_source import check_api
check_api(gpiod)
from gpiod.line import Bias, Clock, Direction, Edge
gpiod.LineSettings(direction=Direction.INPUT, edge_detection=Edge.BOTH, bias=Bias.PULL_UP,
                   debounce_period=dt.timedelta(0), event_clock=Clock.REALTIME)
print(gpiod.__version__)
"""


class Abort(Exception):
    """A check that later checks depend on failed: the suite ends here."""


def wait_for(
    probe: Callable[[], T], good: Callable[[T], bool], timeout: float, every: float = 2.0
) -> tuple[bool, T, float]:
    """Poll until ``good(probe())`` or the deadline; (ok, last value, seconds)."""
    t0 = time.monotonic()
    while True:
        value = probe()
        elapsed = time.monotonic() - t0
        if good(value) or elapsed >= timeout:
            return good(value), value, elapsed
        time.sleep(every)


class SuiteRun:
    def __init__(self, suite: Suite, box: Container, report: Report, debs: list[Path]) -> None:
        self.suite, self.c, self.r = suite, box, report
        self.deb, self.newer_deb = debs
        self.name = suite.name
        self.mark_sock = ""
        self.dcf_uid = -1
        self.dcf_gid = -1

    # --- plumbing -----------------------------------------------------------------

    def check(self, name: str, ok: bool, detail: str = "") -> bool:
        return self.r.check(self.name, name, ok, detail)

    def must(self, name: str, ok: bool, detail: str = "") -> None:
        if not self.check(name, ok, detail):
            raise Abort(name)

    def note(self, text: str) -> None:
        self.r.note(self.name, text)

    def sh(self, script: str, timeout: float = 60) -> Proc:
        return self.c.sh(script, timeout)

    def show(self, unit: str, *props: str) -> dict[str, str]:
        args = " ".join(f"-p {p}" for p in props)
        return probes.key_values(self.sh(f"systemctl show {args} {unit}").out)

    def main_pid(self) -> int:
        return int(self.show("dcf77shm", "MainPID").get("MainPID", "0") or 0)

    def proc_status(self, pid: int) -> dict[str, str]:
        return probes.key_values(self.sh(f"cat /proc/{pid}/status").out, ":")

    def sources(self) -> list[chronyc.SourceRow]:
        return probes.chrony_sources(self.sh("chronyc -c -n sources").out)

    def dcf(self) -> chronyc.SourceRow | None:
        return next((s for s in self.sources() if s.name == "DCF"), None)

    def tracking(self) -> chronyc.Tracking | None:
        return probes.chrony_tracking(self.sh("chronyc -c -n tracking").out)

    def segment(self) -> probes.Segment | None:
        return probes.shm_segments(self.sh("cat /proc/sysvipc/shm").out).get(probes.SHM_KEY_77)

    def set_toml(self, output: str) -> None:
        # What an admin writes into the conffile: a paced replay stands in for
        # the GPIO (a live receiver's edges, arriving as the clock reaches them).
        # `force`: run refuses a test source on the packaged unit or socket,
        # the ones a production chronyd reads, unless told.
        self.c.put(
            TOML,
            f'# systemtest\nsource = "replay:{LIVE_LOG}"\npace = true\noutput = "{output}"\n'
            "force = true\n",
        )

    # --- the run ------------------------------------------------------------------

    def run(self) -> None:
        try:
            self.install()
            self.configure()
            self.service_shm()
            self.lifecycle()
            self.restarts_shm()
            self.sock()
            self.journal()
            self.security()
            self.gpio_bindings()
            self.upgrade()
            if self.suite.ntpsec:
                self.ntpsec()
            self.purge()
        except Abort as e:
            self.check("suite completed", False, f"stopped after the failed check {e}")

    def install(self) -> None:
        p = self.sh(f"apt-get install -y -q {ST}/{self.deb.name}", timeout=300)
        self.must("apt installs the .deb with its dependencies", p.ok, p.text[-300:])
        versions = self.sh(
            "dpkg-query -W -f='${Package} ${Version}\\n' dcf77shm python3-click python3-sysv-ipc "
            "chrony systemd python3 2>/dev/null; python3 -V"
        ).out.split("\n")
        self.note("versions: " + "; ".join(v for v in versions if v))
        pw = self.sh("getent passwd _dcf77").out.split(":")
        self.must("systemd-sysusers made _dcf77", len(pw) > 3, ":".join(pw).strip())
        self.dcf_uid, self.dcf_gid = int(pw[2]), int(pw[3])
        st = self.sh(f"stat -c '%U:%G %a %F' {SOCK_DIR}").out.strip()
        self.check(
            "tmpfiles made the SOCK directory root:_dcf77 0750",
            st == "root:_dcf77 750 directory",
            st,
        )
        unit = self.show("dcf77shm", "UnitFileState", "ActiveState")
        self.check(
            "dcf77shm.service enabled, not started at install",
            unit == {"UnitFileState": "enabled", "ActiveState": "inactive"},
            str(unit),
        )

    def configure(self) -> None:
        start = dt.datetime.now(dt.UTC).replace(microsecond=0) - dt.timedelta(seconds=BACKDATE_S)
        p = self.sh(
            f"mkdir -p {ST} && dcf77shm simulate --start {start:%Y-%m-%dT%H:%M:%SZ} "
            f"--duration 2h --jitter-ms 2 --clock-offset-ms {CLOCK_OFFSET_MS} --seed 11 "
            f"-o {LIVE_LOG} && chmod 644 {LIVE_LOG}",
            timeout=120,
        )
        self.must("dcf77shm simulate writes the live log", p.ok, p.text[-200:])
        self.set_toml("shm:77")
        self.c.put("/etc/systemd/system/chrony.service.d/systemtest.conf", CHRONY_DROPIN)
        self.c.put("/etc/default/chrony", CHRONY_DEFAULTS)
        self.c.put("/etc/chrony/conf.d/systemtest.conf", CHRONY_ALLOW)
        self.sh("systemctl daemon-reload")

    def service_shm(self) -> None:
        # dcf77shm first (Before=chrony.service): the segment is its own.
        t0 = time.monotonic()
        p = self.sh("systemctl start dcf77shm", timeout=90)
        s = self.show("dcf77shm", "Type", "ActiveState", "SubState", "StatusText")
        self.must(
            "dcf77shm.service active through sd_notify READY (Type=notify)",
            p.ok and s.get("Type") == "notify" and s.get("ActiveState") == "active",
            f"{s} in {time.monotonic() - t0:.1f} s " + p.text[-200:],
        )
        ok, st, secs = wait_for(
            lambda: self.show("dcf77shm", "StatusText").get("StatusText", ""),
            lambda t: t.startswith("locked"),
            60,
        )
        self.check("STATUS= shows the lock state", ok, f"{st!r} after {secs:.0f} s")
        pid = self.main_pid()
        ps = self.proc_status(pid)
        uid = ps.get("Uid", "").split()
        self.check(
            "the process runs as _dcf77",
            len(uid) == 4 and set(uid) == {str(self.dcf_uid)},
            f"Uid {ps.get('Uid')} Gid {ps.get('Gid')} Groups {ps.get('Groups')}",
        )
        self.check(
            "no capabilities (CapInh/Prm/Eff/Bnd/Amb all 0), NoNewPrivs, seccomp",
            probes.capabilities_zero(ps)
            and ps.get("NoNewPrivs") == "1"
            and ps.get("Seccomp") == "2",
            " ".join(f"{k}={ps.get(k)}" for k in ("CapEff", "CapBnd", "NoNewPrivs", "Seccomp")),
        )
        self.writes_confined(pid)
        seg = self.segment()
        self.check(
            "SHM segment made by the service: _dcf77, 0600",
            seg is not None and seg.uid == self.dcf_uid and seg.mode & 0o777 == 0o600,
            str(seg),
        )
        self.sh("systemctl restart chrony", timeout=60)
        self.check_chrony_state()
        self.selects("SHM")

    def writes_confined(self, pid: int) -> None:
        # In the service's own mount namespace, even root cannot write outside
        # its directories: ProtectSystem=strict made them read-only.
        ns = f"nsenter -t {pid} -m --"
        denied = []
        for path in ("/etc/dcf77shm", "/usr/lib", "/var/lib", ST):
            p = self.sh(f"{ns} touch {path}/.systemtest-probe")
            denied.append(f"{path}: {'written!' if p.ok else p.err.strip().split(': ')[-1]}")
        allowed = self.sh(
            f"nsenter -t {pid} -m -S {self.dcf_uid} -G {self.dcf_gid} -- "
            "sh -c 'touch /run/dcf77shm/.probe && rm /run/dcf77shm/.probe'"
        )
        self.check(
            "writes outside its directories fail (read-only), /run/dcf77shm writable",
            all(not d.endswith("written!") for d in denied) and allowed.ok,
            "; ".join(denied) + f"; /run/dcf77shm: {'ok' if allowed.ok else allowed.text}",
        )

    def check_chrony_state(self) -> None:
        s = self.show("chrony", "ActiveState", "DropInPaths")
        self.must(
            "the distribution's chrony.service runs (drop-in: ConditionCapability=, -x)",
            s.get("ActiveState") == "active",
            str(s) + " " + self.sh("journalctl -u chrony -n 5 --no-pager -o cat").out[-300:],
        )

    def selects(self, how: str) -> None:
        ok, src, secs = wait_for(
            self.dcf, lambda s: s is not None and s.state == "*", SELECT_S, every=4
        )
        self.check(f"{how}: chronyd selects DCF (#*)", ok, f"{src} after {secs:.0f} s")
        if not ok:
            self.note(self.sh("chronyc -n sources; chronyc -n sourcestats").out)
            return
        trk = self.tracking()
        self.check(
            f"{how}: chronyd is stratum 1, reference DCF",
            trk is not None and trk.stratum == 1 and trk.refid == "DCF",
            str(trk),
        )
        self.note(f"{how}: {self.sh('chronyc -n sourcestats | tail -n +3').out.strip()}")
        q = self.sh(f"python3 -c {shlex.quote(NTP_QUERY)}")
        f = q.out.split()
        offset_ok = len(f) == 3 and abs(float(f[2]) * 1e3 + CLOCK_OFFSET_MS) < 5.0
        self.check(
            f"{how}: an NTP client on 127.0.0.1 gets stratum 1, refid DCF, "
            f"offset -{CLOCK_OFFSET_MS:g} ms",
            q.ok and f[:2] == ["1", "DCF"] and offset_ok,
            q.text,
        )

    def measured_since(self, t0: float, timeout: float = RESUME_S) -> tuple[bool, str]:
        """chronyd has a DCF measurement whose sample was received after ``t0``.

        chronyc's LastRx is the age of the last sample used (a sample's receive
        time is its second mark's; the decoder publishes it seconds later), so a
        sample received after the restart proves new samples from the new
        process, or in the new chronyd.
        """

        def probe() -> tuple[float, chronyc.SourceRow | None]:
            return time.time(), self.dcf()

        def good(v: tuple[float, chronyc.SourceRow | None]) -> bool:
            now, s = v
            return s is not None and s.reach != 0 and 0 <= s.last_rx_s < now - t0 - 1

        ok, (_, s), secs = wait_for(probe, good, timeout, every=3)
        return ok, f"{s} after {secs:.0f} s"

    def attached(self) -> list[str]:
        """The processes attached to the segment (chronyd counts twice when it
        has forked a helper after attaching: NTS-KE, privileged ops)."""
        out = self.sh(
            f"for m in $(grep -l SYSV{probes.SHM_KEY_77:08x} /proc/[0-9]*/maps); do "
            'p=${m%/maps}; echo "$(cat $p/comm)"; done'
        ).out
        return sorted(out.split())

    def segment_safe(self, what: str, attached: bool = True) -> None:
        seg = self.segment()
        procs = self.attached()
        safe = seg is not None and probes.segment_is_safe(seg, {0, self.dcf_uid})
        both = {"chronyd", "dcf77shm"} == set(procs)
        self.check(
            f"{what}: SHM segment 0600, owner root or _dcf77"
            + (", attached by chronyd and dcf77shm only" if attached else ""),
            safe and (both or not attached),
            f"{seg}; attached: {procs}",
        )

    def lifecycle(self) -> None:
        s0 = self.show(
            "dcf77shm", "MainPID", "NRestarts", "WatchdogUSec", "WatchdogTimestampMonotonic"
        )
        # The watchdog (WatchdogSec=30) would have killed a silent service by now.
        time.sleep(35)
        s1 = self.show(
            "dcf77shm", "MainPID", "NRestarts", "ActiveState", "WatchdogTimestampMonotonic"
        )
        self.check(
            "the watchdog keeps it alive (WatchdogSec=30, pings arriving, no restart in 35 s)",
            s0.get("WatchdogUSec") == "30s"
            and s1.get("MainPID") == s0.get("MainPID")
            and s1.get("NRestarts") == s0.get("NRestarts")
            and s1.get("ActiveState") == "active"
            and int(s1.get("WatchdogTimestampMonotonic", "0"))
            > int(s0.get("WatchdogTimestampMonotonic", "0")),
            f"{s0} -> {s1}",
        )
        for sig in ("SEGV", "KILL"):
            before = self.show("dcf77shm", "MainPID", "NRestarts")
            self.sh(f"kill -{sig} {before['MainPID']}")

            def restarted(a: dict[str, str], b: dict[str, str] = before) -> bool:
                return (
                    a.get("ActiveState") == "active"
                    and a.get("NRestarts") == str(int(b["NRestarts"]) + 1)
                    and a.get("MainPID") not in ("0", b["MainPID"])
                )

            ok, after, secs = wait_for(
                lambda: self.show("dcf77shm", "MainPID", "NRestarts", "ActiveState"),
                restarted,
                30,
                every=1,
            )
            self.check(
                f"a crash (kill -{sig}) is restarted", ok, f"{before} -> {after} in {secs:.0f} s"
            )
        # A bad config: exit status 2, not restarted, one line in the journal.
        good_toml = (self.c.root / TOML.lstrip("/")).read_text()
        self.c.put(TOML, good_toml + 'polarity = "sideways"\n')
        mark = self.sh("date +%s.%N").out.strip()
        self.sh("systemctl restart dcf77shm", timeout=60)
        # (A manual restart resets NRestarts: compare with its value now.)
        n0 = self.show("dcf77shm", "NRestarts").get("NRestarts")
        time.sleep(8)  # past RestartSec=5: a restart would have happened
        s = self.show("dcf77shm", "ActiveState", "Result", "ExecMainStatus", "NRestarts")
        lines = self.sh(
            f"journalctl -u dcf77shm --since @{mark} -o json --no-pager"
        ).out.splitlines()
        msgs = [json.loads(x) for x in lines if x.strip()]
        reason = [m for m in msgs if "sideways" in str(m.get("MESSAGE", ""))]
        self.check(
            "a bad config is not restarted (exit 2, unit failed)",
            s.get("ActiveState") == "failed"
            and s.get("ExecMainStatus") == "2"
            and s.get("NRestarts") == n0,
            str(s),
        )
        self.check(
            "the journal has the one-line reason, as an error",
            len(reason) == 1
            and reason[0].get("PRIORITY") == "3"
            and not any("Traceback" in str(m.get("MESSAGE")) for m in msgs),
            " | ".join(f"<{m.get('PRIORITY')}> {m.get('MESSAGE')}" for m in reason),
        )
        self.c.put(TOML, good_toml)
        self.sh("systemctl reset-failed dcf77shm; systemctl start dcf77shm", timeout=60)
        t0 = time.monotonic()
        p = self.sh("systemctl stop dcf77shm", timeout=60)
        s = self.show("dcf77shm", "ActiveState", "Result", "ExecMainCode", "ExecMainStatus")
        st = self.sh("dcf77shm status")
        self.check(
            "systemctl stop is clean (SIGTERM, exit 0, status says not running)",
            p.ok
            and s
            == {
                "ActiveState": "inactive",
                "Result": "success",
                "ExecMainCode": "1",
                "ExecMainStatus": "0",
            }
            and st.rc == 1,
            f"{s} in {time.monotonic() - t0:.1f} s; status: {st.text}",
        )
        self.sh("systemctl start dcf77shm", timeout=60)

    def restarts_shm(self) -> None:
        orders = (("dcf77shm", "chrony"), ("chrony", "dcf77shm"))
        for first, second in orders:
            self.sh(f"systemctl restart {first}", timeout=60)
            self.sh(f"systemctl restart {second}", timeout=60)
            t0 = time.time()
            ok, detail = self.measured_since(t0)
            self.check(f"SHM: restart {first} then {second}: samples resume", ok, detail)
            self.segment_safe(f"after restarting {first} then {second}")
        # Cold start with chronyd first: it creates the segment (root, 0600);
        # the unit's ExecStartPre hands it to _dcf77, chronyd stays attached.
        self.sh("systemctl stop dcf77shm chrony; ipcrm -M 0x4e54507d", timeout=60)
        self.sh("systemctl start chrony", timeout=60)
        seg = self.segment()
        self.check(
            "chronyd first: it creates the segment, root 0600",
            seg is not None and seg.uid == 0 and seg.mode & 0o777 == 0o600,
            str(seg),
        )
        self.sh("systemctl start dcf77shm", timeout=60)
        t0 = time.time()
        ok, detail = self.measured_since(t0)
        self.check("chronyd first, then dcf77shm: samples flow", ok, detail)
        seg = self.segment()
        self.check(
            "... and the segment is now _dcf77's, still 0600",
            seg is not None and seg.uid == self.dcf_uid and seg.mode & 0o777 == 0o600,
            str(seg),
        )
        self.segment_safe("chronyd first, then dcf77shm")

    def sock(self) -> None:
        self.sh(
            f"systemctl stop dcf77shm && mv {SHM_CONF} {ST}/dcf77shm.conf.shm && "
            f"cp /usr/share/doc/dcf77shm/examples/dcf77shm-sock.conf {SOCK_CONF}",
            timeout=60,
        )
        self.set_toml(f"sock:{SOCK}")
        self.sh("systemctl restart chrony", timeout=60)
        st = self.sh(f"stat -c '%U:%G %a %F' {SOCK}").out.strip()
        self.check(
            "SOCK: chronyd's socket handed to _dcf77 (0755 _dcf77:_dcf77)",
            st == "_dcf77:_dcf77 755 socket",
            st,
        )
        p = self.sh("systemctl start dcf77shm", timeout=60)
        pid = self.main_pid()
        ps = self.proc_status(pid)
        self.check(
            "SOCK: the service stays unprivileged (_dcf77, no capabilities)",
            p.ok
            and ps.get("Uid", "").split()[:1] == [str(self.dcf_uid)]
            and probes.capabilities_zero(ps),
            f"Uid {ps.get('Uid')} CapEff {ps.get('CapEff')}",
        )
        self.selects("SOCK")
        # chronyd away for a few seconds: the service warns once, then recovers.
        self.mark_sock = self.sh("date +%s.%N").out.strip()
        self.sh("systemctl stop chrony; sleep 4; systemctl start chrony", timeout=60)
        t0 = time.time()
        ok, detail = self.measured_since(t0)
        self.check("SOCK: chronyd stopped and started again: samples resume", ok, detail)
        st = self.sh(f"stat -c '%U:%G %a %F' {SOCK}").out.strip()
        self.check(
            "SOCK: the new socket is handed over again", st == "_dcf77:_dcf77 755 socket", st
        )
        for first, second in (("chrony", "dcf77shm"), ("dcf77shm", "chrony")):
            self.sh(f"systemctl restart {first}; systemctl restart {second}", timeout=60)
            t0 = time.time()
            ok, detail = self.measured_since(t0)
            self.check(f"SOCK: restart {first} then {second}: samples resume", ok, detail)
        stale = self.sh(f"systemctl stop chrony; ls -A {SOCK_DIR}", timeout=60).out.strip()
        self.check("SOCK: chronyd stopped: no stale socket left", stale == "", stale)
        # Back to SHM, the packaged default.
        self.sh(
            f"systemctl stop dcf77shm && rm {SOCK_CONF} && mv {ST}/dcf77shm.conf.shm {SHM_CONF}",
            timeout=60,
        )
        self.set_toml("shm:77")
        self.sh("systemctl start dcf77shm && systemctl start chrony", timeout=60)

    def journal(self) -> None:
        lines = self.sh(
            "journalctl -u dcf77shm SYSLOG_IDENTIFIER=dcf77shm -o json --no-pager", timeout=60
        ).out.splitlines()
        msgs = [json.loads(x) for x in lines if x.strip()]
        stamped = [m["MESSAGE"] for m in msgs if probes.TIMESTAMP.match(str(m.get("MESSAGE", "")))]
        self.check(
            "journal: no second timestamp in dcf77shm's lines",
            bool(msgs) and not stamped,
            f"{len(msgs)} lines; stamped: {stamped[:2]}",
        )
        warn = self.sh(
            f"journalctl -u dcf77shm -p warning --since @{self.mark_sock} -o cat --no-pager"
        ).out
        info = [m for m in msgs if str(m.get("MESSAGE", "")).startswith("reading replay:")]
        self.check(
            "journal: warnings are warnings (journalctl -p warning), info is info",
            "chronyd not reachable" in warn
            and "reachable again" not in warn
            and bool(info)
            and all(m.get("PRIORITY") == "6" for m in info),
            warn.strip().replace("\n", " | ")[:300],
        )

    def security(self) -> None:
        p = self.sh("systemd-analyze security --no-pager dcf77shm.service")
        exp = probes.exposure(p.out)
        self.check(
            "systemd-analyze security dcf77shm.service: OK or better",
            exp is not None and exp[1] in ("OK", "SAFE"),
            f"exposure {exp}" if exp else p.text[-200:],
        )
        warn = self.sh(
            "journalctl -b -o cat --no-pager | "
            "grep -i -E 'dcf77shm.service.*(bpf|firewall|not supported)' | sort -u"
        ).out.strip()
        if warn:
            self.note(f"systemd on this boot: {warn}")

    def gpio_bindings(self) -> None:
        p = self.sh("apt-get install -y -q python3-libgpiod", timeout=300)
        ver = self.sh("dpkg-query -W -f='${Version}' python3-libgpiod").out.strip()
        api = self.sh(f"python3 -c {shlex.quote(GPIOD_API)}")
        run = self.sh("dcf77shm run --source gpiod:gpiochip0:17 --output shm:79")
        if self.suite.name == "bookworm":
            self.check(
                f"gpiod: python3-libgpiod {ver} (v1 API) refused with the fix, one line",
                p.ok
                and not api.ok
                and "old libgpiod v1 API" in api.err
                and run.rc == 1
                and len(run.err.strip().splitlines()) == 1,
                run.err.strip()[:200],
            )
            bp = self.sh(
                "apt-get install -y -q -t bookworm-backports python3-libgpiod", timeout=300
            )
            ver = self.sh("dpkg-query -W -f='${Version}' python3-libgpiod").out.strip()
            api = self.sh(f"python3 -c {shlex.quote(GPIOD_API)}")
            run = self.sh("dcf77shm run --source gpiod:gpiochip0:17 --output shm:79")
            self.check(
                f"gpiod: bookworm-backports python3-libgpiod {ver}: API accepted, up to the chip",
                bp.ok and api.ok and run.rc == 2 and "no such GPIO chip" in run.err,
                f"{api.text} / {run.err.strip()[:150]}",
            )
        else:
            self.check(
                f"gpiod: packaged python3-libgpiod {ver}: API accepted, up to the chip",
                p.ok and api.ok and run.rc == 2 and "no such GPIO chip" in run.err,
                f"{api.text} / {run.err.strip()[:150]}",
            )
        if not self.suite.pigpio:
            pol = self.sh("apt-cache policy python3-pigpio | grep Candidate").out.strip()
            self.note(f"python3-pigpio: {pol or 'not in this suite'}")
            return
        self.sh("apt-get install -y -q python3-pigpio", timeout=300)
        ver = self.sh("dpkg-query -W -f='${Version}' python3-pigpio").out.strip()
        self.sh(
            "systemd-run --unit=fake-pigpiod python3 -m dcf77shm.testing.fake_pigpiod "
            "--port 8888 --gpio 17 --seconds 40"
        )
        time.sleep(2)
        rec = self.sh(
            f"dcf77shm record --source pigpio:17 -o {ST}/pigpio.edges --duration 10s", timeout=60
        )
        n = self.sh(f"grep -vc '^#' {ST}/pigpio.edges").out.strip()
        self.check(
            f"pigpio: python3-pigpio {ver} against the fake pigpiod: edges recorded",
            rec.ok and n.isdigit() and int(n) >= 10,
            f"{n} edges; {rec.err.strip()[-150:]}",
        )
        self.sh("systemctl stop fake-pigpiod")

    def upgrade(self) -> None:
        def digest() -> str:
            return hashlib.sha256((self.c.root / TOML.lstrip("/")).read_bytes()).hexdigest()

        before = digest()
        pid0 = self.main_pid()
        p = self.sh(f"apt-get install -y -q --reinstall {ST}/{self.deb.name}", timeout=300)
        self.check(
            "the same version installed again keeps the config",
            p.ok and digest() == before,
            p.text[-200:] if not p.ok else "",
        )
        pid1 = self.main_pid()
        p = self.sh(f"apt-get install -y -q {ST}/{self.newer_deb.name}", timeout=300)
        ver = self.sh("dpkg-query -W -f='${Version}' dcf77shm").out.strip()
        s = self.show("dcf77shm", "ActiveState", "MainPID")
        self.check(
            f"upgrade to {ver}: the config kept, the running service restarted",
            p.ok
            and ver in self.newer_deb.name
            and digest() == before
            and s.get("ActiveState") == "active"
            and s.get("MainPID") not in ("0", str(pid1)),
            f"{s} (pid before reinstall {pid0}, after {pid1})"
            + (p.text[-200:] if not p.ok else ""),
        )
        ok, detail = self.measured_since(time.time())
        self.check("after the upgrade: samples resume", ok, detail)
        self.segment_safe("after the upgrade")

    def ntpsec(self) -> None:
        self.sh("systemctl stop chrony", timeout=60)
        p = self.sh("apt-get install -y -q ntpsec", timeout=300)
        ver = self.sh("dpkg-query -W -f='${Version}' ntpsec").out.strip()
        if not self.check(f"ntpsec {ver} installs (chrony goes)", p.ok, p.text[-300:]):
            return
        conf = self.sh("cat /etc/ntpsec/ntp.conf").out
        self.c.put(
            "/etc/ntpsec/ntp.conf",
            conf + f"\n# systemtest\n{NTPSEC_LINE}\n{NTPSEC_TEST_CONF}\n",
        )
        self.c.put("/etc/systemd/system/ntpsec.service.d/systemtest.conf", NTPSEC_DROPIN)
        # The packaged default decoder.  NTPsec drops an SHM sample whose
        # receive time is more than 5 s old (refclock_shm.c, max_delay, not
        # configurable): the count of such drops is noted.
        self.sh("systemctl daemon-reload; systemctl restart dcf77shm ntpsec", timeout=60)

        def shm_peer() -> tuple[int, float] | None:
            for line in self.sh("ntpq -n -p").out.splitlines():
                f = line[1:].split()
                if f[:1] == ["SHM(77)"] and len(f) >= 9:
                    return int(f[6], 8), float(f[8])
            return None

        ok, peer, secs = wait_for(
            shm_peer,
            lambda v: v is not None and v[0] & 0o17 == 0o17,  # the last 4 polls good
            120,
            every=5,
        )
        self.check(
            f"NTPsec reads the segment: 4 good polls, offset -{CLOCK_OFFSET_MS:g} ms",
            ok and peer is not None and abs(peer[1] + CLOCK_OFFSET_MS) < 5.0,
            f"reach {peer[0]:o}, offset {peer[1]:+.2f} ms after {secs:.0f} s"
            if peer
            else "no SHM(77) peer",
        )
        self.note(
            "ntpq: "
            + " | ".join(
                ln
                for ln in self.sh("ntpq -n -p; ntpq -c rv").out.splitlines()
                if "SHM" in ln or "stratum" in ln
            )
        )
        self.segment_safe("under NTPsec", attached=False)
        stale = self.sh("journalctl -u ntpsec -o cat --no-pager | grep -c 'stale/bad'").out
        self.note(
            f"NTPsec 'SHM(77): stale/bad receive time' (older than 5 s) lines: {stale.strip()}"
        )

    def purge(self) -> None:
        files = [
            f
            for f in self.sh("dpkg -L dcf77shm").out.splitlines()
            if f and not self.sh(f"test -d {shlex.quote(f)}").ok
        ]
        p = self.sh("apt-get purge -y -q dcf77shm", timeout=300)
        left = [f for f in files if self.sh(f"test -e {shlex.quote(f)} -o -L {shlex.quote(f)}").ok]
        extra = self.sh(
            "ls -d /etc/dcf77shm /run/dcf77shm /run/dcf77shm-sock "
            "/etc/systemd/system/multi-user.target.wants/dcf77shm.service 2>/dev/null; "
            "systemctl show -p LoadState dcf77shm; systemctl show -p DropInPaths chrony; "
            f"grep -l '^Uid:\\s*{self.dcf_uid}\\s' /proc/[0-9]*/status"
        ).out
        gone = (
            "LoadState=not-found" in extra
            and "dcf77shm-sock.conf" not in extra
            and "/status" not in extra  # no process of _dcf77's left
        )
        self.check(
            "apt purge removes what the package added",
            p.ok
            and not left
            and gone
            and not any(x in extra.split() for x in ("/etc/dcf77shm", "/run/dcf77shm", SOCK_DIR)),
            f"{len(files)} files; left: {left[:5]} {extra.strip()[:300]}",
        )
        seg = self.segment()
        self.note(
            "after purge: user _dcf77 stays (as Debian does); "
            f"SHM segment {'stays (' + str(seg) + ')' if seg else 'gone'}"
        )
