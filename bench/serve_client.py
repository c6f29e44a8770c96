"""The load clients of the serving benchmarks.

``wrk`` (Debian's wrk, C, one event loop per thread) does the throughput and
requests-per-second measurements, so the client is not the ceiling on the
same two cores; its Lua scripts are in bench/wrk/. The small Python HTTP/1.1
client below (raw sockets, keep-alive, no parsing beyond status and
Content-Length) stays for sanity checks and for slow viewers, which read at a
fixed bitrate (wrk cannot pace its reads) and measure concurrency, not speed."""

import asyncio
import json
import os
import shutil
import socket
import subprocess
import threading
import time
from pathlib import Path

WRK_DIR = Path(__file__).resolve().parent / "wrk"

_BUFFER = 4 * 1024 * 1024


def _request(path, headers, method="GET"):
    lines = [f"{method} {path} HTTP/1.1", "Host: 127.0.0.1"]
    lines += [f"{name}: {value}" for name, value in headers.items()]
    return ("\r\n".join(lines) + "\r\n\r\n").encode()


class Connection:
    def __init__(self, port):
        self.port = port
        self.sock = None
        self.buffer = bytearray(_BUFFER)
        self.view = memoryview(self.buffer)
        self.pending = b""

    def _connect(self):
        self.sock = socket.create_connection(("127.0.0.1", self.port), timeout=30)
        self.sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        self.pending = b""

    def get(self, path, headers):
        """(status, body bytes received) for one request on this keep-alive connection."""
        if self.sock is None:
            self._connect()
        self.sock.sendall(_request(path, headers))
        data = self.pending
        while b"\r\n\r\n" not in data:
            chunk = self.sock.recv(65536)
            if not chunk:
                raise ConnectionError("closed before headers")
            data += chunk
        head, _, rest = data.partition(b"\r\n\r\n")
        lines = head.split(b"\r\n")
        status = int(lines[0].split()[1])
        length = 0
        close = False
        for line in lines[1:]:
            name, _, value = line.partition(b":")
            name = name.strip().lower()
            if name == b"content-length":
                length = int(value)
            elif name == b"connection" and value.strip().lower() == b"close":
                close = True
        received = min(len(rest), length)
        self.pending = rest[length:]
        while received < length:
            n = self.sock.recv_into(self.view, min(_BUFFER, length - received))
            if not n:
                raise ConnectionError("closed mid-body")
            received += n
        if close:
            self.close()
        return status, received

    def close(self):
        if self.sock is not None:
            self.sock.close()
            self.sock = None


def throughput(port, path, headers, *, connections, repeats):
    """Whole-file downloads in parallel; bytes per second over the wall time."""
    total = [0]
    errors = []
    lock = threading.Lock()

    def worker():
        conn = Connection(port)
        try:
            for _ in range(repeats):
                status, received = conn.get(path, headers)
                if status != 200:
                    errors.append(status)
                with lock:
                    total[0] += received
        finally:
            conn.close()

    threads = [threading.Thread(target=worker) for _ in range(connections)]
    started = time.perf_counter()
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    elapsed = time.perf_counter() - started
    if errors:
        raise RuntimeError(f"{path}: unexpected statuses {errors[:5]}")
    return total[0] / elapsed


def requests_per_second(port, path, headers, *, connections, seconds, expect):
    """Small requests on keep-alive connections for a fixed time."""
    counts = [0] * connections
    bad = []
    stop = time.perf_counter() + seconds

    def worker(index):
        conn = Connection(port)
        try:
            while time.perf_counter() < stop:
                status, _ = conn.get(path, headers)
                if status != expect:
                    bad.append(status)
                    return
                counts[index] += 1
        finally:
            conn.close()

    threads = [threading.Thread(target=worker, args=(i,)) for i in range(connections)]
    started = time.perf_counter()
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    elapsed = time.perf_counter() - started
    if bad:
        raise RuntimeError(f"{path}: unexpected statuses {bad[:5]}")
    return sum(counts) / elapsed


async def _slow_viewer(port, path, headers, *, delay, rate, seconds, ttfb_timeout):
    await asyncio.sleep(delay)
    started = time.perf_counter()
    try:
        reader, writer = await asyncio.open_connection("127.0.0.1", port)
    except OSError as error:
        return {"error": f"connect: {error}"}
    try:
        writer.write(_request(path, {**headers, "Connection": "close"}))
        await writer.drain()
        try:
            head = await asyncio.wait_for(reader.readuntil(b"\r\n\r\n"), ttfb_timeout)
        except (asyncio.TimeoutError, asyncio.IncompleteReadError) as error:
            return {"error": f"no response: {type(error).__name__}", "ttfb": time.perf_counter() - started}
        ttfb = time.perf_counter() - started
        status = int(head.split(b" ", 2)[1])
        if status not in (200, 206):
            return {"error": f"status {status}", "ttfb": ttfb}
        # Read like a player at a fixed bitrate: a chunk, then wait for the clock.
        received, chunk = 0, max(rate // 10, 4096)
        read_started = time.perf_counter()
        while time.perf_counter() - read_started < seconds:
            data = await asyncio.wait_for(reader.read(chunk), 10)
            if not data:
                break
            received += len(data)
            ahead = received / rate - (time.perf_counter() - read_started)
            if ahead > 0:
                await asyncio.sleep(ahead)
        achieved = received / (time.perf_counter() - read_started)
        if achieved < rate * 0.8:
            return {"error": f"starved at {achieved * 8 / 1e6:.2f} Mbit/s", "ttfb": ttfb}
        return {"ttfb": ttfb, "bytes": received}
    except (OSError, asyncio.TimeoutError) as error:
        return {"error": f"{type(error).__name__}: {error}"}
    finally:
        writer.close()


def slow_viewers(port, path, headers, *, viewers, rate, seconds, ramp, ttfb_timeout=10):
    """``viewers`` players arriving over ``ramp`` seconds, each reading at ``rate`` bytes/s."""

    async def run():
        return await asyncio.gather(*[
            _slow_viewer(port, path, headers, delay=ramp * i / viewers, rate=rate,
                         seconds=seconds, ttfb_timeout=ttfb_timeout)
            for i in range(viewers)
        ])

    results = asyncio.run(run())
    ok = [r for r in results if "error" not in r]
    ttfbs = sorted(r["ttfb"] for r in results if "ttfb" in r)
    p95 = ttfbs[min(len(ttfbs) - 1, int(len(ttfbs) * 0.95))] if ttfbs else float("inf")
    errors = [r["error"] for r in results if "error" in r]
    return {"ok": len(ok), "errors": errors, "ttfb_p95": p95}


def wrk(port, path, *, connections, seconds, headers=None, threads=1, script="report.lua", env=None):
    """One wrk run against 127.0.0.1:``port`` for ``seconds``; the figures of
    bench/wrk/report.lua's JSON line plus ``rps`` and ``bytes_per_s``."""
    binary = shutil.which("wrk")
    if binary is None:
        raise SystemExit("wrk is missing: `make bench-serve` installs it (Debian package wrk)")
    cmd = [binary, f"-t{threads}", f"-c{connections}", f"-d{max(1, round(seconds))}s", "--timeout", "10s",
           "-s", str(WRK_DIR / script)]
    for name, value in (headers or {}).items():
        cmd += ["-H", f"{name}: {value}"]
    cmd.append(f"http://127.0.0.1:{port}{path}")
    result = subprocess.run(
        cmd, capture_output=True, text=True, timeout=seconds + 60,
        env={**os.environ, "BENCH_WRK_DIR": str(WRK_DIR), **(env or {})},
    )
    line = next((x for x in result.stdout.splitlines() if x.startswith("BENCH_JSON ")), None)
    if result.returncode != 0 or line is None:
        raise RuntimeError(f"wrk failed ({result.returncode}): {result.stdout[-2000:]} {result.stderr[-2000:]}")
    figures = json.loads(line[len("BENCH_JSON "):])
    elapsed = figures["duration_us"] / 1e6
    figures["rps"] = figures["requests"] / elapsed
    figures["bytes_per_s"] = figures["bytes"] / elapsed
    figures["errors"] = sum(figures[k] for k in (
        "connect_errors", "read_errors", "write_errors", "status_errors", "timeouts"))
    return figures


def wrk_checked(port, path, **kwargs):
    """``wrk`` that refuses a run with any error (a 403 or 5xx is a status error)."""
    figures = wrk(port, path, **kwargs)
    if figures["errors"] or not figures["requests"]:
        raise RuntimeError(f"{path}: wrk saw errors {figures}")
    return figures


def worker_pids(master_pid):
    pids = []
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            try:
                stat = (entry / "stat").read_text()
            except OSError:
                continue
            if int(stat.rsplit(")", 1)[1].split()[1]) == master_pid:
                pids.append(int(entry.name))
    return pids


def cpu_seconds_by_name(names=("gunicorn", "nginx", "postgres")):
    """CPU seconds (user + system, all threads) used so far by the live
    processes named ``names``, summed per name: before and after a run, what
    each part of the stack spent on it."""
    totals = dict.fromkeys(names, 0.0)
    ticks = os.sysconf("SC_CLK_TCK")
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            stat = (entry / "stat").read_text()
        except OSError:
            continue
        comm, rest = stat.split("(", 1)[1].rsplit(")", 1)
        name = next((n for n in names if comm.startswith(n)), None)
        if name is not None:
            fields = rest.split()
            totals[name] += (int(fields[11]) + int(fields[12])) / ticks
    return totals


def rss_mb(pid):
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    return 0.0


def bench_stack(data_dir, *, workers, extra_env=None, database_url=None, stack_class=None):
    """nginx + gunicorn from the shipped config, on the bench settings and the
    bench database in ``data_dir``; started, to be stopped by the caller.
    Django must already be set up with bench.serve_settings."""
    from django.conf import settings

    from tests.stack import Stack

    stack = (stack_class or Stack)(
        data_dir / "stack",
        database_url=database_url or f"sqlite:///{settings.DATABASES['default']['NAME']}",
        env={
            "DJANGO_SETTINGS_MODULE": "bench.serve_settings",
            "CMS_DATA_DIR": str(data_dir),
            "STATIC_ROOT": str(settings.STATIC_ROOT),
            "GUNICORN_ACCESS_LOG": "/dev/null",
            **(extra_env or {}),
        },
        workers=workers,
    )
    return stack.start()
