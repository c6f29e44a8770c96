"""Allowed media decisions, remembered per process until anything they rest on changes.

A player fetches a video in many range requests. Running the whole policy for
each (session, user, page, restrictions, grants, groups: eight queries) costs
most of a request, so an ALLOWED answer is kept in this process and reused
while nothing it was read from has changed.

Scopes
------
What a decision is read from is covered by a few *scopes*, one row each in
``DecisionScope`` (key, random value, when touched):

- ``s:<session key>``  the session row (who is signed in, passed passwords, expiry);
- ``u:<user id>``      the user row and the user's group memberships;
- ``p:<page id>``      the page row, its concrete page model rows, its viewer
  grants, and every view restriction that applies to it (on the page, an
  ancestor, or a page it or an ancestor is an alias of);
- ``v:<video id>``     the video row, its renditions, its caption tracks and its
  chapters;
- ``schema``           everything at once: bumped after every ``migrate``
  (when the triggers are re-installed), by ``bump()``, and by a TRUNCATE of
  any watched table on PostgreSQL.

Database triggers (``install_triggers``) give every scope a changed row
touches a new random value, in the same transaction as the change (an
upsert: the row is created if missing). A change to one page, user or
session touches only that scope, so a login, logout, session save or a
publish elsewhere leaves every other entry alone, and writes to different
scopes take different row locks instead of queueing on one.

The invariant
-------------
An entry is used only while all of these hold:

1. Every scope it rests on has the value it had when the request that made
   the entry read it, and that read came *before* the policy's own queries.
   The scopes are ``schema``, ``p:`` of the page, ``v:`` of the video, and,
   with a session cookie, ``s:`` of that cookie and ``u:`` of the user the
   session names (a missing row counts as the value None). The request
   reads ``s:``, ``p:``, ``v:`` and ``schema`` first; on a miss it then loads
   the session (after ``s:`` was read, so a later change to it changes
   ``s:``) and reads ``u:`` of the user it names before the policy loads that
   user. The policy's ancestors, restrictions and grants are all covered by
   ``p:`` of the page, because the triggers bump every page a restriction
   applies to. Checking an entry is one query on the primary key:
   ``SELECT key, value ... WHERE key IN (...)`` (on PostgreSQL a prepared
   ``UNION ALL`` of ``key = $n`` probes, see ``_read_postgres``).
2. Every trigger is present (and enabled, on PostgreSQL). SQLite: every read
   also returns the schema version, and the triggers are counted again when
   it changes (rebuilding a table, as many Django migrations do, drops its
   triggers). PostgreSQL: a process counts the triggers on its first media
   request and again every ``TRIGGER_RECHECK_SECONDS`` (60; never per
   request); ``migrate`` re-installs them and bumps ``schema``. A trigger
   dropped or disabled by hand behind Django's back is like
   ``session_replication_role = replica`` or ``pg_restore
   --disable-triggers``: changes made meanwhile are not seen. Restart the web
   workers (or call ``bump()``) after such work; ``check --database default``
   reports missing or disabled triggers (private_video_access.E004).
3. Its absolute expiry has not passed: the session row's ``expire_date``, the
   earliest expiry of the grants that allowed it, the page's ``expire_at``
   (the policy's ``valid_until``), and at most
   ``MEDIA_ACCESS_DECISION_CACHE_TTL`` seconds (300) after the scopes were read.
4. The key matches exactly: the raw session cookie (None without one), page
   id, video id, rendition name and whether it is a download. Nothing else in
   the request is read by the policy: the user comes from the session, and
   Wagtail's password restrictions from the session's data.

   The player's other endpoints (``views.playback``, the analytics beacon)
   use the same keys with a kind in the rendition slot: ``#json``,
   ``#playlist``, ``#chapters``, ``#position``, ``#beacon`` (a rendition name
   is a slug, never ``#...``). Their entries all hold the same thing, the
   decision without download, the user the session named and the video's
   ``VideoFacts`` (renditions, captions, chapters: all under ``v:``), so
   ``recall_shared`` may answer one kind from another kind's current entry
   of the same session cookie, page and video: the policy reads nothing of
   the kind.

Why a missing row is safe, and pruning with it
----------------------------------------------
Scope rows are created by the first change to what they cover, and rows not
touched for ``prune_after()`` seconds (``DECISION_CACHE_TTL`` plus a day)
are deleted (``prune_scopes``, at most hourly from a worker). An entry that
read value x for a scope (x None when the row was missing) at time t0 is
used until t0 + TTL at the latest. If anything the scope covers changed after
t0, the change's trigger wrote a fresh random value with ``touched`` >= t0,
and pruning deletes that row only once ``touched`` is older than TTL plus a
day, i.e. after the entry has expired: while the entry can be used, the row
holds that new value, which is not x (random 62-bit values; None is never
written). If nothing changed, the row is still x, or it was pruned (then
None, which differs from a value x: a miss, never a wrong hit). So deleting
rows can cost a policy run, never reuse a stale entry. This needs the
database's clock and the workers' to differ by less than a day, and no worker
to run with a longer TTL than the pruning process.

Only decisions the policy marks ``cacheable`` are kept: ALLOWED, on a live
page, with the video found in the page's own rows (never through Wagtail's
reference index, which a background task updates after the fact), and not
resting on the user being able to edit the page (page permissions are not
watched). Denials and 404s always run the whole policy.

What the triggers watch (``watched_tables``), the scopes each change touches,
and why each can end an allowed decision:

- ``wagtailcore_page`` (``p:`` of the row; when ``alias_of`` changes, of the
  page and its descendants too) and the table of every concrete page model
  (``p:``): unpublish, delete, a move under a restricted section (treebeard
  rewrites ``path`` of the page and every descendant with ``QuerySet.update``
  and raw SQL, which no model signal sees, but the row triggers do), the main
  video or the body changing, alias syncing.
- ``wagtailcore_pageviewrestriction`` and its groups table (``p:`` of the
  restricted page, its descendants, and the pages aliasing it, two alias
  levels deep, and their descendants): a restriction added on the page or an
  ancestor, its type or password changed (a new password is saved as a new
  row, see ``signal_handlers``, so the session's remembered restriction id
  stops passing too), a group taken off it.
- ``private_video_access_viewergrant`` (``p:`` of its page): a grant
  deleted, expired early, narrowed.
- the user table and its groups table (``u:``): deactivation, a password
  change (the session's auth hash stops matching), superuser removed, a user
  removed from a group (``Group.user_set.clear()`` and
  ``user.groups.remove()`` write the through table without a model signal).
- ``auth_group`` (UPDATE, DELETE: ``u:`` of its members, ``p:`` of the pages
  it holds grants or restrictions on): a group deleted. Django deletes the
  memberships and restriction links and empties the group's grants (they
  outlive it, naming nobody) first, which touch the same scopes.
- ``django_session`` (``s:``): logout, ``cycle_key`` at login,
  ``clearsessions``' bulk delete, a shorter expiry, changed session data, a
  row created for a cookie that had none. Only the ``db`` and ``cached_db``
  session engines write that table, so with any other engine nothing is
  remembered.
- the video model's table and ``private_video_transcoding_rendition``
  (``v:``): a file replaced or deleted.
- ``private_video_caption`` and ``private_video_chapter`` (``v:`` of their
  video): a caption track or chapter added, changed or deleted. They end no
  decision, but the player's remembered entries carry the video's captions
  and chapters (``hls.VideoFacts``).

Not watched, deliberately: page permissions and the library's collection
permissions (decisions that used them are not kept), revisions and drafts
(only live content is used), the reference index (not used), Wagtail's site
and locale tables (the policy does not read them). Grant expiry and session
expiry are times, not changes: they are the entry's expiry (3). With
autocommit, a model's save commits before its signals run; the triggers have
no such gap.
"""

import logging
import secrets
import threading
import time
from collections import OrderedDict
from dataclasses import dataclass

from django.apps import apps
from django.conf import settings
from django.db import DatabaseError, connections, transaction
from django.utils.functional import LazyObject, empty
from wagtail import hooks

from .conf import setting
from .policy import CHECK_HOOK

logger = logging.getLogger(__name__)

TRIGGER_PREFIX = "private_video_access_policy_"
SCOPE_TABLE = "private_video_access_decisionscope"
SCHEMA_SCOPE = "schema"
ALL_EVENTS = ("INSERT", "UPDATE", "DELETE")
# Session engines that keep every session in (and delete it from) django_session.
DB_SESSION_ENGINES = {
    "django.contrib.sessions.backends.db",
    "django.contrib.sessions.backends.cached_db",
}
SUPPORTED_VENDORS = {"sqlite", "postgresql"}
# PostgreSQL: how often a process counts the triggers again (SQLite notices
# any schema change on the next request).
TRIGGER_RECHECK_SECONDS = 60
# Scope rows older than the longest entry lifetime plus this are pruned.
PRUNE_MARGIN_SECONDS = 24 * 3600
PRUNE_EVERY_SECONDS = 3600
# Longer cookies name no session (Django's keys are 32 characters).
MAX_SESSION_KEY_LENGTH = 64


@dataclass(frozen=True)
class Remembered:
    """What a later request needs to answer exactly as the first one did."""

    page: object
    video: object
    decision: object
    served: object
    # time.time() after which the entry is not used.
    expires_at: float
    # ((scope key, value or None), ...): what the entry rests on (invariant 1).
    scopes: tuple = ()


class DecisionCache:
    """A bounded LRU of allowed decisions; each entry carries the scope values it rests on."""

    def __init__(self, max_entries):
        self.max_entries = max_entries
        self._entries = OrderedDict()
        self._lock = threading.Lock()

    def get(self, key, now=None):
        now = time.time() if now is None else now
        with self._lock:
            entry = self._entries.get(key)
            if entry is None:
                return None
            if entry.expires_at <= now:
                del self._entries[key]
                return None
            self._entries.move_to_end(key)
            return entry

    def put(self, key, entry):
        if self.max_entries <= 0:
            return
        with self._lock:
            self._entries[key] = entry
            self._entries.move_to_end(key)
            while len(self._entries) > self.max_entries:
                self._entries.popitem(last=False)

    def discard(self, key, entry=None):
        """Drop ``key`` (only if it still holds ``entry``, when given)."""
        with self._lock:
            if entry is None or self._entries.get(key) is entry:
                self._entries.pop(key, None)

    def clear(self):
        with self._lock:
            self._entries.clear()

    def __len__(self):
        return len(self._entries)


def max_entries():
    return int(setting("DECISION_CACHE_SIZE"))


def max_age():
    return float(setting("DECISION_CACHE_TTL"))


# Sized from settings on first use (cache()), not at import.
_cache = DecisionCache(0)


def cache():
    if _cache.max_entries != max_entries():
        # Settings are read at call time (override_settings in tests).
        _cache.max_entries = max_entries()
        _cache.clear()
    return _cache


def key_for(request, page_id, video_id, rendition, attachment):
    """The same cookie the session middleware reads; None for a visitor without one."""
    session_key = request.COOKIES.get(settings.SESSION_COOKIE_NAME) or None
    return (session_key, int(page_id), int(video_id), rendition, bool(attachment))


def enabled(using="default"):
    return (
        max_entries() > 0
        and settings.SESSION_ENGINE in DB_SESSION_ENGINES
        and connections[using].vendor in SUPPORTED_VENDORS
    )


# --- scope keys ----------------------------------------------------------------------


def _db_id(model, value, connection):
    """An id as the triggers spell it: the column's value in the database, as text."""
    field = model._meta.pk
    prepared = field.get_db_prep_value(field.to_python(value), connection)
    return str(prepared)


def page_scope(page_id):
    return f"p:{int(page_id)}"


def video_scope(video_id, connection=None):
    from private_video import get_video_model

    connection = connection or connections["default"]
    return f"v:{_db_id(get_video_model(), video_id, connection)}"


def user_scope(user_id, connection=None):
    from django.contrib.auth import get_user_model

    connection = connection or connections["default"]
    return f"u:{_db_id(get_user_model(), user_id, connection)}"


def session_scope(session_key):
    return f"s:{session_key}"


def base_scopes(key, connection=None):
    """The scopes known before anything is read: schema, page, video, session."""
    session_key, page_id, video_id = key[0], key[1], key[2]
    scopes = [SCHEMA_SCOPE, page_scope(page_id), video_scope(video_id, connection)]
    if session_key is not None:
        scopes.append(session_scope(session_key))
    return scopes


# --- one request's reads ---------------------------------------------------------------


class Snapshot:
    """The scope values one request read before the policy's own queries."""

    def __init__(self, request, using):
        self.request = request
        self.using = using
        # time.time() before the first read: entries expire TTL after it.
        self.started = time.time()
        self.values = {}
        self.usable = True
        # The user scope the session named when it was read (None: anonymous).
        self.user_key = None

    def read(self, keys):
        """Add the current values of ``keys`` (None for a missing row);
        False when nothing may be remembered."""
        keys = sorted(set(keys) - set(self.values))
        if not self.usable:
            return False
        if not keys:
            return True
        rows = _read_scopes(self.using, keys)
        if rows is None:
            self.usable = False
            return False
        for key in keys:
            self.values[key] = rows.get(key)
        return True

    def read_user_scope(self):
        """On a miss with a session cookie: load the session (after ``s:`` was
        read) and read ``u:`` of the user it names (before the policy loads
        that user)."""
        if not self.usable:
            return
        session = getattr(self.request, "session", None)
        if session is None:
            self.usable = False
            return
        from django.contrib.auth import SESSION_KEY

        try:
            user_id = session.get(SESSION_KEY)
            user_key = user_scope(user_id, connections[self.using]) if user_id is not None else None
        except Exception:
            self.usable = False
            return
        self.user_key = user_key
        if user_key is not None:
            self.read([user_key])


def current_generation(request, using="default"):
    """A ``Snapshot`` for this request, or None when decisions must not be
    remembered (cache off, a trigger missing or disabled, the table missing,
    a check_video_access hook, or the session already read: what the policy
    then sees may be older than the scope values). Reads nothing itself,
    except to count the triggers (see the invariant, 2)."""
    if not enabled(using) or _session_already_read(request) or hooks.get_hooks(CHECK_HOOK):
        # With check_video_access hooks nothing is remembered: what a hook's
        # answer rests on is not watched here.
        return None
    cookie = request.COOKIES.get(settings.SESSION_COOKIE_NAME) or None
    if cookie is not None and len(cookie) > MAX_SESSION_KEY_LENGTH:
        return None
    if not _triggers_ok(using):
        return None
    return Snapshot(request, using)


def _session_already_read(request):
    session = getattr(request, "session", None)
    if session is not None and getattr(session, "accessed", False):
        return True
    user = request.__dict__.get("user")
    if user is None:
        return False
    return not (isinstance(user, LazyObject) and user._wrapped is empty)


def recall(key, snapshot):
    """The remembered entry for ``key`` if every scope it rests on still has
    the value it was made with. Reads the scopes (one query) whether or not
    there is an entry: a miss then runs the policy with them read first."""
    if snapshot is None:
        return None
    store = cache()
    entry = store.get(key)
    connection = connections[snapshot.using]
    try:
        keys = [scope for scope, _ in entry.scopes] if entry is not None else base_scopes(key, connection)
    except Exception:
        return None
    if not snapshot.read(keys):
        return None
    if entry is not None:
        if entry.scopes and all(snapshot.values.get(scope) == value for scope, value in entry.scopes):
            return entry
        store.discard(key, entry)
    if key[0] is not None:
        snapshot.read_user_scope()
    return None


def stamp(snapshot, scopes):
    """(the values ``snapshot`` read for ``scopes``, the time.time() after which
    they prove nothing), or None when one was not read. What a request reads
    after its scopes may be kept under these values as an entry is (invariant
    1 and 3, and the pruning proof): used while a later request reads the same
    values, never past the time given. ``views.playback`` keeps a video's
    renditions, captions and chapters so, under ``schema`` and ``v:``."""
    if snapshot is None or not snapshot.usable or not all(scope in snapshot.values for scope in scopes):
        return None
    return tuple(snapshot.values[scope] for scope in scopes), snapshot.started + max_age()


def recall_shared(keys, snapshot):
    """``recall(keys[0], snapshot)``, but first the entries of ``keys[1:]``:
    keys that differ from the first only in the rendition slot and whose
    entries hold the same thing (the player's endpoint kinds, see the
    invariant, 4). A current sibling entry is also kept under ``keys[0]``.
    Costs no more queries than ``recall``."""
    if snapshot is None:
        return None
    first = keys[0]
    for key in keys[1:]:
        if (key[0], key[1], key[2], key[4]) != (first[0], first[1], first[2], first[4]):
            raise ValueError("recall_shared: keys must differ only in the rendition slot")
    store = cache()
    for key in keys:
        entry = store.get(key)
        if entry is None:
            continue
        if not snapshot.read([scope for scope, _ in entry.scopes]):
            return None
        if entry.scopes and all(snapshot.values.get(scope) == value for scope, value in entry.scopes):
            if key != first:
                store.put(first, entry)
            return entry
        store.discard(key, entry)
    return recall(first, snapshot)


def remember(key, snapshot, page, video, decision, served):
    """Keep an allowed, cacheable decision, with the scope values read before
    the policy ran and the earliest time it lapses."""
    if snapshot is None or not snapshot.usable or not decision.allowed or not decision.cacheable:
        return None
    connection = connections[snapshot.using]
    needed = set(base_scopes(key, connection))
    if key[0] is not None:
        if snapshot.user_key is not None:
            needed.add(snapshot.user_key)
        user = snapshot.request.__dict__.get("user")
        if user is not None and not (isinstance(user, LazyObject) and user._wrapped is empty):
            if user.is_authenticated and user_scope(user.pk, connection) != snapshot.user_key:
                # The policy saw another user than the scope read: never expected; don't keep.
                return None
    if not needed <= set(snapshot.values):
        # Not read before the policy ran (no recall, or the session was not
        # readable): nothing proves the decision current later.
        return None
    expires_at = snapshot.started + max_age()
    if decision.valid_until is not None:
        expires_at = min(expires_at, decision.valid_until.timestamp())
    if key[0] is not None:
        session_expiry = _session_expiry(key[0])
        if session_expiry is not None:
            expires_at = min(expires_at, session_expiry)
    scopes = tuple(sorted((scope, snapshot.values[scope]) for scope in needed))
    entry = Remembered(
        page=page, video=video, decision=decision, served=served, expires_at=expires_at, scopes=scopes
    )
    cache().put(key, entry)
    _maybe_prune(snapshot.using)
    return entry


def _session_expiry(session_key):
    from django.contrib.sessions.models import Session

    expiry = Session.objects.filter(session_key=session_key).values_list("expire_date", flat=True).first()
    # No such row: the policy saw an anonymous visitor with an empty session,
    # which is what this cookie will keep meaning (until a row is created,
    # which changes its s: scope).
    return expiry.timestamp() if expiry is not None else None


_READ_SQLITE = (
    "SELECT NULL, (SELECT schema_version FROM pragma_schema_version()) "
    f'UNION ALL SELECT "key", "value" FROM {SCOPE_TABLE} WHERE "key" IN ({{}})'
)


def _read_scopes(using, keys):
    """{key: value} for the rows that exist, or None when nothing may be
    remembered (an error, a trigger missing: SQLite notices here)."""
    connection = connections[using]
    try:
        if connection.vendor == "sqlite":
            # The driver's own cursor: this runs on every media request, and
            # Django's wrapper costs more than the query. Any error means
            # "don't remember"; the policy's own queries then go through Django.
            connection.ensure_connection()
            cursor = connection.connection.cursor()
            try:
                rows = cursor.execute(_READ_SQLITE.format(", ".join("?" * len(keys))), keys).fetchall()
                schema = next(value for scope, value in rows if scope is None)
                state = _trigger_state.get(using)
                if state is None or state[2] != schema:
                    ok = _count_triggers_sqlite(using, cursor) == _expected(using)
                    _trigger_state[using] = (ok, time.monotonic(), schema)
                if not _trigger_state[using][0]:
                    return None
                return {scope: value for scope, value in rows if scope is not None}
            finally:
                cursor.close()
        raw = _raw_postgres(connection)
        if raw is None:
            with connection.cursor() as cursor:
                cursor.execute(_union_query(len(keys)), keys)
                return dict(cursor.fetchall())
        values = _read_postgres(connection, raw, keys)
        # The read just proved the connection usable: what Django's health
        # check (CONN_HEALTH_CHECKS) would send SELECT 1 for before the
        # policy's first query on a miss.
        connection.health_check_done = True
        return values
    except (DatabaseError, connection.Database.Error):
        return None


def _raw_postgres(connection):
    """The open psycopg 3 connection under Django's, or None (psycopg2, not
    connected yet, in a broken transaction: Django's cursor then)."""
    raw = connection.connection
    if raw is None or connection.needs_rollback or not hasattr(raw, "pgconn"):
        return None
    return raw


# Whether this process may prepare the read (False once a connection pooler
# in transaction mode has refused a prepared statement).
_prepare = {"ok": True}
# On each psycopg connection: the numbers of keys whose read it has prepared.
_PREPARED = "_private_video_scope_reads"


def _read_postgres(connection, raw, keys):
    """The scope read on PostgreSQL with psycopg 3, at the cost of one round trip.

    - Below Django, as on SQLite, and no health check: with
      CONN_HEALTH_CHECKS Django sends ``SELECT 1`` before the first query of
      every request, a second round trip. A dead connection makes this read
      fail instead, which only means "don't remember"; the policy's queries
      then go through Django, whose health check reconnects.
    - One prepared ``UNION ALL`` of primary-key equalities per number of
      keys: every branch is an index probe in the generic plan, whatever the
      table's size or statistics (``key IN (...)`` is planned as a sequential
      scan while the table is small or not yet analyzed, ~0.1 ms per
      thousand rows on every request), and the plan is made once per
      connection. It runs on libpq itself (``_exec_scope_read``): psycopg's
      cursor costs about as much CPU as the round trip, on every media
      request. A pooler in transaction mode that does not carry prepared
      statements (PgBouncer before 1.21) refuses one here, after which this
      process reads unprepared; ``"prepare_threshold": None`` in the
      database's OPTIONS (psycopg's own switch) means never prepare.
    - Prepared only in autocommit: inside a transaction (ATOMIC_REQUESTS, a
      view in ``transaction.atomic``) a refused EXECUTE would abort it, and the
      policy's queries after it with it. There the same query goes unprepared,
      with the values inlined, so the planner still probes the index, and in
      a savepoint sent in the same round trip, so that any failed read
      (lock_timeout, statement_timeout, a cancel) leaves the transaction
      usable (``_read_in_transaction``).
    """
    Database = connection.Database
    if not raw.autocommit:
        return _exec_scope_read(raw, keys)
    if _prepare["ok"]:
        options = connection.settings_dict.get("OPTIONS", {})
        if "prepare_threshold" in options and options["prepare_threshold"] is None:
            _prepare["ok"] = False
        else:
            try:
                return _exec_scope_read(raw, keys)
            except (Database.errors.InvalidSqlStatementName, Database.errors.DuplicatePreparedStatement):
                _prepare["ok"] = False
                logger.warning("The database refused a prepared statement (a connection pooler in "
                               "transaction mode?); remembered decisions are checked unprepared.")
    with Database.ClientCursor(raw) as cursor:
        cursor.execute(_union_query(len(keys)), keys)
        return dict(cursor.fetchall())


def _exec_scope_read(raw, keys):
    """{key: value} from one EXECUTE of this connection's prepared read for
    len(keys) keys, prepared first if it is new. Through psycopg's libpq
    binding (``pgconn``), which releases the GIL while it waits; errors are
    raised as psycopg's exceptions. Outside autocommit: the unprepared,
    savepointed read of ``_read_in_transaction``."""
    from psycopg import errors, pq

    if not raw.autocommit:
        return _read_in_transaction(raw, keys)
    count = len(keys)
    name = b"private_video_scope_read_%d" % count
    pgconn = raw.pgconn
    prepared = raw.__dict__.get(_PREPARED)
    if prepared is None:
        prepared = raw.__dict__[_PREPARED] = set()
    if count not in prepared:
        numbered = _union_query(count)
        for n in range(1, count + 1):
            numbered = numbered.replace("%s", f"${n}", 1)
        result = pgconn.prepare(name, numbered.encode(), None)
        if result.status != pq.ExecStatus.COMMAND_OK:
            raise errors.error_from_result(result, encoding="utf-8")
        prepared.add(count)
    result = pgconn.exec_prepared(name, [key.encode() for key in keys])
    if result.status != pq.ExecStatus.TUPLES_OK:
        raise errors.error_from_result(result, encoding="utf-8")
    return {result.get_value(row, 0).decode(): int(result.get_value(row, 1)) for row in range(result.ntuples)}


_SAVEPOINT = "private_video_scope_read"


def _read_in_transaction(raw, keys):
    """The read outside autocommit (ATOMIC_REQUESTS, a view in
    ``transaction.atomic``): unprepared, the values inlined, and, inside an
    open transaction, in a savepoint sent in the same round trip (the simple
    query protocol takes several statements). A failed read (a lock_timeout,
    a statement_timeout, a cancel) is rolled back to the savepoint, so it
    still only means "don't remember": without it the transaction would be
    aborted, and the policy's queries after it with it (a 500). Before the
    transaction has begun the read is a statement of its own."""
    from psycopg import ClientCursor, errors, pq

    pgconn = raw.pgconn
    status = pgconn.transaction_status
    with ClientCursor(raw) as cursor:
        query = cursor.mogrify(_union_query(len(keys)), keys)
    savepoint = status == pq.TransactionStatus.INTRANS
    if savepoint:
        query = f"SAVEPOINT {_SAVEPOINT}; {query}; RELEASE SAVEPOINT {_SAVEPOINT}"
    elif status != pq.TransactionStatus.IDLE:
        raise errors.OperationalError(f"the scope read is not sent in transaction status {status!r}")
    results = []
    nonblocking = pgconn.nonblocking
    pgconn.nonblocking = 0  # psycopg's own waiting is not used here: send and read to the end.
    try:
        pgconn.send_query(query.encode())
        while (result := pgconn.get_result()) is not None:
            results.append(result)
    finally:
        if pgconn.status == pq.ConnStatus.OK:
            pgconn.nonblocking = nonblocking
    rows = None
    for result in results:
        if result.status == pq.ExecStatus.TUPLES_OK:
            rows = result
        elif result.status != pq.ExecStatus.COMMAND_OK:
            if savepoint and pgconn.transaction_status == pq.TransactionStatus.INERROR:
                pgconn.exec_(f"ROLLBACK TO SAVEPOINT {_SAVEPOINT}; RELEASE SAVEPOINT {_SAVEPOINT}".encode())
            raise errors.error_from_result(result, encoding="utf-8")
    if rows is None:
        raise errors.OperationalError("the scope read returned no rows")
    return {rows.get_value(row, 0).decode(): int(rows.get_value(row, 1)) for row in range(rows.ntuples)}


_union_queries = {}


def _union_query(count):
    query = _union_queries.get(count)
    if query is None:
        one = f'SELECT "key", "value" FROM {SCOPE_TABLE} WHERE "key" = %s'
        query = _union_queries[count] = " UNION ALL ".join([one] * count)
    return query


# --- are the triggers there? -----------------------------------------------------------

_expected_triggers = {}
# using -> (all present, time.monotonic() of the count, SQLite schema version)
_trigger_state = {}
_TRIGGER_PATTERN = TRIGGER_PREFIX.replace("_", "\\_") + "%"
_COUNT_SQLITE = "SELECT count(*) FROM sqlite_master WHERE type = 'trigger' AND name LIKE ? ESCAPE '\\'"
_SCHEMA_SQLITE = "SELECT schema_version FROM pragma_schema_version()"
_COUNT_POSTGRES = "SELECT count(*) FROM pg_trigger WHERE tgname LIKE %s AND tgenabled <> 'D' AND NOT tgisinternal"


def _expected(using):
    expected = _expected_triggers.get(using)
    if expected is None:
        expected = _expected_triggers[using] = len(trigger_names(connections[using]))
    return expected


def _count_triggers_sqlite(using, cursor):
    return cursor.execute(_COUNT_SQLITE, [_TRIGGER_PATTERN]).fetchone()[0]


def _triggers_ok(using):
    connection = connections[using]
    state = _trigger_state.get(using)
    now = time.monotonic()
    if state is not None and (connection.vendor == "sqlite" or now - state[1] < TRIGGER_RECHECK_SECONDS):
        return state[0]
    try:
        expected = _expected(using)
        if connection.vendor == "sqlite":
            connection.ensure_connection()
            cursor = connection.connection.cursor()
            try:
                schema = cursor.execute(_SCHEMA_SQLITE).fetchone()[0]
                count = _count_triggers_sqlite(using, cursor)
            finally:
                cursor.close()
        else:
            with connection.cursor() as cursor:
                cursor.execute(_COUNT_POSTGRES, [_TRIGGER_PATTERN])
                count, schema = cursor.fetchone()[0], None
    except (DatabaseError, connection.Database.Error):
        return False
    ok = expected > 0 and count == expected
    _trigger_state[using] = (ok, now, schema)
    return ok


def recheck_triggers(using=None):
    """Count the triggers again on the next request (all databases when None)."""
    if using is None:
        _trigger_state.clear()
        _expected_triggers.clear()
    else:
        _trigger_state.pop(using, None)
        _expected_triggers.pop(using, None)


# --- pruning ---------------------------------------------------------------------------

_last_prune = {}


def prune_after():
    """Seconds after which an untouched scope row may be deleted (see the docstring's proof)."""
    return max(max_age(), 0) + PRUNE_MARGIN_SECONDS


def prune_scopes(using="default", now=None):
    """Delete scope rows untouched for ``prune_after()`` seconds; returns how many."""
    from .models import DecisionScope

    now = time.time() if now is None else now
    # Never "schema": every entry rests on it, and it changes rarely.
    old = DecisionScope.objects.using(using).filter(touched__lt=int(now - prune_after())).exclude(key=SCHEMA_SCOPE)
    deleted, _ = old.delete()
    return deleted


def _maybe_prune(using):
    now = time.monotonic()
    last = _last_prune.get(using)
    if last is not None and now - last < PRUNE_EVERY_SECONDS:
        return
    _last_prune[using] = now
    try:
        prune_scopes(using)
    except DatabaseError:
        pass


# --- the triggers --------------------------------------------------------------------


def watched_tables():
    """(table, events) for every table an allowed decision can rest on."""
    return [(table, spec.events) for table, spec in sorted(_trigger_specs().items())]


@dataclass(frozen=True)
class _Spec:
    events: tuple
    # row alias ("OLD"/"NEW") -> SQL selects, each yielding scope keys as column k
    keys: object
    # extra selects for an UPDATE that meets ``update_when(vendor)``: the page's alias change
    on_update: object = None
    update_when: object = None


def _trigger_specs():
    from django.contrib.auth import get_user_model
    from django.contrib.auth.models import Group
    from django.contrib.sessions.models import Session
    from wagtail.models import Page, PageViewRestriction

    from private_video import get_video_model

    from .models import ViewerGrant

    User = get_user_model()
    Video = get_video_model()
    page_t = Page._meta.db_table
    restriction_t = PageViewRestriction._meta.db_table
    restriction_groups = PageViewRestriction.groups.through
    rg_t = restriction_groups._meta.db_table
    rg_restriction = restriction_groups._meta.get_field("pageviewrestriction").column
    rg_group = restriction_groups._meta.get_field("group").column
    user_groups = User.groups.through
    ug_t = user_groups._meta.db_table
    ug_user = user_groups._meta.get_field(User._meta.model_name).column
    ug_group = user_groups._meta.get_field("group").column
    grant_t = ViewerGrant._meta.db_table
    grant_page = ViewerGrant._meta.get_field("page").column
    grant_group = ViewerGrant._meta.get_field("group").column

    def pages_under(ids_sql):
        """``p:`` of every page a restriction on the pages ``ids_sql`` applies to:
        each page and the pages aliasing it (two levels), and all their descendants."""
        return (
            f"SELECT 'p:' || d.id AS k FROM {page_t} d, {page_t} t WHERE "
            f"(t.id IN ({ids_sql}) OR t.alias_of_id IN ({ids_sql}) OR t.alias_of_id IN "
            f"(SELECT a.id FROM {page_t} a WHERE a.alias_of_id IN ({ids_sql}))) "
            "AND substr(d.path, 1, length(t.path)) = t.path"
        )

    def one(prefix, column):
        return lambda r: [f"SELECT '{prefix}:' || {r}.{column} AS k"]

    specs = {}
    specs[page_t] = _Spec(
        ALL_EVENTS, one("p", "id"),
        on_update=lambda vendor: pages_under("SELECT NEW.id"),
        update_when=lambda vendor: "OLD.alias_of_id "
        + ("IS DISTINCT FROM" if vendor == "postgresql" else "IS NOT") + " NEW.alias_of_id",
    )
    for model in apps.get_models():
        if issubclass(model, Page) and model is not Page and not model._meta.proxy:
            specs[model._meta.db_table] = _Spec(ALL_EVENTS, one("p", model._meta.pk.column))
    specs[restriction_t] = _Spec(ALL_EVENTS, lambda r: [pages_under(f"SELECT {r}.page_id")])
    specs[rg_t] = _Spec(ALL_EVENTS, lambda r: [pages_under(
        f"SELECT page_id FROM {restriction_t} WHERE id = {r}.{rg_restriction}"
    )])
    specs[grant_t] = _Spec(ALL_EVENTS, one("p", grant_page))
    specs[User._meta.db_table] = _Spec(ALL_EVENTS, one("u", User._meta.pk.column))
    specs[ug_t] = _Spec(ALL_EVENTS, one("u", ug_user))
    specs[Group._meta.db_table] = _Spec(("UPDATE", "DELETE"), lambda r: [
        f"SELECT 'u:' || {ug_user} AS k FROM {ug_t} WHERE {ug_group} = {r}.id",
        f"SELECT 'p:' || {grant_page} AS k FROM {grant_t} WHERE {grant_group} = {r}.id",
        pages_under(f"SELECT vr.page_id FROM {restriction_t} vr JOIN {rg_t} rg "
                    f"ON rg.{rg_restriction} = vr.id WHERE rg.{rg_group} = {r}.id"),
    ])
    specs[Session._meta.db_table] = _Spec(ALL_EVENTS, one("s", Session._meta.pk.column))
    specs[Video._meta.db_table] = _Spec(ALL_EVENTS, one("v", Video._meta.pk.column))
    for label, name in (("private_video_transcoding", "Rendition"), ("private_video", "Caption"),
                        ("private_video", "Chapter")):
        try:
            model = apps.get_model(label, name)
        except LookupError:
            continue
        specs[model._meta.db_table] = _Spec(ALL_EVENTS, one("v", model._meta.get_field("video").column))
    return specs


def _existing_specs(connection):
    with connection.cursor() as cursor:
        existing = set(connection.introspection.table_names(cursor))
    return [(table, spec) for table, spec in sorted(_trigger_specs().items()) if table in existing]


def _sqlite_names(table, spec):
    names = [f"{TRIGGER_PREFIX}{table}_{event[0].lower()}" for event in spec.events]
    if spec.on_update is not None:
        names.append(f"{TRIGGER_PREFIX}{table}_a")
    return names


def _postgres_names(table):
    return f"{TRIGGER_PREFIX}{table}"[:63], f"{TRIGGER_PREFIX}trunc_{table}"[:63]


def trigger_names(connection):
    names = []
    for table, spec in _existing_specs(connection):
        if connection.vendor == "sqlite":
            names += _sqlite_names(table, spec)
        else:
            names += _postgres_names(table)
    return names


_NEW_VALUE = {
    "sqlite": "random()",
    "postgresql": "floor(random() * 9000000000000000000)::bigint",
}
_NOW = {
    "sqlite": "CAST(strftime('%s', 'now') AS INTEGER)",
    "postgresql": "extract(epoch FROM clock_timestamp())::bigint",
}


def _bump_sql(vendor, selects):
    """Statements giving every scope key the selects yield a new random value."""
    union = " UNION ALL ".join(f"SELECT k FROM ({select}) AS q{n}" for n, select in enumerate(selects))
    keys = f"SELECT DISTINCT k FROM ({union}) AS u WHERE k IS NOT NULL"
    if vendor == "postgresql":
        return [
            f'INSERT INTO {SCOPE_TABLE} ("key", "value", "touched") '
            f"SELECT k, {_NEW_VALUE[vendor]}, {_NOW[vendor]} FROM ({keys}) AS s "
            'ON CONFLICT ("key") DO UPDATE SET "value" = EXCLUDED."value", "touched" = EXCLUDED."touched"'
        ]
    # SQLite: an UPDATE, then an INSERT of the keys still missing. Not INSERT OR
    # REPLACE: an outer INSERT OR IGNORE (Django's m2m add) would override it.
    return [
        f'UPDATE {SCOPE_TABLE} SET "value" = {_NEW_VALUE[vendor]}, "touched" = {_NOW[vendor]} '
        f'WHERE "key" IN ({keys})',
        f'INSERT INTO {SCOPE_TABLE} ("key", "value", "touched") '
        f"SELECT k, {_NEW_VALUE[vendor]}, {_NOW[vendor]} FROM ({keys}) AS s "
        f'WHERE k NOT IN (SELECT "key" FROM {SCOPE_TABLE})',
    ]


_SCHEMA_BUMP_FUNCTION_POSTGRES = f"""
CREATE OR REPLACE FUNCTION private_video_access_policy_bump() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    INSERT INTO {SCOPE_TABLE} ("key", "value", "touched")
    VALUES ('{SCHEMA_SCOPE}', {_NEW_VALUE["postgresql"]}, {_NOW["postgresql"]})
    ON CONFLICT ("key") DO UPDATE SET "value" = EXCLUDED."value", "touched" = EXCLUDED."touched";
    RETURN NULL;
END
$$
"""


def _postgres_function(name, spec):
    old = " ".join(statement + ";" for statement in _bump_sql("postgresql", spec.keys("OLD")))
    new = " ".join(statement + ";" for statement in _bump_sql("postgresql", spec.keys("NEW")))
    update = ""
    if spec.on_update is not None:
        # Nested: OLD is only there for an UPDATE.
        update = f"IF TG_OP = 'UPDATE' THEN IF {spec.update_when('postgresql')} THEN " + " ".join(
            statement + ";" for statement in _bump_sql("postgresql", [spec.on_update("postgresql")])
        ) + " END IF; END IF;"
    return (
        f"CREATE OR REPLACE FUNCTION {name}() RETURNS trigger LANGUAGE plpgsql AS $$\nBEGIN\n"
        f"IF TG_OP IN ('UPDATE', 'DELETE') THEN {old} END IF;\n"
        f"IF TG_OP IN ('INSERT', 'UPDATE') THEN {new} END IF;\n"
        f"{update}\nRETURN NULL;\nEND\n$$"
    )


def _drop_ours(connection, cursor):
    """Every trigger of ours, whatever its table (a watched table may have
    left the list since the last install)."""
    qn = connection.ops.quote_name
    if connection.vendor == "sqlite":
        cursor.execute(
            "SELECT name FROM sqlite_master WHERE type = 'trigger' AND name LIKE %s ESCAPE '\\'", [_TRIGGER_PATTERN]
        )
        for (name,) in cursor.fetchall():
            cursor.execute(f"DROP TRIGGER IF EXISTS {qn(name)}")
    else:
        cursor.execute(
            "SELECT t.tgname, c.relname FROM pg_trigger t JOIN pg_class c ON c.oid = t.tgrelid "
            "WHERE t.tgname LIKE %s AND NOT t.tgisinternal",
            [_TRIGGER_PATTERN],
        )
        for name, table in cursor.fetchall():
            cursor.execute(f"DROP TRIGGER IF EXISTS {qn(name)} ON {qn(table)}")


def install_triggers(using="default"):
    """Create (again) every trigger and bump ``schema``. Idempotent."""
    connection = connections[using]
    if connection.vendor not in SUPPORTED_VENDORS:
        return []
    qn = connection.ops.quote_name
    installed = []
    with transaction.atomic(using=using), connection.cursor() as cursor:
        if SCOPE_TABLE not in connection.introspection.table_names(cursor):
            # migrate stopped before media_access's own tables.
            return []
        _drop_ours(connection, cursor)
        if connection.vendor == "postgresql":
            cursor.execute(_SCHEMA_BUMP_FUNCTION_POSTGRES)
        for table, spec in _existing_specs(connection):
            if connection.vendor == "sqlite":
                for event, name in zip(spec.events, _sqlite_names(table, spec)):
                    rows = {"INSERT": ["NEW"], "UPDATE": ["OLD", "NEW"], "DELETE": ["OLD"]}[event]
                    selects = [select for row in rows for select in spec.keys(row)]
                    body = " ".join(statement + ";" for statement in _bump_sql("sqlite", selects))
                    cursor.execute(f"CREATE TRIGGER {qn(name)} AFTER {event} ON {qn(table)} BEGIN {body} END")
                    installed.append(name)
                if spec.on_update is not None:
                    name = _sqlite_names(table, spec)[-1]
                    body = " ".join(statement + ";" for statement in _bump_sql("sqlite", [spec.on_update("sqlite")]))
                    cursor.execute(
                        f"CREATE TRIGGER {qn(name)} AFTER UPDATE ON {qn(table)} "
                        f"WHEN {spec.update_when('sqlite')} BEGIN {body} END"
                    )
                    installed.append(name)
            else:
                row_name, truncate_name = _postgres_names(table)
                cursor.execute(_postgres_function(row_name, spec))
                cursor.execute(
                    f"CREATE TRIGGER {qn(row_name)} AFTER {' OR '.join(spec.events)} ON {qn(table)} "
                    f"FOR EACH ROW EXECUTE FUNCTION {row_name}()"
                )
                cursor.execute(
                    f"CREATE TRIGGER {qn(truncate_name)} AFTER TRUNCATE ON {qn(table)} "
                    "FOR EACH STATEMENT EXECUTE FUNCTION private_video_access_policy_bump()"
                )
                installed += [row_name, truncate_name]
        bump(cursor=cursor)
    recheck_triggers(using)
    return installed


def bump(using="default", cursor=None):
    """End every remembered decision (after a change the triggers cannot see):
    a new value for ``schema``, which every entry rests on."""
    if cursor is None:
        with connections[using].cursor() as cursor:
            return bump(using, cursor)
    value = secrets.randbits(62)
    cursor.execute(f'UPDATE {SCOPE_TABLE} SET "value" = %s, "touched" = %s WHERE "key" = %s',
                   [value, int(time.time()), SCHEMA_SCOPE])
    if cursor.rowcount == 0:
        cursor.execute(f'INSERT INTO {SCOPE_TABLE} ("key", "value", "touched") VALUES (%s, %s, %s)',
                       [SCHEMA_SCOPE, value, int(time.time())])


def install_after_migrate(sender, using="default", **kwargs):
    install_triggers(using)
