"""Remembered media decisions (media_access/decisions.py).

Every way an allowed decision can be taken back is tried through the real
stack: warm the worker with an allowed range request, change one thing as a
user or a bulk path would, and the very next request must be refused with no
file bytes and no X-Accel-Redirect. A control test shows the worker really
answers from memory (so the others test the invalidation, not a cold cache).
Unit tests cover the cache's bounds, expiry and keys.
"""

import threading
import time
from datetime import timedelta
from pathlib import Path
from types import SimpleNamespace

import pytest
import requests
from django.conf import settings
from django.contrib.auth import get_user_model, logout
from django.contrib.auth.models import Group
from django.contrib.sessions.backends.db import SessionStore
from django.contrib.sessions.models import Session
from django.db import connection
from django.test import Client, RequestFactory
from django.utils import timezone
from wagtail.models import Page, PageViewRestriction

from cms.models import IndexPage, VideoPage
from private_video.models import Video
from media_access import decisions
from media_access.models import ViewerGrant
from media_access.policy import Decision, Outcome

from .conftest import _start_stack
from .driver_statements import driver_statements
from .helpers import home_page, make_user, make_video, make_video_page, stack_session



# make test-postgres runs this whole module on PostgreSQL too.
pytestmark = pytest.mark.postgres


def through_the_stack(test):
    """gunicorn must see what the test commits."""
    test = pytest.mark.django_db(transaction=True, serialized_rollback=True)(test)
    return pytest.mark.integration(test)


FORBIDDEN = b"You do not have access to this video.\n"
NOT_FOUND = b"Not found.\n"


@pytest.fixture(scope="module")
def one_worker(tmp_path_factory, stack_database_url, static_root):
    """A stack with a single gunicorn worker: one warm request warms the only cache."""
    stack = _start_stack(
        tmp_path_factory, stack_database_url, static_root, extra_env={"WEB_CONCURRENCY": "1"}
    )
    yield stack
    stack.stop()


@pytest.fixture
def world(sample_video):
    viewers = Group.objects.create(name="Viewers")
    alice = make_user("alice", groups=[viewers])
    bob = make_user("bob")
    carol = make_user("carol")
    video = make_video(sample_video, title="Launch")
    other_video = Video.objects.create(title="Elsewhere", file=video.file.name, original_filename="other.mp4")
    page = make_video_page(video, title="Granted")
    group_grant = ViewerGrant.objects.create(page=page, group=viewers)
    # A second grant keeps the page restricted when the first goes: a page
    # without grants is open to everyone who passes page privacy.
    ViewerGrant.objects.create(page=page, user=carol)
    open_page = make_video_page(video, title="Open")
    data = Path(settings.PRIVATE_MEDIA_ROOT, video.file.name).read_bytes()
    return SimpleNamespace(
        viewers=viewers, alice=alice, bob=bob, group_grant=group_grant, video=video, other_video=other_video,
        page=page, open_page=open_page, data=data,
    )


@pytest.fixture
def light():
    """The same shapes as ``world`` without files or publishing, for tests that stay in the database."""
    viewers = Group.objects.create(name="Viewers")
    alice = make_user("alice", groups=[viewers])
    video = Video.objects.create(title="Launch", file="videos/none/launch.mp4")
    other_video = Video.objects.create(title="Elsewhere", file="videos/none/elsewhere.mp4")
    page = home_page().add_child(instance=VideoPage(title="Granted", video=video))
    open_page = home_page().add_child(instance=VideoPage(title="Open", video=video))
    ViewerGrant.objects.create(page=page, group=viewers)
    return SimpleNamespace(viewers=viewers, alice=alice, video=video, other_video=other_video,
                           page=page, open_page=open_page)


def path_for(page, video, rendition="original", download=False):
    return f"/watch/{page.pk}/{video.pk}/{rendition}/" + ("download/" if download else "")


def warm(stack, session, path, data, times=3):
    for _ in range(times):
        response = session.get(stack.url(path), headers={"Range": "bytes=0-99"}, allow_redirects=False)
        assert response.status_code == 206
        assert response.content == data[:100]


def assert_refused(response, status, data):
    assert response.status_code == status
    assert "X-Accel-Redirect" not in response.headers
    assert "Content-Range" not in response.headers
    assert response.headers["Cache-Control"] == "private, no-store"
    assert data[:16] not in response.content
    assert len(response.content) < 200
    if status == 403:
        assert response.content == FORBIDDEN
    elif status == 404:
        assert response.content == NOT_FOUND
    elif status == 302:
        assert response.headers["Location"].startswith("/login/?next=")


def next_request(stack, session, path):
    return session.get(stack.url(path), headers={"Range": "bytes=0-99"}, allow_redirects=False)


GROUPS_TRIGGER = "private_video_access_policy_auth_user_groups"


def swap_group_trigger_for_a_decoy():
    """Drop the trigger on the user-group table and put one of the same name
    on an unwatched table, so the count stays right."""
    with connection.cursor() as cursor:
        if connection.vendor == "sqlite":
            name = f"{GROUPS_TRIGGER}_d"
            cursor.execute(f'DROP TRIGGER "{name}"')
            cursor.execute(
                f'CREATE TRIGGER "{name}" AFTER DELETE ON private_video_access_playbacklogentry BEGIN SELECT 1; END'
            )
        else:
            cursor.execute(f'DROP TRIGGER "{GROUPS_TRIGGER}" ON auth_user_groups')
            cursor.execute(
                f'CREATE TRIGGER "{GROUPS_TRIGGER}" AFTER DELETE ON private_video_access_playbacklogentry '
                "FOR EACH STATEMENT EXECUTE FUNCTION private_video_access_policy_bump()"
            )


def remove_decoy():
    with connection.cursor() as cursor:
        if connection.vendor == "sqlite":
            cursor.execute(f'DROP TRIGGER "{GROUPS_TRIGGER}_d"')
        else:
            cursor.execute(f'DROP TRIGGER "{GROUPS_TRIGGER}" ON private_video_access_playbacklogentry')


def session_key(session):
    return session.cookies["sessionid"]


# --- the control: the worker does answer from memory ----------------------------------


@through_the_stack
def test_worker_answers_from_memory_until_the_triggers_say_otherwise(one_worker, world):
    """Swap one trigger for a decoy (same count, wrong table): the change it
    would have reported is then invisible, and the warm worker still says 206.
    Put the real trigger back and the next request is refused."""
    session = stack_session(world.alice)
    path = path_for(world.page, world.video)
    warm(one_worker, session, path, world.data)
    swap_group_trigger_for_a_decoy()
    try:
        world.alice.groups.remove(world.viewers)
        remembered = next_request(one_worker, session, path)
        assert remembered.status_code == 206 and remembered.content == world.data[:100]
    finally:
        remove_decoy()
        decisions.install_triggers()
    assert_refused(next_request(one_worker, session, path), 403, world.data)


def remembered(page, video, cookie=None):
    """Run recall + remember for an allowed, cacheable decision as a media
    request would (the scopes read first); the entry, or None if not kept."""
    request = RequestFactory().get("/", HTTP_COOKIE=f"sessionid={cookie}" if cookie else "")
    request.session = SessionStore(session_key=cookie)
    snapshot = decisions.current_generation(request)
    if snapshot is None:
        return None
    key = decisions.key_for(request, page.pk, video.pk, "original", False)
    assert decisions.recall(key, snapshot) is None
    return decisions.remember(key, snapshot, page, video, Decision(Outcome.ALLOWED, "open", cacheable=True), None)


def recalled(page, video, cookie=None):
    request = RequestFactory().get("/", HTTP_COOKIE=f"sessionid={cookie}" if cookie else "")
    request.session = SessionStore(session_key=cookie)
    snapshot = decisions.current_generation(request)
    if snapshot is None:
        return None
    return decisions.recall(decisions.key_for(request, page.pk, video.pk, "original", False), snapshot)


@pytest.mark.django_db
def test_a_missing_or_disabled_trigger_turns_remembering_off(light):
    """SQLite notices on the next read (the schema version changed);
    PostgreSQL when the process counts the triggers again
    (``TRIGGER_RECHECK_SECONDS``, forced here), never per request."""
    decisions.cache().clear()
    assert remembered(light.open_page, light.video) is not None
    assert recalled(light.open_page, light.video) is not None
    with connection.cursor() as cursor:
        if connection.vendor == "sqlite":
            cursor.execute(f'DROP TRIGGER "{GROUPS_TRIGGER}_d"')
        else:
            # The fixture's deferred foreign key checks must run before an ALTER TABLE.
            cursor.execute("SET CONSTRAINTS ALL IMMEDIATE")
            cursor.execute(f'ALTER TABLE auth_user_groups DISABLE TRIGGER "{GROUPS_TRIGGER}"')
    try:
        if connection.vendor == "postgresql":
            decisions.recheck_triggers()
        assert recalled(light.open_page, light.video) is None
        assert remembered(light.open_page, light.video) is None
    finally:
        decisions.install_triggers()
    assert remembered(light.open_page, light.video) is not None
    decisions.cache().clear()


# --- each way to take a decision back, through nginx + one gunicorn worker ------------


def _remove_from_group(w):
    w.alice.groups.remove(w.viewers)


def _clear_group(w):
    w.viewers.user_set.clear()


def _delete_group(w):
    w.viewers.delete()


def _delete_grant(w):
    w.group_grant.delete()


def _expire_grant(w):
    ViewerGrant.objects.filter(pk=w.group_grant.pk).update(expires_at=timezone.now() - timedelta(seconds=1))


def _deactivate_user(w):
    w.alice.is_active = False
    w.alice.save()


def _deactivate_user_in_bulk(w):
    get_user_model().objects.filter(pk=w.alice.pk).update(is_active=False)


def _change_password(w):
    w.alice.set_password("another horse battery")
    w.alice.save()


def _unpublish(w):
    w.page.unpublish()


def _unpublish_in_bulk(w):
    Page.objects.filter(pk=w.page.pk).update(live=False)


def _delete_page(w):
    w.page.delete()


def _restrict_to_another_group(w):
    restriction = PageViewRestriction.objects.create(page=w.page, restriction_type=PageViewRestriction.GROUPS)
    restriction.groups.add(Group.objects.create(name="Staff"))


def _add_password_restriction(w):
    PageViewRestriction.objects.create(
        page=w.page, restriction_type=PageViewRestriction.PASSWORD, password="swordfish"
    )


def _restrict_an_ancestor(w):
    restriction = PageViewRestriction.objects.create(
        page=home_page(), restriction_type=PageViewRestriction.GROUPS
    )
    restriction.groups.add(Group.objects.create(name="Staff"))


def _move_under_a_restricted_section(w):
    section = home_page().add_child(instance=IndexPage(title="Staff only", slug="staff-only"))
    restriction = PageViewRestriction.objects.create(page=section, restriction_type=PageViewRestriction.GROUPS)
    restriction.groups.add(Group.objects.create(name="Staff"))
    Page.objects.get(pk=w.page.pk).move(section, pos="last-child")


def _take_the_video_off_the_page(w):
    page = w.page.specific
    page.video = w.other_video
    page.save_revision().publish()


def _delete_the_video(w):
    w.video.delete()


def _logout(w):
    request = RequestFactory().get("/")
    request.session = SessionStore(session_key=w.session_key)
    request.user = w.alice
    logout(request)


def _clearsessions_style_delete(w):
    Session.objects.filter(session_key=w.session_key).delete()


REVOCATIONS = [
    (_remove_from_group, 403),
    (_clear_group, 403),
    (_delete_group, 403),
    (_delete_grant, 403),
    (_expire_grant, 403),
    (_deactivate_user, 302),
    (_deactivate_user_in_bulk, 302),
    (_change_password, 302),
    (_unpublish, 404),
    (_unpublish_in_bulk, 404),
    (_delete_page, 404),
    (_restrict_to_another_group, 403),
    (_add_password_restriction, 403),
    (_restrict_an_ancestor, 403),
    (_move_under_a_restricted_section, 403),
    (_take_the_video_off_the_page, 404),
    (_delete_the_video, 404),
    (_logout, 302),
    (_clearsessions_style_delete, 302),
]


@pytest.mark.parametrize("change, status", REVOCATIONS, ids=[c.__name__.strip("_") for c, _ in REVOCATIONS])
@through_the_stack
def test_the_next_request_after_a_change_is_refused(one_worker, world, change, status):
    session = stack_session(world.alice)
    path = path_for(world.page, world.video)
    warm(one_worker, session, path, world.data)
    world.session_key = session_key(session)
    change(world)
    assert_refused(next_request(one_worker, session, path), status, world.data)


@through_the_stack
def test_a_login_restriction_added_to_an_open_page_stops_anonymous_viewers(one_worker, world):
    anonymous = requests.Session()
    path = path_for(world.open_page, world.video)
    warm(one_worker, anonymous, path, world.data)
    PageViewRestriction.objects.create(page=world.open_page, restriction_type=PageViewRestriction.LOGIN)
    assert_refused(next_request(one_worker, anonymous, path), 302, world.data)


@through_the_stack
def test_changing_a_restriction_from_login_to_password(one_worker, world):
    restriction = PageViewRestriction.objects.create(
        page=world.open_page, restriction_type=PageViewRestriction.LOGIN
    )
    session = stack_session(world.bob)
    path = path_for(world.open_page, world.video)
    warm(one_worker, session, path, world.data)
    restriction.restriction_type = PageViewRestriction.PASSWORD
    restriction.password = "swordfish"
    restriction.save()
    assert_refused(next_request(one_worker, session, path), 403, world.data)


@through_the_stack
def test_a_grant_that_runs_out_ends_the_remembered_decision(one_worker, world):
    ViewerGrant.objects.create(page=world.open_page, user=world.bob, expires_at=timezone.now() + timedelta(seconds=2))
    session = stack_session(world.bob)
    path = path_for(world.open_page, world.video)
    warm(one_worker, session, path, world.data)
    time.sleep(max(0.0, (ViewerGrant.objects.get(user=world.bob).expires_at - timezone.now()).total_seconds()) + 0.1)
    assert_refused(next_request(one_worker, session, path), 403, world.data)


@through_the_stack
def test_a_session_that_runs_out_ends_the_remembered_decision(one_worker, world):
    store = SessionStore()
    store["_auth_user_id"] = str(world.alice.pk)
    store["_auth_user_backend"] = "django.contrib.auth.backends.ModelBackend"
    store["_auth_user_hash"] = world.alice.get_session_auth_hash()
    store.set_expiry(2)
    store.create()
    session = requests.Session()
    session.cookies.set("sessionid", store.session_key)
    path = path_for(world.page, world.video)
    warm(one_worker, session, path, world.data)
    time.sleep(2.2)
    assert_refused(next_request(one_worker, session, path), 302, world.data)


@through_the_stack
def test_a_download_permission_taken_back(one_worker, world):
    grant = ViewerGrant.objects.create(page=world.page, user=world.bob, can_download=True)
    session = stack_session(world.bob)
    path = path_for(world.page, world.video, download=True)
    warm(one_worker, session, path, world.data)
    ViewerGrant.objects.filter(pk=grant.pk).update(can_download=False)
    assert_refused(next_request(one_worker, session, path), 403, world.data)
    # Watching is still allowed: only the download flag changed.
    warm(one_worker, session, path_for(world.page, world.video), world.data, times=1)


@through_the_stack
def test_a_deleted_rendition_is_not_served_from_memory(one_worker, world):
    from django.core.files.base import ContentFile

    from transcoding.models import Rendition

    rendition = Rendition(
        video=world.video, name="mp4-360p", kind=Rendition.Kind.MP4, content_type="video/mp4", size=5000
    )
    rendition.file.save("clip-360p.mp4", ContentFile(world.data[:5000]), save=False)
    rendition.save()
    session = stack_session(world.alice)
    path = path_for(world.page, world.video, "mp4-360p")
    warm(one_worker, session, path, world.data)
    rendition.delete()
    assert_refused(next_request(one_worker, session, path), 404, world.data)


@through_the_stack
def test_login_through_the_form_rotates_the_session_key(one_worker, world):
    """Signing in replaces the session key and deletes the old session, so
    nothing remembered for the visitor's old cookie applies to the new one."""
    store = SessionStore()
    store["seen"] = True
    store.create()
    visitor = requests.Session()
    visitor.cookies.set("sessionid", store.session_key)
    warm(one_worker, visitor, path_for(world.open_page, world.video), world.data)
    old_key = store.session_key
    login = one_worker.url("/login/")
    assert visitor.get(login).status_code == 200
    response = visitor.post(
        login,
        data={"username": "bob", "password": "correct horse battery",
              "csrfmiddlewaretoken": visitor.cookies["csrftoken"]},
        headers={"Referer": login},
        allow_redirects=False,
    )
    assert response.status_code == 302
    new_key = response.cookies["sessionid"]
    assert new_key != old_key
    assert not Session.objects.filter(session_key=old_key).exists()
    signed_in = requests.Session()
    signed_in.cookies.set("sessionid", new_key)
    # bob holds no grant on the granted page; the open page still plays.
    assert_refused(next_request(one_worker, signed_in, path_for(world.page, world.video)), 403, world.data)
    warm(one_worker, signed_in, path_for(world.open_page, world.video), world.data, times=1)


@through_the_stack
def test_other_sessions_and_anonymous_never_hit_anothers_entry(one_worker, world):
    warm(one_worker, stack_session(world.alice), path_for(world.page, world.video), world.data)
    assert_refused(next_request(one_worker, stack_session(world.bob), path_for(world.page, world.video)), 403, world.data)
    assert_refused(next_request(one_worker, requests.Session(), path_for(world.page, world.video)), 302, world.data)
    # A cookie for no session is anonymous, whatever it spells.
    stranger = requests.Session()
    stranger.cookies.set("sessionid", "x" * 32)
    assert_refused(next_request(one_worker, stranger, path_for(world.page, world.video)), 302, world.data)


# --- two workers, both warmed, both refusing -------------------------------------------

TAG_HEADER = "X-Test-Tag"


@pytest.fixture(scope="module")
def two_workers(tmp_path_factory, stack_database_url, static_root):
    """Two gunicorn workers whose access log names, per request, the worker's
    pid, the test's tag for the request and the status: which worker answered
    what is read from gunicorn itself, not inferred."""
    stack = _start_stack(
        tmp_path_factory, stack_database_url, static_root, extra_env={
            "WEB_CONCURRENCY": "2",
            "GUNICORN_CMD_ARGS": "--access-logformat '%(p)s %({x-test-tag}i)s %(s)s'",
        },
    )
    yield stack
    stack.stop()


def answered_by(stack, tags, timeout=10):
    """{tag: (worker pid, status)} from gunicorn's access log (a line is written
    just after the response, so wait for all of them)."""
    wanted = set(tags)
    deadline = time.monotonic() + timeout
    while True:
        found = {}
        for line in stack.log_text("gunicorn-access").splitlines():
            pid, tag, status = line.split()
            if tag in wanted:
                found[tag] = (pid, int(status))
        if len(found) == len(wanted) or time.monotonic() > deadline:
            assert set(found) == wanted, f"no access log line for {sorted(wanted - set(found))}"
            return found
        time.sleep(0.05)


def concurrent_requests(stack, key, path, label, count=4):
    """``count`` requests at once (one connection each), so both workers are
    kept busy; returns [(tag, response)]."""
    results = {}

    def one(tag):
        own = requests.Session()
        own.cookies.set("sessionid", key)
        results[tag] = own.get(stack.url(path), headers={"Range": "bytes=0-99", TAG_HEADER: tag},
                               allow_redirects=False)

    tags = [f"{label}-{n}-{time.monotonic_ns()}" for n in range(count)]
    threads = [threading.Thread(target=one, args=(tag,)) for tag in tags]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    return [(tag, results[tag]) for tag in tags]


@through_the_stack
def test_revocation_reaches_every_worker(two_workers, world):
    """Both workers hold the allowed decision (each answered it more than once),
    then, after the group is taken away, both workers refuse."""
    stack = two_workers
    key = session_key(stack_session(world.alice))
    path = path_for(world.page, world.video)

    allowed_per_worker = {}
    for _ in range(50):
        batch = concurrent_requests(stack, key, path, "warm")
        for tag, response in batch:
            assert response.status_code == 206 and response.content == world.data[:100]
        for pid, status in answered_by(stack, [tag for tag, _ in batch]).values():
            assert status == 200  # gunicorn's answer: empty, with X-Accel-Redirect; nginx makes the 206
            allowed_per_worker[pid] = allowed_per_worker.get(pid, 0) + 1
        if len(allowed_per_worker) == 2 and min(allowed_per_worker.values()) >= 3:
            break
    # Every worker answered at least twice from a remembered decision.
    assert len(allowed_per_worker) == 2 and min(allowed_per_worker.values()) >= 3, allowed_per_worker

    world.alice.groups.remove(world.viewers)

    refused_per_worker = {}
    for _ in range(50):
        batch = concurrent_requests(stack, key, path, "revoked")
        for tag, response in batch:
            assert_refused(response, 403, world.data)
        for pid, status in answered_by(stack, [tag for tag, _ in batch]).values():
            assert status == 403
            refused_per_worker[pid] = refused_per_worker.get(pid, 0) + 1
        if set(refused_per_worker) == set(allowed_per_worker):
            break
    # The same two (warm) workers refused: neither was restarted with an empty cache.
    assert set(refused_per_worker) == set(allowed_per_worker), (allowed_per_worker, refused_per_worker)


# --- the cache itself --------------------------------------------------------------------


def _entry(expires_in=60):
    decision = Decision(Outcome.ALLOWED, "open", cacheable=True)
    return decisions.Remembered(page=None, video=None, decision=decision, served=None,
                                expires_at=time.time() + expires_in)


def test_cache_is_bounded_least_recently_used_first():
    cache = decisions.DecisionCache(max_entries=3)
    for n in range(3):
        cache.put(("s", n, 1, "original", False), _entry())
    assert cache.get(("s", 0, 1, "original", False)) is not None  # now the most recent
    cache.put(("s", 3, 1, "original", False), _entry())
    assert len(cache) == 3
    assert cache.get(("s", 1, 1, "original", False)) is None
    assert cache.get(("s", 0, 1, "original", False)) is not None
    assert cache.get(("s", 3, 1, "original", False)) is not None


def test_cache_entries_expire():
    cache = decisions.DecisionCache(max_entries=10)
    cache.put("k", _entry(expires_in=-0.001))
    assert cache.get("k") is None
    cache.put("k", _entry(expires_in=5))
    assert cache.get("k", now=time.time() + 6) is None
    assert len(cache) == 0


@pytest.mark.django_db
def test_a_changed_scope_ends_only_the_entries_resting_on_it(light):
    """One page's change ends that page's entries, not another page's."""
    decisions.cache().clear()
    assert remembered(light.page, light.video) is not None
    assert remembered(light.open_page, light.video) is not None
    Page.objects.filter(pk=light.page.pk).update(title="Renamed")
    assert recalled(light.page, light.video) is None
    assert recalled(light.open_page, light.video) is not None
    decisions.cache().clear()


def test_keys_separate_sessions_renditions_and_downloads():
    factory = RequestFactory()
    alice = factory.get("/", HTTP_COOKIE="sessionid=aaaa")
    bob = factory.get("/", HTTP_COOKIE="sessionid=bbbb")
    anonymous = factory.get("/")
    keys = {
        decisions.key_for(alice, 1, 2, "original", False),
        decisions.key_for(alice, 1, 2, "mp4-360p", False),
        decisions.key_for(alice, 1, 2, "original", True),
        decisions.key_for(alice, 1, 3, "original", False),
        decisions.key_for(alice, 4, 2, "original", False),
        decisions.key_for(bob, 1, 2, "original", False),
        decisions.key_for(anonymous, 1, 2, "original", False),
    }
    assert len(keys) == 7
    assert decisions.key_for(anonymous, 1, 2, "original", False)[0] is None
    cache = decisions.DecisionCache(max_entries=10)
    cache.put(decisions.key_for(alice, 1, 2, "original", False), _entry())
    for key in keys - {decisions.key_for(alice, 1, 2, "original", False)}:
        assert cache.get(key) is None


@pytest.mark.django_db
def test_only_cacheable_allowed_decisions_are_kept(light):
    def fresh():
        """A new request each time: one whose session was read remembers nothing."""
        request = RequestFactory().get("/", HTTP_COOKIE="sessionid=zzzz")
        request.session = SessionStore(session_key="zzzz")
        return request

    key = decisions.key_for(fresh(), light.page.pk, light.video.pk, "original", False)
    snapshot = decisions.current_generation(fresh())
    assert decisions.recall(key, snapshot) is None
    for decision in (
        Decision(Outcome.FORBIDDEN, "no_grant"),
        Decision(Outcome.ALLOWED, "editor"),  # rests on page permissions
        Decision(Outcome.ALLOWED, "open", cacheable=False),
    ):
        assert decisions.remember(key, snapshot, light.page, light.video, decision, None) is None
        assert decisions.recall(key, decisions.current_generation(fresh())) is None
    soon = timezone.now() + timedelta(seconds=30)
    snapshot = decisions.current_generation(fresh())
    assert decisions.recall(key, snapshot) is None
    kept = decisions.remember(
        key, snapshot, light.page, light.video,
        Decision(Outcome.ALLOWED, "grant", cacheable=True, valid_until=soon), None,
    )
    assert kept is not None and kept.expires_at <= soon.timestamp()
    assert decisions.recall(key, decisions.current_generation(fresh())) is kept
    decisions.cache().clear()


@pytest.mark.django_db
def test_a_decision_made_without_reading_the_scopes_first_is_not_kept(light):
    """remember() without recall(): nothing was read before the policy ran."""
    request = RequestFactory().get("/")
    key = decisions.key_for(request, light.open_page.pk, light.video.pk, "original", False)
    snapshot = decisions.current_generation(request)
    decision = Decision(Outcome.ALLOWED, "open", cacheable=True)
    assert decisions.remember(key, snapshot, light.open_page, light.video, decision, None) is None


@pytest.mark.django_db
def test_session_already_read_means_nothing_is_remembered():
    request = RequestFactory().get("/")
    request.session = SessionStore()
    request.session.get("anything")
    assert decisions.current_generation(request) is None


def _restriction(w):
    return PageViewRestriction.objects.create(page=w.page, restriction_type=PageViewRestriction.GROUPS)


def _session(w):
    SessionStore().create()


BULK_CHANGES = {
    # name: (set-up, change that bypasses model signals)
    "page update()": (None, lambda w, _: Page.objects.filter(pk=w.page.pk).update(live=False)),
    "videopage update()": (None, lambda w, _: type(w.page).objects.filter(pk=w.page.pk).update(video=w.other_video)),
    "group user_set.clear()": (None, lambda w, _: w.viewers.user_set.clear()),
    "session bulk delete": (_session, lambda w, _: Session.objects.all().delete()),
    "grant update()": (None, lambda w, _: ViewerGrant.objects.update(can_download=True)),
    "user update()": (None, lambda w, _: get_user_model().objects.update(is_active=False)),
    "restriction groups.add()": (_restriction, lambda w, r: r.groups.add(w.viewers)),
    "restriction update()": (_restriction, lambda w, r: PageViewRestriction.objects.update(password="x")),
    "treebeard move": (None, lambda w, _: Page.objects.get(pk=w.page.pk).move(
        Page.objects.get(pk=w.open_page.pk), pos="last-child")),
}


def signed_in_session(user):
    store = SessionStore()
    store["_auth_user_id"] = str(user.pk)
    store["_auth_user_backend"] = "django.contrib.auth.backends.ModelBackend"
    store["_auth_user_hash"] = user.get_session_auth_hash()
    store.create()
    return store.session_key


@pytest.mark.django_db
@pytest.mark.parametrize("name", list(BULK_CHANGES))
def test_paths_that_skip_model_signals_still_end_the_entry(light, name):
    """Each change bypasses model signals; the triggers still give a scope
    the entry rests on (alice's session, alice, the page) a new value."""
    decisions.cache().clear()
    set_up, change = BULK_CHANGES[name]
    made = set_up(light) if set_up else None
    cookie = signed_in_session(light.alice)
    assert remembered(light.page, light.video, cookie) is not None
    assert recalled(light.page, light.video, cookie) is not None
    change(light, made)
    assert recalled(light.page, light.video, cookie) is None
    decisions.cache().clear()


# --- scoped: what leaves an entry alone, what ends it ------------------------------------


@pytest.mark.django_db
def test_a_restriction_on_an_aliased_page_ends_the_aliases_entries(light):
    """Wagtail checks an alias against its source page's restrictions: the
    restriction's trigger reaches the alias (and its descendants)."""
    decisions.cache().clear()
    alias = light.open_page.create_alias(parent=home_page(), update_slug="open-alias")
    assert remembered(alias, light.video) is not None
    assert recalled(alias, light.video) is not None
    PageViewRestriction.objects.create(page=light.open_page, restriction_type=PageViewRestriction.LOGIN)
    assert recalled(alias, light.video) is None
    decisions.cache().clear()


@pytest.mark.django_db
def test_a_section_becoming_an_alias_ends_the_entries_below_it(light):
    """Restrictions then come from the alias's source: every page below is
    touched. Any other change to the section (a new title) is not."""
    decisions.cache().clear()
    section = home_page().add_child(instance=IndexPage(title="Section", slug="section"))
    below = section.add_child(instance=VideoPage(title="Below", video=light.video))
    assert remembered(below, light.video) is not None
    Page.objects.filter(pk=section.pk).update(title="Renamed")
    assert recalled(below, light.video) is not None
    Page.objects.filter(pk=section.pk).update(alias_of=light.open_page)
    assert recalled(below, light.video) is None
    decisions.cache().clear()


@pytest.mark.django_db
def test_pruning_scope_rows_never_makes_a_stale_entry_look_valid(light):
    """The proof in decisions' docstring, step by step."""
    from media_access.models import DecisionScope

    decisions.cache().clear()
    scope = decisions.page_scope(light.open_page.pk)
    # As if pruned long ago: the entry rests on a missing row (None).
    DecisionScope.objects.filter(key=scope).delete()
    entry = remembered(light.open_page, light.video)
    assert (scope, None) in entry.scopes
    assert recalled(light.open_page, light.video) is entry
    Page.objects.filter(pk=light.open_page.pk).update(live=False)
    assert recalled(light.open_page, light.video) is None
    # Pruning now keeps the row the change wrote: it is younger than any entry lives.
    assert decisions.prune_after() > decisions.max_age()
    decisions.prune_scopes()
    assert DecisionScope.objects.filter(key=scope).exists()
    assert recalled(light.open_page, light.video) is None
    # The row goes only once the entry that read None has expired anyway.
    later = time.time() + decisions.prune_after() + 10
    assert entry.expires_at < later
    decisions.prune_scopes(now=later)
    assert not DecisionScope.objects.filter(key=scope).exists()
    # An entry that read a value, whose row is then pruned, reads None: a miss.
    Page.objects.filter(pk=light.open_page.pk).update(live=True)
    decisions.cache().clear()
    entry = remembered(light.open_page, light.video)
    assert dict(entry.scopes)[scope] is not None
    DecisionScope.objects.filter(key=scope).update(touched=0)
    assert decisions.prune_scopes() >= 1
    assert recalled(light.open_page, light.video) is None
    decisions.cache().clear()


@pytest.fixture
def watching(client, sample_video):
    """A viewer (through a group grant) with a remembered decision for one page."""
    decisions.cache().clear()
    viewers = Group.objects.create(name="Viewers")
    viewer = make_user("viewer", groups=[viewers])
    other = make_user("other", groups=[viewers])
    video = make_video(sample_video, title="Watched")
    page = make_video_page(video, title="Watched page")
    elsewhere = make_video_page(video, title="Elsewhere")
    ViewerGrant.objects.create(page=page, group=viewers)
    client.force_login(viewer)
    url = path_for(page, video)
    first = client.get(url)
    assert first.status_code == 200 and first.has_header("X-Accel-Redirect")
    yield SimpleNamespace(client=client, viewer=viewer, other=other, video=video, page=page,
                          elsewhere=elsewhere, url=url, accel=first["X-Accel-Redirect"])
    decisions.cache().clear()


def statements_of(client, url):
    """(response, every SQL statement it ran). The scope read goes through
    the driver's own cursor, so the driver's statements are counted."""
    with driver_statements(connection) as statements:
        response = client.get(url)
    return response, statements


def assert_answered_from_memory(w):
    response, statements = statements_of(w.client, w.url)
    assert response.status_code == 200 and response["X-Accel-Redirect"] == w.accel
    assert len(statements) == 1 and "private_video_access_decisionscope" in statements[0], statements


def assert_policy_ran(w):
    response, statements = statements_of(w.client, w.url)
    assert response.status_code == 200 and response["X-Accel-Redirect"] == w.accel
    assert len(statements) > 3, statements


@pytest.mark.django_db
def test_other_viewers_logins_logouts_sessions_and_publishes_leave_the_entry_alone(watching):
    w = watching
    assert_answered_from_memory(w)
    another = Client()
    another.force_login(w.other)  # a login: a new session row, the other user's last_login
    assert_answered_from_memory(w)
    another.logout()
    assert_answered_from_memory(w)
    w.elsewhere.save_revision().publish()  # a publish of an unrelated page
    assert_answered_from_memory(w)
    store = SessionStore()  # another session created and saved
    store["seen"] = 1
    store.create()
    store["seen"] = 2
    store.save()
    assert_answered_from_memory(w)
    # A grant on another page, another user's group change.
    ViewerGrant.objects.create(page=w.elsewhere, user=w.other)
    w.other.groups.clear()
    assert_answered_from_memory(w)


@pytest.mark.django_db
def test_the_same_events_for_this_viewer_and_page_end_the_entry(watching):
    w = watching
    assert_answered_from_memory(w)
    session = w.client.session  # this viewer's session saved
    session["seen"] = 1
    session.save()
    assert_policy_ran(w)
    assert_answered_from_memory(w)
    Client().force_login(w.viewer)  # this user signs in elsewhere (last_login changes)
    assert_policy_ran(w)
    assert_answered_from_memory(w)
    w.page.save_revision().publish()  # this page published again
    assert_policy_ran(w)
    assert_answered_from_memory(w)
    Page.objects.filter(pk=w.page.pk).update(live=False)  # this page unpublished
    response, _ = statements_of(w.client, w.url)
    assert response.status_code == 404 and not response.has_header("X-Accel-Redirect")
    Page.objects.filter(pk=w.page.pk).update(live=True)
    assert_policy_ran(w)
    w.client.logout()  # this viewer signs out
    response, _ = statements_of(w.client, w.url)
    assert response.status_code == 302 and not response.has_header("X-Accel-Redirect")
