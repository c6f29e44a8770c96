"""Allowed media decisions, remembered per process until anything they rest on changes.

A player fetches a video in many range requests. Running the whole policy for
each (session, user, page, restrictions, grants, groups: eight queries) costs
most of a request, so an ALLOWED answer is kept in this process and reused
while nothing it was read from has changed.

The invariant
-------------
An entry is used only while all of these hold:

1. ``PolicyGeneration.value`` is what it was when the request that made the
   entry *began* (it is read before the policy's own queries). Database
   triggers change that value, in the same transaction, with every INSERT,
   UPDATE or DELETE (and TRUNCATE on PostgreSQL) of a row the decision can rest
   on, so a committed change makes the next request read another value and
   drop every entry. New values are random, so a database restored from a
   backup (or the test suite's flush-and-reload) never repeats a value with
   other data behind it.
2. Every trigger is present (and enabled, on PostgreSQL): the same query that
   reads the value counts them. Rebuilding a table on SQLite (many Django
   migrations do) drops its triggers; until ``migrate`` re-installs them
   (post_migrate), nothing is remembered.
3. Its absolute expiry has not passed: the session row's ``expire_date``, the
   earliest expiry of the grants that allowed it, the page's ``expire_at``
   (the policy's ``valid_until``), and at most
   ``MEDIA_ACCESS_DECISION_CACHE_TTL`` seconds (300).
4. The key matches exactly: the raw session cookie (None without one), page
   id, video id, rendition name and whether it is a download. Nothing else in
   the request is read by the policy: the user comes from the session, and
   Wagtail's password restrictions from the session's data.

Only decisions the policy marks ``cacheable`` are kept: ALLOWED, on a live
page, with the video found in the page's own rows (never through Wagtail's
reference index, which a background task updates after the fact), and not
resting on the user being able to edit the page (page permissions are not
watched). Denials and 404s always run the whole policy.

What the triggers watch (``watched_tables``), and why each can end an
allowed decision:

- ``wagtailcore_page`` and the table of every concrete page model (with
  the site's video page types): unpublish, delete, a move under a restricted section
  (treebeard rewrites ``path`` with ``QuerySet.update`` and raw SQL, which no
  model signal sees), the main video or the body changing, alias syncing.
- ``wagtailcore_pageviewrestriction`` and its groups table: a restriction
  added on the page or an ancestor, its type or password changed (a new
  password is saved as a new row, see ``signal_handlers``, so the session's
  remembered restriction id stops passing too), a group taken off it.
- ``private_video_access_viewergrant``: a grant deleted, expired early, narrowed.
- the user table and its groups table: deactivation, a password change (the
  session's auth hash stops matching), superuser removed, a user removed
  from a group (``Group.user_set.clear()`` and ``user.groups.remove()`` write
  the through table without a model signal).
- ``auth_group``: a group deleted.
- ``django_session`` (UPDATE and DELETE; a new session cannot take anything
  away): logout, ``cycle_key`` at login, ``clearsessions``' bulk delete, a
  shorter expiry, changed session data. Only the ``db`` and ``cached_db``
  session engines write that table, so with any other engine nothing is
  remembered.
- the video model's table and ``private_video_transcoding_rendition``: a file
  replaced or deleted.

Not watched, deliberately: page permissions and the library's collection
permissions (decisions that used them are not kept), revisions and drafts (only live content is used), the reference
index (not used), Wagtail's site and locale tables (the policy does not read
them). A writer that switches triggers off behind Django's back (PostgreSQL
``session_replication_role = replica``, ``pg_restore --disable-triggers``)
must restart the web workers. Grant expiry and session expiry are times, not
changes: they are the entry's expiry (3). With autocommit, a model's save
commits before its signals run; the triggers have no such gap.
"""

import secrets
import threading
import time
from collections import OrderedDict
from dataclasses import dataclass

from django.apps import apps
from django.conf import settings
from django.db import DatabaseError, connections
from django.utils.functional import LazyObject, empty
from wagtail import hooks

from .conf import setting
from .policy import CHECK_HOOK

TRIGGER_PREFIX = "private_video_access_policy_"
ALL_EVENTS = ("INSERT", "UPDATE", "DELETE")
# Session engines that keep every session in (and delete it from) django_session.
DB_SESSION_ENGINES = {
    "django.contrib.sessions.backends.db",
    "django.contrib.sessions.backends.cached_db",
}
SUPPORTED_VENDORS = {"sqlite", "postgresql"}


@dataclass(frozen=True)
class Remembered:
    """What a later request needs to answer exactly as the first one did."""

    page: object
    video: object
    decision: object
    served: object
    # time.time() after which the entry is not used.
    expires_at: float


class DecisionCache:
    """A bounded LRU of allowed decisions, valid for one policy generation."""

    def __init__(self, max_entries):
        self.max_entries = max_entries
        self.generation = None
        self._entries = OrderedDict()
        self._lock = threading.Lock()

    def get(self, key, generation, now=None):
        now = time.time() if now is None else now
        with self._lock:
            if generation != self.generation:
                self._entries.clear()
                self.generation = generation
                return None
            entry = self._entries.get(key)
            if entry is None:
                return None
            if entry.expires_at <= now:
                del self._entries[key]
                return None
            self._entries.move_to_end(key)
            return entry

    def put(self, key, generation, entry):
        if self.max_entries <= 0:
            return
        with self._lock:
            if generation != self.generation:
                # The generation moved on while the policy ran (or this is
                # the first entry): what the process holds is older than that.
                self._entries.clear()
                self.generation = generation
            self._entries[key] = entry
            self._entries.move_to_end(key)
            while len(self._entries) > self.max_entries:
                self._entries.popitem(last=False)

    def clear(self):
        with self._lock:
            self._entries.clear()
            self.generation = None

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


# --- the generation, read once per request -------------------------------------------

_expected_triggers = {}
# SQLite: the schema version at which this process last counted every trigger
# present. Any DDL (a dropped trigger, a rebuilt table) changes the version,
# so triggers are counted again only then, not on every request.
_verified_schema = {}


def current_generation(request, using="default"):
    """The policy generation, or None when decisions must not be remembered
    (cache off, a trigger missing or disabled, the row or table missing, or
    the session already read: what the policy then sees may be older than
    the generation)."""
    if not enabled(using) or _session_already_read(request) or hooks.get_hooks(CHECK_HOOK):
        # With check_video_access hooks nothing is remembered: what a hook's
        # answer rests on is not watched here.
        return None
    connection = connections[using]
    try:
        expected = _expected_triggers.get(using)
        if expected is None:
            expected = _expected_triggers[using] = len(trigger_names(connection))
        if connection.vendor == "sqlite":
            # The driver's own cursor: this runs on every media request, and
            # Django's wrapper costs more than the query. Any error means
            # "don't remember"; the policy's own queries then go through Django.
            connection.ensure_connection()
            cursor = connection.connection.cursor()
            try:
                row = cursor.execute(_READ_SQLITE).fetchone()
                if row is None or expected == 0:
                    return None
                value, schema = row
                if _verified_schema.get(using) != schema:
                    count = cursor.execute(_COUNT_SQLITE.replace("%s", "?"), [_TRIGGER_PATTERN]).fetchone()
                    if count[0] != expected:
                        return None
                    _verified_schema[using] = schema
                return value
            finally:
                cursor.close()
        with connection.cursor() as cursor:
            cursor.execute(_READ_POSTGRES, [_TRIGGER_PATTERN])
            row = cursor.fetchone()
    except (DatabaseError, connection.Database.Error):
        return None
    if row is None or row[1] != expected or expected == 0:
        return None
    return row[0]


_TRIGGER_PATTERN = TRIGGER_PREFIX.replace("_", "\\_") + "%"
_READ_SQLITE = (
    "SELECT value, (SELECT schema_version FROM pragma_schema_version()) "
    "FROM private_video_access_policygeneration WHERE id = 1"
)
_COUNT_SQLITE = "SELECT count(*) FROM sqlite_master WHERE type = 'trigger' AND name LIKE %s ESCAPE '\\'"
_READ_POSTGRES = (
    "SELECT value, (SELECT count(*) FROM pg_trigger WHERE tgname LIKE %s "
    "AND tgenabled <> 'D') FROM private_video_access_policygeneration WHERE id = 1"
)


def _session_already_read(request):
    session = getattr(request, "session", None)
    if session is not None and getattr(session, "accessed", False):
        return True
    user = request.__dict__.get("user")
    if user is None:
        return False
    return not (isinstance(user, LazyObject) and user._wrapped is empty)


def remember(key, generation, page, video, decision, served):
    """Keep an allowed, cacheable decision, with the earliest time it lapses."""
    if generation is None or not decision.allowed or not decision.cacheable:
        return None
    expires_at = time.time() + max_age()
    if decision.valid_until is not None:
        expires_at = min(expires_at, decision.valid_until.timestamp())
    if key[0] is not None:
        session_expiry = _session_expiry(key[0])
        if session_expiry is not None:
            expires_at = min(expires_at, session_expiry)
    entry = Remembered(page=page, video=video, decision=decision, served=served, expires_at=expires_at)
    cache().put(key, generation, entry)
    return entry


def recall(key, generation):
    if generation is None:
        return None
    return cache().get(key, generation)


def _session_expiry(session_key):
    from django.contrib.sessions.models import Session

    expiry = Session.objects.filter(session_key=session_key).values_list("expire_date", flat=True).first()
    # No such row: the policy saw an anonymous visitor with an empty session,
    # which is what this cookie will keep meaning.
    return expiry.timestamp() if expiry is not None else None


# --- the triggers --------------------------------------------------------------------


def watched_tables():
    """(table, events) for every table an allowed decision can rest on."""
    from django.contrib.auth import get_user_model
    from django.contrib.auth.models import Group
    from django.contrib.sessions.models import Session
    from wagtail.models import Page, PageViewRestriction

    from private_video import get_video_model

    Video = get_video_model()

    from .models import ViewerGrant

    User = get_user_model()
    models = [Page]
    models += [
        model for model in apps.get_models()
        if issubclass(model, Page) and model is not Page and not model._meta.proxy
    ]
    tables = {model._meta.db_table: ALL_EVENTS for model in models}
    tables[PageViewRestriction._meta.db_table] = ALL_EVENTS
    tables[PageViewRestriction.groups.through._meta.db_table] = ALL_EVENTS
    tables[ViewerGrant._meta.db_table] = ALL_EVENTS
    tables[User._meta.db_table] = ALL_EVENTS
    tables[User.groups.through._meta.db_table] = ALL_EVENTS
    tables[Group._meta.db_table] = ALL_EVENTS
    tables[Session._meta.db_table] = ("UPDATE", "DELETE")
    tables[Video._meta.db_table] = ALL_EVENTS
    try:
        tables[apps.get_model("private_video_transcoding", "Rendition")._meta.db_table] = ALL_EVENTS
    except LookupError:
        pass
    return sorted(tables.items())


def _existing_watched_tables(connection):
    with connection.cursor() as cursor:
        existing = set(connection.introspection.table_names(cursor))
    return [(table, events) for table, events in watched_tables() if table in existing]


def trigger_names(connection):
    names = []
    for table, events in _existing_watched_tables(connection):
        if connection.vendor == "sqlite":
            names += [f"{TRIGGER_PREFIX}{table}_{event[0].lower()}" for event in events]
        else:
            names.append(f"{TRIGGER_PREFIX}{table}"[:63])
    return names


_BUMP_SQLITE = "UPDATE private_video_access_policygeneration SET value = random() WHERE id = 1"
_BUMP_FUNCTION_POSTGRES = """
CREATE OR REPLACE FUNCTION private_video_access_policy_bump() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    UPDATE private_video_access_policygeneration
       SET value = floor(random() * 4000000000000000000)::bigint WHERE id = 1;
    RETURN NULL;
END
$$
"""


def install_triggers(using="default"):
    """Create (again) every trigger and start a new generation. Idempotent."""
    connection = connections[using]
    if connection.vendor not in SUPPORTED_VENDORS:
        return []
    qn = connection.ops.quote_name
    installed = []
    with connection.cursor() as cursor:
        if "private_video_access_policygeneration" not in connection.introspection.table_names(cursor):
            # migrate stopped before media_access's own tables.
            return []
        if connection.vendor == "postgresql":
            cursor.execute(_BUMP_FUNCTION_POSTGRES)
        for table, events in _existing_watched_tables(connection):
            if connection.vendor == "sqlite":
                for event in events:
                    name = f"{TRIGGER_PREFIX}{table}_{event[0].lower()}"
                    cursor.execute(
                        f"CREATE TRIGGER IF NOT EXISTS {qn(name)} AFTER {event} ON {qn(table)} "
                        f"BEGIN {_BUMP_SQLITE}; END"
                    )
                    installed.append(name)
            else:
                name = f"{TRIGGER_PREFIX}{table}"[:63]
                pg_events = " OR ".join((*events, "TRUNCATE"))
                cursor.execute(f"DROP TRIGGER IF EXISTS {qn(name)} ON {qn(table)}")
                cursor.execute(
                    f"CREATE TRIGGER {qn(name)} AFTER {pg_events} ON {qn(table)} "
                    "FOR EACH STATEMENT EXECUTE FUNCTION private_video_access_policy_bump()"
                )
                installed.append(name)
        bump(cursor=cursor)
    _expected_triggers.pop(using, None)
    _verified_schema.pop(using, None)
    return installed


def bump(using="default", cursor=None):
    """Start a new generation by hand (after a change the triggers cannot see)."""
    if cursor is None:
        with connections[using].cursor() as cursor:
            return bump(using, cursor)
    cursor.execute(
        "UPDATE private_video_access_policygeneration SET value = %s WHERE id = 1", [secrets.randbits(62)]
    )
    if cursor.rowcount == 0:
        cursor.execute(
            "INSERT INTO private_video_access_policygeneration (id, value) VALUES (1, %s)", [secrets.randbits(62)]
        )


def install_after_migrate(sender, using="default", **kwargs):
    install_triggers(using)
