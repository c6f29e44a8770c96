"""Run ffmpeg: bounded in number, in time and in what it leaves behind,
with its ``-progress`` output turned into calls to a callback."""

import collections
import fcntl
import os
import subprocess
import threading
import time
from contextlib import contextmanager

from private_video import sandbox
from private_video.sandbox import child_env, cpu_seconds  # noqa: F401 - used by the pipeline

from .conf import lock_dir, setting

class FFmpegError(Exception):
    """ffmpeg failed; ``stderr_tail`` holds its last lines."""

    def __init__(self, message, stderr_tail=""):
        super().__init__(message)
        self.stderr_tail = stderr_tail


def resource_limits(kind="ffmpeg"):
    """The effective limits for ffmpeg (or, for "ffprobe", the library's):
    what one ffmpeg may cost, enforced by the kernel (setrlimit in the child
    before exec; see private_video.sandbox). TRANSCODING_FFMPEG_LIMITS (a
    dict) overrides any key of TRANSCODING_FFMPEG_LIMITS_DEFAULT; None is
    unlimited."""
    if kind == "ffprobe":
        return sandbox.resource_limits("ffprobe")
    limits = {**setting("FFMPEG_LIMITS_DEFAULT"), **(setting("FFMPEG_LIMITS") or {})}
    if limits["cpu_seconds"] is None:
        limits["cpu_seconds"] = int(setting("FFMPEG_TIMEOUT")) * (os.cpu_count() or 1)
    return limits


def child_preexec(kind="ffmpeg"):
    return sandbox.preexec_with_limits(resource_limits(kind))


def limit_exceeded(returncode, kind="ffmpeg", cpu_used=None):
    return sandbox.limit_exceeded(returncode, kind, resource_limits(kind), cpu_used)


def _lock_dir():
    path = lock_dir()
    path.mkdir(parents=True, exist_ok=True)
    return path


@contextmanager
def ffmpeg_slot(wait_callback=None, poll=0.5):
    """Hold one of ``TRANSCODING_MAX_FFMPEG_PROCESSES`` slots on this host.

    The slots are lock files, so the bound holds across every worker process
    sharing the data folder, and a dead worker's slot frees itself.
    """
    slots = max(1, int(setting("MAX_FFMPEG_PROCESSES")))
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


def run_ffmpeg(cmd, *, duration=None, on_progress=None, timeout=None, stall_timeout=None, on_block=None,
               max_seconds=None):
    """Run ``cmd`` (which writes ``-progress pipe:1``). ``on_progress(fraction,
    speed)`` gets 0..1 as the output time advances; ``on_block(block)`` each
    progress report as ffmpeg wrote it (a dict: ``out_time_us``…). With
    ``max_seconds``, ffmpeg is stopped once its output passes that time.
    Raises FFmpegError with the stderr tail on failure, timeout, stall or
    an output past ``max_seconds``."""
    timeout = timeout or setting("FFMPEG_TIMEOUT")
    stall_timeout = stall_timeout or setting("FFMPEG_STALL_TIMEOUT")
    tail = collections.deque(maxlen=int(setting("STDERR_TAIL_LINES")))
    process = subprocess.Popen(
        cmd,
        stdin=subprocess.DEVNULL,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        preexec_fn=child_preexec("ffmpeg"),
        env=child_env(),
    )
    reader = threading.Thread(target=_read_stderr, args=(process.stderr, tail), daemon=True)
    reader.start()
    started = time.monotonic()
    last_output = [started]
    killed_because = []
    cpu_used = [None]

    def watchdog():
        while process.poll() is None:
            cpu_used[0] = cpu_seconds(process.pid) or cpu_used[0]
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
            if on_block:
                on_block(block)
            if max_seconds is not None and _out_seconds(block) > max_seconds:
                killed_because.append(
                    f"the file plays past {max_seconds:.0f} s, longer than a file of its size can: it is "
                    "damaged or made to look shorter than it plays")
                process.kill()
                break
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
        limited = limit_exceeded(process.returncode, "ffmpeg", cpu_used[0])
        if limited:
            raise FFmpegError(limited, stderr_tail)
        last = tail[-1] if tail else f"exit status {process.returncode}"
        raise FFmpegError(f"ffmpeg failed: {last}", stderr_tail)
    return stderr_tail


def _out_seconds(block):
    try:
        return int(block.get("out_time_us", "")) / 1_000_000
    except ValueError:  # "N/A" before the first frame
        return 0.0


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
