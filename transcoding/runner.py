"""Run ffmpeg: bounded in number, in time and in what it leaves behind,
with its ``-progress`` output turned into calls to a callback."""

import collections
import ctypes
import fcntl
import signal
import subprocess
import threading
import time
from contextlib import contextmanager
from pathlib import Path

from django.conf import settings

from .profiles import setting

_PR_SET_PDEATHSIG = 1


class FFmpegError(Exception):
    """ffmpeg failed; ``stderr_tail`` holds its last lines."""

    def __init__(self, message, stderr_tail=""):
        super().__init__(message)
        self.stderr_tail = stderr_tail


def _die_with_parent():
    # A worker killed with SIGKILL must not leave an orphaned ffmpeg
    # burning CPU and holding a concurrency slot's worth of work.
    try:
        ctypes.CDLL("libc.so.6", use_errno=True).prctl(_PR_SET_PDEATHSIG, signal.SIGKILL)
    except OSError:
        pass


def _lock_dir():
    configured = setting("LOCK_DIR", None)
    path = Path(configured) if configured else Path(settings.DATA_DIR) / "transcoding-locks"
    path.mkdir(parents=True, exist_ok=True)
    return path


@contextmanager
def ffmpeg_slot(wait_callback=None, poll=0.5):
    """Hold one of ``TRANSCODING_MAX_FFMPEG_PROCESSES`` slots on this host.

    The slots are lock files, so the bound holds across every worker process
    sharing the data folder, and a dead worker's slot frees itself.
    """
    slots = max(1, int(setting("MAX_FFMPEG_PROCESSES", 1)))
    folder = _lock_dir()
    while True:
        for index in range(slots):
            handle = open(folder / f"slot-{index}.lock", "w")
            try:
                fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
            except BlockingIOError:
                handle.close()
                continue
            try:
                yield index
            finally:
                fcntl.flock(handle, fcntl.LOCK_UN)
                handle.close()
            return
        if wait_callback:
            wait_callback()
        time.sleep(poll)


def _read_stderr(pipe, tail):
    for line in iter(pipe.readline, ""):
        tail.append(line.rstrip())
    pipe.close()


def run_ffmpeg(cmd, *, duration=None, on_progress=None, timeout=None, stall_timeout=None):
    """Run ``cmd`` (which writes ``-progress pipe:1``). ``on_progress(fraction,
    speed)`` gets 0..1 as the output time advances. Raises FFmpegError with
    the stderr tail on failure, timeout or stall."""
    timeout = timeout or setting("FFMPEG_TIMEOUT", 6 * 3600)
    stall_timeout = stall_timeout or setting("FFMPEG_STALL_TIMEOUT", 300)
    tail = collections.deque(maxlen=int(setting("STDERR_TAIL_LINES", 30)))
    process = subprocess.Popen(
        cmd,
        stdin=subprocess.DEVNULL,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        preexec_fn=_die_with_parent,
    )
    reader = threading.Thread(target=_read_stderr, args=(process.stderr, tail), daemon=True)
    reader.start()
    started = time.monotonic()
    last_output = [started]
    killed_because = []

    def watchdog():
        while process.poll() is None:
            now = time.monotonic()
            if now - started > timeout:
                killed_because.append(f"ffmpeg took longer than {timeout:g} s")
            elif now - last_output[0] > stall_timeout:
                killed_because.append(f"ffmpeg made no progress for {stall_timeout:g} s")
            if killed_because:
                process.kill()
                return
            time.sleep(0.5)

    threading.Thread(target=watchdog, daemon=True).start()
    block = {}
    try:
        for line in process.stdout:
            last_output[0] = time.monotonic()
            key, _, value = line.strip().partition("=")
            block[key] = value
            if key != "progress":
                continue
            if on_progress:
                on_progress(_fraction(block, duration), _speed(block))
            block = {}
        process.wait(timeout=30)
    except BaseException:
        process.kill()
        process.wait(timeout=30)
        raise
    finally:
        reader.join(timeout=5)
    stderr_tail = "\n".join(tail)
    if killed_because:
        raise FFmpegError(killed_because[0].capitalize() + ".", stderr_tail)
    if process.returncode != 0:
        last = tail[-1] if tail else f"exit status {process.returncode}"
        raise FFmpegError(f"ffmpeg failed: {last}", stderr_tail)
    return stderr_tail


def _fraction(block, duration):
    if block.get("progress") == "end":
        return 1.0
    if not duration:
        return None
    try:
        out_time = int(block.get("out_time_us", "")) / 1_000_000
    except ValueError:
        return None
    return max(0.0, min(1.0, out_time / duration))


def _speed(block):
    try:
        return float(block.get("speed", "").rstrip("x"))
    except ValueError:
        return None
