"""``make system-test``: the .deb in booted Debian containers (systemd-nspawn).

Each suite's minimal root filesystem (mmdebstrap, cached as a tarball) boots
with systemd as PID 1 and a private network (loopback only); the harness runs
commands inside with nsenter and checks, with deadlines, what a user of the
package relies on: the unit, its hardening, chrony (the distribution's own
chrony.service, with -x so no clock is touched) selecting DCF over SHM and
SOCK, restarts, crashes, upgrade and purge, the journal, NTPsec, gpiod.
"""
