"""How ffprobe and ffmpeg run on hostile input: under kernel resource limits
(setrlimit in the child before exec), dying with their parent, with a
bounded malloc. The library probes uploads with it; transcoding runs ffmpeg
with it (transcoding.runner adds ffmpeg's own limits)."""

import ctypes
import os
import resource
import signal

from django.utils.translation import gettext as _

from .conf import setting

_PR_SET_PDEATHSIG = 1


def child_env():
    # glibc reserves 64 MiB of address space per malloc arena, up to 8 per
    # core: on a large host that alone would trip the address-space limit.
    return {**os.environ, "MALLOC_ARENA_MAX": "4"}


def resource_limits(kind):
    """ffprobe's effective limits: PRIVATE_VIDEO_FFPROBE_LIMITS over the defaults."""
    if kind != "ffprobe":
        raise ValueError(f"no library limits for {kind!r}")
    return {**setting("FFPROBE_LIMITS_DEFAULT"), **(setting("FFPROBE_LIMITS") or {})}


def preexec_with_limits(limits):
    """A ``preexec_fn``: die with the parent, and run under ``limits``
    (cpu_seconds, memory_bytes, file_size_bytes; None is unlimited). Values
    are computed here, in the parent; the child only makes system calls."""
    plan = [(resource.RLIMIT_CORE, 0, 0)]
    if limits.get("cpu_seconds") is not None:
        # Soft = hard: SIGKILL at the limit. (ffmpeg catches SIGXCPU and
        # would keep going to finish its output cleanly.)
        cpu = max(1, int(limits["cpu_seconds"]))
        plan.append((resource.RLIMIT_CPU, cpu, cpu))
    if limits.get("memory_bytes") is not None:
        plan.append((resource.RLIMIT_AS, int(limits["memory_bytes"]), int(limits["memory_bytes"])))
    if limits.get("file_size_bytes") is not None:
        plan.append((resource.RLIMIT_FSIZE, int(limits["file_size_bytes"]), int(limits["file_size_bytes"])))

    try:
        # Resolved here: dlopen in a forked child of a threaded process can
        # deadlock on the loader's lock.
        prctl = ctypes.CDLL("libc.so.6", use_errno=True).prctl
    except OSError:
        prctl = None

    def preexec():
        # A worker killed with SIGKILL must not leave an orphaned child
        # burning CPU.
        if prctl is not None:
            prctl(_PR_SET_PDEATHSIG, signal.SIGKILL)
        for which, soft, hard in plan:
            resource.setrlimit(which, (soft, hard))

    return preexec


def child_preexec(kind):
    return preexec_with_limits(resource_limits(kind))


def cpu_seconds(pid):
    """CPU time used so far by a running child (user + system), or None."""
    try:
        with open(f"/proc/{pid}/stat") as handle:
            fields = handle.read().rsplit(")", 1)[1].split()
        return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")
    except (OSError, ValueError, IndexError):
        return None


def limit_exceeded(returncode, kind, limits, cpu_used=None):
    """A sentence for a child the kernel stopped at one of its ``limits``, else None.
    ``cpu_used`` is the last sample of its CPU time, up to one watchdog tick
    (half a second of every core) behind."""
    cpu_limit = limits.get("cpu_seconds")
    if (
        returncode in (-signal.SIGXCPU, -signal.SIGKILL)
        and cpu_limit is not None
        and cpu_used is not None
        and cpu_used >= cpu_limit - (os.cpu_count() or 1)
    ):
        return _("%(program)s used more than its CPU time limit (%(seconds)s s).") % {
            "program": kind, "seconds": f"{cpu_limit:g}"}
    if returncode == -signal.SIGXFSZ:
        return _("%(program)s tried to write a file larger than its limit (%(bytes)s bytes).") % {
            "program": kind, "bytes": f"{limits['file_size_bytes']:,}"}
    return None
