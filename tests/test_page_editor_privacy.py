"""Page editors and the privacy of videos, through the real stack (nginx in front of gunicorn).

- Choosing a video on a page needs "choose" permission on its collection, checked
  when the page is saved, whatever the POST says (main field and StreamField blocks,
  create and edit, draft and publish); a video already on the page may be kept.
- A page editor previews a draft's video only with choose rights (or when the live
  page has it); downloading an original needs a grant that allows it or change
  permission on the video, never page-edit rights alone.
- A changed page password locks out sessions that passed the old one, on the next
  request, for the media and the page alike.
- A page past its ``expire_at`` stops serving at once, also from a remembered decision.
"""

import re
import time
from datetime import timedelta
from pathlib import Path
from types import SimpleNamespace

import pytest
import requests
from django.conf import settings
from django.contrib.auth.models import Group, Permission
from django.utils import timezone
from wagtail.models import (
    Collection,
    GroupPagePermission,
    Page,
    PageViewRestriction,
)
from wagtail.test.utils.form_data import inline_formset, nested_form_data, rich_text, streamfield

from cms.models import VideoPage
from media_access.models import ViewerGrant

from .conftest import _start_stack
from .helpers import collection_group, home_page, make_user, make_video, make_video_page, stack_session

pytestmark = [
    pytest.mark.integration,
    pytest.mark.django_db(transaction=True, serialized_rollback=True),
]

REFUSED_CHOICE = "You do not have permission to choose this video."
NOT_FOUND = b"Not found.\n"
FORBIDDEN = b"You do not have access to this video.\n"


@pytest.fixture(scope="module")
def site(tmp_path_factory, stack_database_url, static_root):
    """One gunicorn worker: a warm request warms the only decision cache."""
    stack = _start_stack(
        tmp_path_factory, stack_database_url, static_root, extra_env={"WEB_CONCURRENCY": "1"}
    )
    yield stack
    stack.stop()


@pytest.fixture
def world(sample_video):
    root = Collection.get_first_root_node()
    private = root.add_child(name="Private")
    home = home_page()
    page_editors = Group.objects.create(name="Page editors")
    page_editors.permissions.add(Permission.objects.get(codename="access_admin"))
    for permission_type in ("add", "change", "publish"):
        GroupPagePermission.objects.create(
            group=page_editors, page=home, permission=Permission.objects.get(codename=f"{permission_type}_page")
        )
    choosers = collection_group("Private choosers", private, "choose_video")
    changers = collection_group("Private editors", private, "change_video")
    public_video = make_video(sample_video, title="Public clip")
    secret = make_video(sample_video, title="Secret", collection=private)
    other_secret = make_video(sample_video, title="Other secret", collection=private)
    page = make_video_page(public_video, title="Launch")
    return SimpleNamespace(
        private=private,
        home=home,
        editor=make_user("editor", groups=[page_editors]),
        chooser=make_user("chooser", groups=[page_editors, choosers]),
        changer=make_user("changer", groups=[page_editors, changers]),
        admin=make_user("boss", superuser=True),
        public_video=public_video,
        secret=secret,
        other_secret=other_secret,
        page=page,
        data=Path(settings.PRIVATE_MEDIA_ROOT, secret.file.name).read_bytes(),
    )


def csrf_session(site, user, form_url):
    session = stack_session(user)
    response = session.get(site.url(form_url))
    assert response.status_code == 200, response.text[:500]
    return session, session.cookies["csrftoken"]


def page_post(token, *, title, slug, video=None, body_videos=(), action=None):
    data = nested_form_data({
        "title": title,
        "slug": slug,
        "video": video.pk if video else "",
        "intro": rich_text(""),
        "body": streamfield([("video", {"video": v.pk, "caption": ""}) for v in body_videos]),
        "viewer_grants": inline_formset([]),
        "comments": inline_formset([]),
    })
    data["csrfmiddlewaretoken"] = token
    if action:
        data[f"action-{action}"] = action
    return data


def create_url(parent):
    return f"/admin/pages/add/cms/videopage/{parent.pk}/"


def edit_url(page):
    return f"/admin/pages/{page.pk}/edit/"


def assert_refused_form(response):
    # The edit view answers the form again (200) with the error, not a redirect.
    assert response.status_code == 200, response.status_code
    assert REFUSED_CHOICE in response.text


def page_state(page):
    page = Page.objects.get(pk=page.pk).specific
    return (
        page.title, page.video_id, list(page.body.raw_data), page.latest_revision_id,
        page.revisions.count(), page.has_unpublished_changes, page.live,
    )


def assert_refused_media(response, data):
    assert response.status_code in (403, 404), response.status_code
    assert "X-Accel-Redirect" not in response.headers
    assert "Content-Range" not in response.headers
    assert response.headers["Cache-Control"] == "private, no-store"
    assert len(response.content) < 200
    assert data[:16] not in response.content and b"ftyp" not in response.content


def watch(page, video, download=False):
    return f"/watch/{page.pk}/{video.pk}/original/" + ("download/" if download else "")


def playback(page, video):
    return f"/playback/{page.pk}/{video.pk}/"


# --- choosing videos on page save ----------------------------------------------------


@pytest.mark.parametrize("action", [None, "publish", "submit"], ids=["draft", "publish", "submit"])
@pytest.mark.parametrize("where", ["main", "body"])
def test_forged_video_id_on_create_is_refused(site, world, action, where):
    session, token = csrf_session(site, world.editor, create_url(world.home))
    forged = {"video": world.secret} if where == "main" else {"body_videos": [world.secret]}
    before = Page.objects.count()
    response = session.post(
        site.url(create_url(world.home)),
        data=page_post(token, title="Forged", slug="forged", action=action, **forged),
        allow_redirects=False,
    )
    assert_refused_form(response)
    assert Page.objects.count() == before
    assert not VideoPage.objects.filter(slug="forged").exists()


@pytest.mark.parametrize("action", [None, "publish", "submit"], ids=["draft", "publish", "submit"])
@pytest.mark.parametrize("where", ["main", "body"])
def test_forged_video_id_on_edit_is_refused(site, world, action, where):
    session, token = csrf_session(site, world.editor, edit_url(world.page))
    forged = (
        {"video": world.secret} if where == "main"
        else {"video": world.public_video, "body_videos": [world.public_video, world.secret]}
    )
    before = page_state(world.page)
    response = session.post(
        site.url(edit_url(world.page)),
        data=page_post(token, title="Renamed", slug=world.page.slug, action=action, **forged),
        allow_redirects=False,
    )
    assert_refused_form(response)
    assert page_state(world.page) == before
    # Nothing the draft preview could use either.
    assert_refused_media(stack_session(world.editor).get(site.url(watch(world.page, world.secret))), world.data)


def test_forged_id_in_a_nested_block_is_refused(world):
    """The check walks every block at any depth (a site's own page types nest
    choosers in lists and structs), and the error lands on the chooser itself."""
    from wagtail import blocks

    from private_video.blocks import VideoChooserBlock, chosen_videos, video_choice_error

    stream = blocks.StreamBlock([
        ("gallery", blocks.ListBlock(blocks.StructBlock([
            ("clip", VideoChooserBlock()), ("caption", blocks.CharBlock(required=False)),
        ]))),
        ("single", VideoChooserBlock()),
    ])
    value = stream.to_python([
        {"type": "single", "value": world.public_video.pk},
        {"type": "gallery", "value": [
            {"clip": world.public_video.pk, "caption": ""},
            {"clip": world.secret.pk, "caption": "x"},
        ]},
    ])
    assert [v.pk for v in chosen_videos(stream, value)] == [
        world.public_video.pk, world.public_video.pk, world.secret.pk]
    error = video_choice_error(stream, value, lambda video: video.pk == world.secret.pk, "no")
    assert isinstance(error, blocks.StreamBlockValidationError)
    assert list(error.block_errors) == [1]
    gallery = error.block_errors[1]
    assert isinstance(gallery, blocks.ListBlockValidationError) and list(gallery.block_errors) == [1]
    item = gallery.block_errors[1]
    assert isinstance(item, blocks.StructBlockValidationError) and list(item.block_errors) == ["clip"]
    assert item.block_errors["clip"].messages == ["no"]
    assert video_choice_error(stream, value, lambda video: False, "no") is None


def test_choose_permission_lets_an_editor_use_the_video(site, world):
    session, token = csrf_session(site, world.chooser, edit_url(world.page))
    response = session.post(
        site.url(edit_url(world.page)),
        data=page_post(token, title="With secret", slug=world.page.slug, video=world.secret,
                       body_videos=[world.other_secret], action="publish"),
        allow_redirects=False,
    )
    assert response.status_code == 302, response.text[-3000:]
    page = VideoPage.objects.get(pk=world.page.pk)
    assert page.title == "With secret" and page.video_id == world.secret.pk
    assert [v.pk for v in page.videos()] == [world.secret.pk, world.other_secret.pk]
    session, token = csrf_session(site, world.chooser, create_url(world.home))
    response = session.post(
        site.url(create_url(world.home)),
        data=page_post(token, title="New secret", slug="new-secret", video=world.secret,
                       body_videos=[world.other_secret], action="submit"),
        allow_redirects=False,
    )
    assert response.status_code == 302, response.text[-3000:]
    created = VideoPage.objects.get(slug="new-secret")
    assert created.get_latest_revision_as_object().video_id == world.secret.pk
    assert created.current_workflow_state is not None


def test_a_video_already_on_the_page_may_be_kept(site, world):
    """Someone with choose rights put the secret videos on the page; an editor
    without them can still edit the page's other fields (draft and publish)."""
    page = world.page.get_latest_revision_as_object()
    page.video = world.secret
    page.body = [("video", {"video": world.other_secret, "caption": ""})]
    page.save_revision(user=world.admin).publish()
    session, token = csrf_session(site, world.editor, edit_url(world.page))
    for action, title in ((None, "Draft title"), ("publish", "Live title")):
        response = session.post(
            site.url(edit_url(world.page)),
            data=page_post(token, title=title, slug=world.page.slug, video=world.secret,
                           body_videos=[world.other_secret], action=action),
            allow_redirects=False,
        )
        assert response.status_code == 302, response.text[-3000:]
        latest = Page.objects.get(pk=world.page.pk).get_latest_revision_as_object()
        assert latest.title == title and latest.video_id == world.secret.pk
    # Moving a kept video from the body to the main field is keeping it too.
    response = session.post(
        site.url(edit_url(world.page)),
        data=page_post(token, title="Swapped", slug=world.page.slug, video=world.other_secret,
                       body_videos=[world.secret]),
        allow_redirects=False,
    )
    assert response.status_code == 302, response.text[-3000:]


# --- previews and downloads ----------------------------------------------------------


def draft_with(world, video):
    """A draft that holds ``video`` (saved by someone allowed to choose it, or
    before choosing was checked); the live page still shows the public clip."""
    draft = world.page.get_latest_revision_as_object()
    draft.video = video
    draft.save_revision(user=world.admin)


def test_page_editor_without_video_rights_cannot_preview_a_drafts_video(site, world):
    draft_with(world, world.secret)
    session = stack_session(world.editor)
    for path in (watch(world.page, world.secret), watch(world.page, world.secret, download=True)):
        response = session.get(site.url(path), headers={"Range": "bytes=0-99"}, allow_redirects=False)
        assert_refused_media(response, world.data)
        assert response.status_code == 404 and response.content == NOT_FOUND
    response = session.get(site.url(playback(world.page, world.secret)))
    assert response.status_code == 404
    assert response.json() == {"allowed": False, "reason": "not_found"}
    # The same for a page that was never published.
    unpublished = make_video_page(world.secret, title="Unpublished", live=False)
    response = session.get(site.url(watch(unpublished, world.secret)), headers={"Range": "bytes=0-99"})
    assert_refused_media(response, world.data)
    assert session.get(site.url(playback(unpublished, world.secret))).status_code == 404


def test_choose_rights_let_a_page_editor_preview_but_not_download(site, world):
    draft_with(world, world.secret)
    session = stack_session(world.chooser)
    response = session.get(site.url(watch(world.page, world.secret)), headers={"Range": "bytes=0-99"})
    assert response.status_code == 206 and response.content == world.data[:100]
    info = session.get(site.url(playback(world.page, world.secret)))
    assert info.status_code == 200 and info.json()["sources"]
    download = session.get(site.url(watch(world.page, world.secret, download=True)), allow_redirects=False)
    assert download.status_code == 403 and download.content == FORBIDDEN
    assert_refused_media(download, world.data)


def test_download_needs_change_permission_or_a_download_grant(site, world):
    live_data = Path(settings.PRIVATE_MEDIA_ROOT, world.public_video.file.name).read_bytes()
    path = site.url(watch(world.page, world.public_video, download=True))
    # Page-edit rights alone: no download, even of the live page's own video.
    refused = stack_session(world.editor).get(path, allow_redirects=False)
    assert refused.status_code == 403 and refused.content == FORBIDDEN
    assert_refused_media(refused, live_data)
    # Change permission on the video's collection (here without choose).
    secret_page = make_video_page(world.secret, title="Secret page")
    allowed = stack_session(world.changer).get(
        site.url(watch(secret_page, world.secret, download=True)), headers={"Range": "bytes=0-99"})
    assert allowed.status_code == 206 and allowed.content == world.data[:100]
    assert allowed.headers["Content-Disposition"].startswith("attachment;")
    refused = stack_session(world.chooser).get(
        site.url(watch(secret_page, world.secret, download=True)), allow_redirects=False)
    assert refused.status_code == 403 and refused.content == FORBIDDEN
    # A grant that allows downloads, for the page editor on the live page's video.
    ViewerGrant.objects.create(page=world.page, user=world.editor, can_download=True)
    granted = stack_session(world.editor).get(path, headers={"Range": "bytes=0-99"})
    assert granted.status_code == 206 and granted.content == live_data[:100]


# --- revocations: page password, expiry ----------------------------------------------


def pass_password(site, session, page, password):
    html = session.get(site.url(page.url)).text
    action = re.search(r'action="(/_util/authenticate_with_password/\d+/\d+/)"', html)
    assert action, html[:2000]
    response = session.post(
        site.url(action.group(1)),
        data={"password": password, "return_url": page.url,
              "csrfmiddlewaretoken": session.cookies["csrftoken"]},
        allow_redirects=False,
    )
    return response


def warm(site, session, path, data, times=3):
    for _ in range(times):
        response = session.get(site.url(path), headers={"Range": "bytes=0-99"}, allow_redirects=False)
        assert response.status_code == 206
        assert response.content == data[:100]


def test_changed_page_password_locks_out_the_old_one_on_the_next_request(site, world):
    page = make_video_page(world.secret, title="Members only")
    PageViewRestriction.objects.create(
        page=page, restriction_type=PageViewRestriction.PASSWORD, password="sesame"
    )
    visitor = requests.Session()
    assert pass_password(site, visitor, page, "sesame").status_code == 302
    warm(site, visitor, watch(page, world.secret), world.data)
    assert "<video" in visitor.get(site.url(page.url)).text

    # The editor changes the shared password in the page's privacy settings.
    admin, token = csrf_session(site, world.admin, f"/admin/pages/{page.pk}/privacy/")
    changed = admin.post(
        site.url(f"/admin/pages/{page.pk}/privacy/"),
        data={"restriction_type": "password", "password": "new sesame", "csrfmiddlewaretoken": token},
    )
    assert changed.status_code == 200 and '"set_privacy_done"' in changed.text

    refused = visitor.get(site.url(watch(page, world.secret)), headers={"Range": "bytes=0-99"},
                          allow_redirects=False)
    assert refused.status_code == 403 and refused.content == FORBIDDEN
    assert_refused_media(refused, world.data)
    assert_refused_media(visitor.get(site.url(playback(page, world.secret))), world.data)
    html = visitor.get(site.url(page.url)).text
    assert "<video" not in html and "authenticate_with_password" in html

    assert pass_password(site, visitor, page, "sesame").status_code == 200
    assert pass_password(site, visitor, page, "new sesame").status_code == 302
    warm(site, visitor, watch(page, world.secret), world.data, times=1)


def test_page_past_expire_at_stops_serving_at_once(site, world):
    page = make_video_page(world.secret, title="Until soon")
    path = watch(page, world.secret)
    expire_at = timezone.now() + timedelta(seconds=3)
    Page.objects.filter(pk=page.pk).update(expire_at=expire_at)
    visitor = requests.Session()
    # The decision is remembered by the only worker (no cookie: one shared key).
    warm(site, visitor, path, world.data)
    assert visitor.get(site.url(page.url)).status_code == 200
    time.sleep(max(0.0, (expire_at - timezone.now()).total_seconds()) + 0.3)
    # Nothing has run publish_scheduled: the page is still "live" in the database.
    assert Page.objects.get(pk=page.pk).live
    response = visitor.get(site.url(path), headers={"Range": "bytes=0-99"}, allow_redirects=False)
    assert response.status_code == 404 and response.content == NOT_FOUND
    assert_refused_media(response, world.data)
    assert visitor.get(site.url(playback(page, world.secret))).status_code == 404
    assert visitor.get(site.url(page.url)).status_code == 404
    # Signed in and with a grant, the same.
    viewer = make_user("viewer")
    ViewerGrant.objects.create(page=page, user=viewer)
    response = stack_session(viewer).get(site.url(path), headers={"Range": "bytes=0-99"})
    assert response.status_code == 404
    assert_refused_media(response, world.data)
    # Like an unpublished page: an editor who may choose the video still previews it.
    preview = stack_session(world.chooser).get(site.url(path), headers={"Range": "bytes=0-99"})
    assert preview.status_code == 206 and preview.content == world.data[:100]


def test_page_already_past_expire_at_serves_nothing(site, world):
    page = make_video_page(world.secret, title="Gone")
    Page.objects.filter(pk=page.pk).update(expire_at=timezone.now() - timedelta(minutes=1))
    response = requests.get(site.url(watch(page, world.secret)), headers={"Range": "bytes=0-99"})
    assert response.status_code == 404 and response.content == NOT_FOUND
    assert_refused_media(response, world.data)
