"""The private staging folder tus uploads are received in.

One file per upload, named from the upload's UUID alone (never from anything
the client sent): ``<staging dir>/<uuid hex>.part``. The folder is created
0700 and files 0600, so other local users can neither list nor read what is
being uploaded.

``write_body`` appends a request's body to a staged file: under gunicorn
straight from the socket with ``splice(2)`` (the bytes never enter Python),
anywhere else 256 KiB reads at a time."""

import errno
import io
import os
import socket
import tempfile
import time
import uuid
from pathlib import Path

from django.core.files.storage import FileSystemStorage

from ..conf import setting
from ..storage import configured_private_storage

FOLDER_MODE = 0o700
FILE_MODE = 0o600


def staging_path():
    """Where the staging folder is (nothing made): ``PRIVATE_VIDEO_UPLOAD_STAGING_DIR``,
    else ``upload-staging`` beside a local private storage's folder (the same
    file system, so a finished upload is renamed into storage, not copied),
    else a folder in the system temp directory."""
    configured = setting("UPLOAD_STAGING_DIR")
    if configured:
        return Path(configured)
    try:
        storage = configured_private_storage()
    except Exception:  # noqa: BLE001 - no private storage: the check private_video.E001 says so
        storage = None
    if isinstance(storage, FileSystemStorage):
        return Path(storage.location).resolve().parent / "upload-staging"
    return Path(tempfile.gettempdir()) / "private-video-upload-staging"


def staging_dir():
    """The staging folder (``staging_path()``), created on first use."""
    folder = staging_path()
    if not folder.is_dir():
        folder.mkdir(mode=FOLDER_MODE, parents=True, exist_ok=True)
    # Private whatever made it (a folder made by hand, a lax umask).
    if folder.stat().st_mode & 0o777 != FOLDER_MODE:
        os.chmod(folder, FOLDER_MODE)
    return folder


def path_for(upload_id):
    """The staged file of an upload, from its UUID (a str is parsed as one)."""
    if not isinstance(upload_id, uuid.UUID):
        upload_id = uuid.UUID(str(upload_id))
    return staging_dir() / f"{upload_id.hex}.part"


def create(upload_id):
    """An empty staged file for a new upload (it must not exist yet)."""
    fd = os.open(path_for(upload_id), os.O_WRONLY | os.O_CREAT | os.O_EXCL, FILE_MODE)
    os.close(fd)


def size(upload_id):
    """Bytes on disk for the upload, or None when its file is gone."""
    try:
        return os.stat(path_for(upload_id)).st_size
    except FileNotFoundError:
        return None


def discard(upload_id):
    """Delete the staged bytes (nothing if already gone)."""
    try:
        os.unlink(path_for(upload_id))
    except FileNotFoundError:
        pass


class lock:
    """An exclusive lock on an upload's staged file, held while one request
    writes it (``fcntl.flock``, released when the file is closed, also when
    the worker dies). ``with lock(upload_id) as fd``: ``fd`` is the file
    opened for reading and writing, or None when another holder has it (``blocking=False``);
    FileNotFoundError when the file is gone."""

    def __init__(self, upload_id, blocking=False):
        self.path = path_for(upload_id)
        self.blocking = blocking
        self.fd = None

    def __enter__(self):
        import fcntl

        # Read and write: a checksum is computed from the bytes on disk.
        self.fd = os.open(self.path, os.O_RDWR)
        try:
            fcntl.flock(self.fd, fcntl.LOCK_EX | (0 if self.blocking else fcntl.LOCK_NB))
        except BlockingIOError:
            os.close(self.fd)
            self.fd = None
        return self.fd

    def __exit__(self, *exc_info):
        if self.fd is not None:
            os.close(self.fd)  # closing releases the flock
            self.fd = None
        return False


# --- receiving a request body into a staged file ------------------------------------

# The body is read and written this much at a time when it goes through Python.
# Not 1 MiB: under gunicorn, 1 MiB reads made glibc map and unmap fresh memory
# for the body's buffers on every read (page faults, mostly system time):
# about 3-4 CPU-s per 2 GiB received against about 1 with 256 KiB
# (docs/benchmarks.md, Uploads).
READ_SIZE = 256 * 1024
# The pipe splice(2) moves the body through: 1 MiB (Linux's default
# pipe-max-size, so an unprivileged worker gets it too; 64 KiB otherwise).
PIPE_SIZE = 1024 * 1024


# Called while a body is being received (at most once a second): tells the
# server this worker is busy, not stuck. deploy/gunicorn.conf.py sets it to
# the worker's notify(): a sync worker is otherwise killed after gunicorn's
# ``timeout`` whatever it is doing, and a PATCH takes as long as the client's
# uplink needs for a chunk (256 MiB at 10 Mbit/s: 3.6 minutes).
#
# Only while the body really arrives: at least HEARTBEAT_MIN_RATE bytes a
# second on average since the last call. nginx's client_body_timeout is the
# time between two reads, so a client trickling a byte every few seconds is
# never cut off by it; without a floor it would hold the worker (and the
# upload's lock) for as long as a 256 MiB chunk takes at that rate. Slower
# than the floor, a chunk is what it was before the heartbeat: the worker is
# stopped after ``timeout`` seconds, what arrived is kept, tus resumes from it.
_heartbeat = {"call": None}
HEARTBEAT_SECONDS = 1.0
HEARTBEAT_MIN_RATE = 64 * 1024


def set_heartbeat(call):
    """``call()`` while a request body is received; None: nothing."""
    _heartbeat["call"] = call


class _Heartbeat:
    """Calls the heartbeat when a second has passed since the last call and
    the body has arrived at HEARTBEAT_MIN_RATE meanwhile."""

    __slots__ = ("call", "last", "mark")

    def __init__(self, received=0):
        self.call = _heartbeat["call"]
        self.last = time.monotonic()
        self.mark = received

    def __call__(self, received):
        if self.call is None:
            return
        now = time.monotonic()
        elapsed = now - self.last
        if elapsed >= HEARTBEAT_SECONDS and received - self.mark >= HEARTBEAT_MIN_RATE * elapsed:
            self.call()
            self.last, self.mark = now, received


class WriteFailed(Exception):
    """The staged file could not take the bytes (disk full, I/O error); what
    was written before stays."""


def write_body(request, fd, count, hasher=None):
    """Append up to ``count`` bytes of ``request``'s body at ``fd``'s position.

    Returns the bytes written: fewer than ``count`` when the body stopped
    short (the client or nginx went away, a worker timeout): what arrived
    stays on disk, so the upload resumes from there. ``hasher`` (a hashlib
    object) is fed the bytes written. WriteFailed when the file cannot take
    them. Under gunicorn the bytes go socket -> pipe -> file in the kernel
    (``splice``); with any other server, or any request body gunicorn does not
    hold in the expected shape, they are read through ``request.read``."""
    source = gunicorn_body(request, count)
    if source is None:
        return _read_body(request, fd, count, hasher)
    start = os.lseek(fd, 0, os.SEEK_CUR)
    written = _splice_body(source, fd)
    if hasher is not None and written == count:  # a short body is refused whatever it hashes to
        _hash_range(fd, start, written, hasher)
    return written


def _write_all(fd, data):
    view = memoryview(data)
    while view:
        try:
            written = os.write(fd, view)
        except OSError as error:
            raise WriteFailed(error) from error
        view = view[written:]


def _read_body(request, fd, count, hasher):
    from django.http.request import UnreadablePostError

    written = 0
    beat = _Heartbeat()
    try:
        while written < count:
            beat(written)
            data = request.read(min(READ_SIZE, count - written))
            if not data:
                break  # the client went away: keep what arrived
            _write_all(fd, data)
            if hasher is not None:
                hasher.update(data)
            written += len(data)
    except (OSError, UnreadablePostError):
        pass  # a cut connection; the bytes written so far stay
    return written


class _GunicornBody:
    """What ``gunicorn_body`` found: the client socket, gunicorn's body
    objects, and Django's view of the same stream (kept in step)."""

    def __init__(self, request, sock, body, reader, unreader, stream):
        self.request, self.sock, self.body, self.reader, self.unreader, self.stream = (
            request, sock, body, reader, unreader, stream)


def gunicorn_body(request, count):
    """The request's body as gunicorn holds it, when it can be spliced from
    the socket: a gunicorn worker with a blocking socket (sync or gthread),
    a body of known length (``Content-Length``, not chunked) that nobody has
    read yet and of which ``count`` bytes remain. None in every other case
    (runserver, Django's test client, gevent, a chunked body, another gunicorn
    version's internals): the caller reads it through Python."""
    if not hasattr(os, "splice"):
        return None
    environ = request.META
    sock, body = environ.get("gunicorn.socket"), environ.get("wsgi.input")
    if sock is None or body is None:
        return None
    try:
        from django.core.handlers.wsgi import LimitedStream
        from gunicorn.http.body import Body, LengthReader
        from gunicorn.http.unreader import SocketUnreader
    except ImportError:
        return None
    reader = getattr(body, "reader", None)
    unreader = getattr(reader, "unreader", None)
    stream = getattr(request, "_stream", None)
    try:
        if not (
            type(body) is Body and type(reader) is LengthReader and type(unreader) is SocketUnreader
            # A plain socket: not TLS (an SSLSocket's descriptor carries ciphertext), not gevent's.
            and unreader.sock is sock and type(sock) is socket.socket and sock.type == socket.SOCK_STREAM
            and sock.family in (socket.AF_UNIX, socket.AF_INET, socket.AF_INET6)
            and type(stream) is LimitedStream and stream._pos == 0 and stream.limit == count
            and not request._read_started
            and type(body.buf) is io.BytesIO and type(unreader.buf) is io.BytesIO
            # Exactly the body's bytes are left: what Body holds plus what its reader may still read.
            and len(body.buf.getvalue()) + reader.length == count
        ):
            return None
        # A blocking socket (a gevent socket's descriptor is non-blocking: its
        # worker must not block in the kernel).
        if sock.gettimeout() is not None or not os.get_blocking(sock.fileno()):
            return None
    except (AttributeError, OSError):
        return None  # other internals than these (another gunicorn or Django version), or a closed socket
    return _GunicornBody(request, sock, body, reader, unreader, stream)


def _splice_body(source, fd):
    """First the body's bytes gunicorn already read (with the headers), then
    the rest socket -> pipe -> file. gunicorn's reader and Django's stream
    are kept in step with what was taken, so nothing reads or waits for the
    body afterwards. Returns the bytes written."""
    import fcntl

    body, reader, unreader = source.body, source.reader, source.unreader
    held = body.buf.getvalue()
    body.buf = io.BytesIO()
    ahead = unreader.buf.getvalue()
    taken = min(len(ahead), reader.length)
    unreader.buf = io.BytesIO()
    if taken < len(ahead):
        unreader.unread(ahead[taken:])  # not the body's: left for gunicorn
    reader.length -= taken
    source.stream._pos += len(held) + taken
    source.request._read_started = True  # Django's flag: nothing reads this body again
    _write_all(fd, held)
    _write_all(fd, ahead[:taken])
    written = len(held) + taken

    sock_fd = source.sock.fileno()
    pipe_out, pipe_in = os.pipe2(os.O_CLOEXEC)
    try:
        try:
            fcntl.fcntl(pipe_in, fcntl.F_SETPIPE_SZ, PIPE_SIZE)
        except OSError:
            pass  # the default size (64 KiB) works, only in more steps
        step = fcntl.fcntl(pipe_in, fcntl.F_GETPIPE_SZ)
        spliced = False
        beat = _Heartbeat(written)
        while reader.length:
            beat(written)
            try:
                moved = os.splice(sock_fd, pipe_in, min(step, reader.length), flags=os.SPLICE_F_MOVE)
            except OSError:
                moved = 0  # a reset connection: keep what arrived
            if not moved:
                break  # the body ended early (the client or nginx went away)
            reader.length -= moved
            source.stream._pos += moved
            while moved:
                try:
                    out = os.splice(pipe_out, fd, moved, flags=os.SPLICE_F_MOVE)
                except OSError as error:
                    if error.errno != errno.EINVAL or spliced:
                        raise WriteFailed(error) from error
                    # A file that takes no spliced pages (opened for appending, an
                    # unusual file system): empty the pipe by hand, read the rest.
                    while moved:
                        data = os.read(pipe_out, moved)
                        _write_all(fd, data)
                        moved -= len(data)
                        written += len(data)
                    return written + _read_body(source.request, fd, reader.length, None)
                spliced = True
                moved -= out
                written += out
    finally:
        os.close(pipe_in)
        os.close(pipe_out)
    return written


def _hash_range(fd, start, length, hasher, block=READ_SIZE):
    buffer = bytearray(block)
    view = memoryview(buffer)
    position, end = start, start + length
    while position < end:
        got = os.preadv(fd, [view[: min(block, end - position)]], position)
        if not got:
            raise WriteFailed(f"the staged file is shorter than the {length} bytes written")
        hasher.update(view[:got])
        position += got
