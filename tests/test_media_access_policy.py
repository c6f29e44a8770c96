"""The policy (can_watch), grants, their audit log, the player and the admin report,
through Django's test client (no nginx)."""

from datetime import timedelta

import pytest
from django.contrib.auth.models import AnonymousUser, Group
from django.test import RequestFactory
from django.urls import reverse
from django.utils import timezone
from wagtail.models import GroupPagePermission, PageLogEntry, PageViewRestriction

from cms.models import VideoPage
from media_access.models import PlaybackLogEntry, ViewerGrant
from media_access.policy import Outcome, can_watch
from media_access.responses import accel_redirect_path, content_disposition, content_type_for

from .helpers import home_page, make_user, make_video, make_video_page

pytestmark = pytest.mark.django_db


@pytest.fixture
def video(sample_video):
    return make_video(sample_video, title="Policy clip")


@pytest.fixture
def page(video):
    return make_video_page(video, title="Policy page")


def request_for(user, session=None):
    request = RequestFactory().get("/")
    request.user = user or AnonymousUser()
    request.session = session if session is not None else {}
    return request


def decide(user, page, video, session=None, **options):
    return can_watch(request_for(user, session), page, video, **options)


def test_open_page_allows_everyone_who_passes_privacy(page, video):
    assert decide(None, page, video).outcome is Outcome.ALLOWED
    assert decide(make_user("viewer"), page, video).outcome is Outcome.ALLOWED


def test_grants_restrict_the_page(page, video):
    members = Group.objects.create(name="Members")
    member = make_user("member", groups=[members])
    named = make_user("named")
    stranger = make_user("stranger")
    ViewerGrant.objects.create(page=page, group=members)
    ViewerGrant.objects.create(page=page, user=named, expires_at=timezone.now() + timedelta(days=1))
    assert decide(member, page, video).outcome is Outcome.ALLOWED
    assert decide(named, page, video).outcome is Outcome.ALLOWED
    assert decide(stranger, page, video).outcome is Outcome.FORBIDDEN
    assert decide(None, page, video).outcome is Outcome.LOGIN_REQUIRED


def test_expired_grant_refuses(page, video):
    user = make_user("late")
    ViewerGrant.objects.create(page=page, user=user, expires_at=timezone.now() - timedelta(seconds=1))
    decision = decide(user, page, video)
    assert decision.outcome is Outcome.FORBIDDEN and decision.reason == "no_grant"


def test_download_flag_comes_from_the_grant(page, video):
    plain, downloader = make_user("plain"), make_user("downloader")
    ViewerGrant.objects.create(page=page, user=plain)
    ViewerGrant.objects.create(page=page, user=downloader, can_download=True)
    assert decide(plain, page, video, download=True).can_download is False
    assert decide(downloader, page, video, download=True).can_download is True
    assert decide(make_user("boss", superuser=True), page, video, download=True).can_download is True


def test_video_in_the_streamfield_counts_and_others_do_not(sample_video, video):
    body_video = make_video(sample_video, title="In the body")
    stray = make_video(sample_video, title="Stray")
    page = make_video_page(
        None, title="Body only", body=[("video", {"video": body_video, "caption": "x"})]
    )
    assert decide(None, page, body_video).outcome is Outcome.ALLOWED
    assert decide(None, page, stray).outcome is Outcome.NOT_FOUND
    assert decide(None, page, video).outcome is Outcome.NOT_FOUND


def editor_with(*codenames, name="editor", collection=None):
    """A page editor (change on the home page) with these video permissions on ``collection``."""
    from django.contrib.auth.models import Permission
    from wagtail.models import Collection, GroupCollectionPermission

    group = Group.objects.create(name=f"{name} group")
    GroupPagePermission.objects.create(group=group, page=home_page(), permission_type="change")
    for codename in codenames:
        GroupCollectionPermission.objects.create(
            group=group, collection=collection or Collection.get_first_root_node(),
            permission=Permission.objects.get(codename=codename),
        )
    return make_user(name, groups=[group])


def test_unpublished_page_only_for_editors_who_may_choose_the_video(video, sample_video):
    # Was: any page editor previewed (and downloaded) every video of an unpublished page.
    page = make_video_page(video, title="Draft", live=False)
    assert decide(make_user("reader"), page, video).outcome is Outcome.NOT_FOUND
    assert decide(editor_with(), page, video).outcome is Outcome.NOT_FOUND
    chooser = editor_with("choose_video", name="chooser")
    decision = decide(chooser, page, video)
    assert decision.outcome is Outcome.ALLOWED and not decision.cacheable
    # Editors need no viewer grant to preview.
    ViewerGrant.objects.create(page=page, group=Group.objects.create(name="Someone else"))
    decision = decide(chooser, page, video, download=True)
    assert decision.outcome is Outcome.ALLOWED and decision.reason == "editor"
    assert decision.can_download is False
    changer = editor_with("choose_video", "change_video", name="changer")
    assert decide(changer, page, video, download=True).can_download is True


def test_draft_video_needs_choose_permission_to_preview(page, video, sample_video):
    from wagtail.models import Collection

    private = Collection.get_first_root_node().add_child(name="Private")
    secret = make_video(sample_video, title="Secret", collection=private)
    draft = page.get_latest_revision_as_object()
    draft.video = secret
    draft.save_revision()
    page.refresh_from_db()
    assert decide(editor_with(), page, secret).outcome is Outcome.NOT_FOUND
    # Choose rights on another collection are not enough.
    other = Collection.get_first_root_node().add_child(name="Other")
    elsewhere = editor_with("choose_video", name="elsewhere", collection=other)
    assert decide(elsewhere, page, secret).outcome is Outcome.NOT_FOUND
    decision = decide(editor_with("choose_video", name="chooser", collection=private), page, secret)
    assert decision.outcome is Outcome.ALLOWED and not decision.cacheable
    # The live page's own video stays watchable for a page editor without video rights.
    assert decide(editor_with(name="plain"), page, video).outcome is Outcome.ALLOWED


def test_download_needs_a_grant_or_change_permission_not_page_editing(page, video):
    editor = editor_with()
    decision = decide(editor, page, video, download=True)
    assert decision.outcome is Outcome.ALLOWED and decision.can_download is False
    changer = editor_with("change_video", name="changer")
    decision = decide(changer, page, video, download=True)
    # Collection permissions are not watched by the decision cache.
    assert decision.can_download is True and not decision.cacheable
    ViewerGrant.objects.create(page=page, user=editor, can_download=True)
    decision = decide(editor, page, video, download=True)
    assert decision.can_download is True and decision.cacheable


def test_page_past_expire_at_is_off_the_air(page, video):
    soon = timezone.now() + timedelta(minutes=5)
    VideoPage.objects.filter(pk=page.pk).update(expire_at=soon)
    page.refresh_from_db()
    decision = decide(None, page, video)
    assert decision.outcome is Outcome.ALLOWED and decision.valid_until == soon
    viewer = make_user("viewer")
    ViewerGrant.objects.create(page=page, user=viewer, expires_at=soon + timedelta(days=1))
    assert decide(viewer, page, video).valid_until == soon
    VideoPage.objects.filter(pk=page.pk).update(expire_at=timezone.now() - timedelta(seconds=1))
    page.refresh_from_db()
    assert page.live
    assert decide(None, page, video).outcome is Outcome.NOT_FOUND
    assert decide(viewer, page, video).outcome is Outcome.NOT_FOUND


def test_a_changed_password_is_a_new_restriction(page, video):
    restriction = PageViewRestriction.objects.create(
        page=page, restriction_type=PageViewRestriction.PASSWORD, password="sesame"
    )
    old_id = restriction.pk
    restriction.save()  # unchanged: same row
    assert restriction.pk == old_id
    passed = {PageViewRestriction.passed_view_restrictions_session_key: [old_id]}
    assert decide(None, page, video, session=passed).outcome is Outcome.ALLOWED
    restriction.password = "new sesame"
    restriction.save()
    assert restriction.pk != old_id
    assert list(PageViewRestriction.objects.filter(page=page).values_list("pk", flat=True)) == [restriction.pk]
    decision = decide(None, page, video, session=passed)
    assert decision.outcome is Outcome.FORBIDDEN and decision.reason == "password"
    # Back to a login restriction and to a password again: a new row again.
    restriction.restriction_type = PageViewRestriction.LOGIN
    restriction.save()
    login_id = restriction.pk
    restriction.restriction_type = PageViewRestriction.PASSWORD
    restriction.save()
    assert restriction.pk != login_id


def test_draft_video_is_previewable_by_editors_only(page, video, sample_video):
    new_video = make_video(sample_video, title="Draft video")
    draft = page.get_latest_revision_as_object()
    draft.video = new_video
    draft.save_revision()
    page.refresh_from_db()
    superuser = make_user("boss", superuser=True)
    assert decide(superuser, page, new_video).outcome is Outcome.ALLOWED
    assert decide(make_user("reader"), page, new_video).outcome is Outcome.NOT_FOUND


def test_privacy_on_ancestors_is_applied(video):
    from cms.models import IndexPage

    section = home_page().add_child(instance=IndexPage(title="Staff", slug="staff"))
    page = make_video_page(video, parent=section)
    staff = Group.objects.create(name="Staff")
    restriction = PageViewRestriction.objects.create(
        page=section, restriction_type=PageViewRestriction.GROUPS
    )
    restriction.groups.add(staff)
    assert decide(None, page, video).outcome is Outcome.LOGIN_REQUIRED
    assert decide(make_user("outsider"), page, video).outcome is Outcome.FORBIDDEN
    assert decide(make_user("insider", groups=[staff]), page, video).outcome is Outcome.ALLOWED


def test_password_privacy_uses_wagtails_session_marker(page, video):
    restriction = PageViewRestriction.objects.create(
        page=page, restriction_type=PageViewRestriction.PASSWORD, password="sesame"
    )
    user = make_user("guest")
    decision = decide(user, page, video)
    assert decision.outcome is Outcome.FORBIDDEN and decision.reason == "password"
    passed = {PageViewRestriction.passed_view_restrictions_session_key: [restriction.pk]}
    assert decide(user, page, video, session=passed).outcome is Outcome.ALLOWED


def test_grant_changes_are_logged_on_the_page(page):
    user = make_user("logged")
    grant = ViewerGrant.objects.create(page=page, user=user)
    grant.can_download = True
    grant.save()
    grant.save()  # unchanged: not logged again
    grant.delete()
    actions = list(
        PageLogEntry.objects.filter(page=page, action__startswith="media_access.")
        .order_by("pk")
        .values_list("action", flat=True)
    )
    assert actions == [
        "media_access.grant_add",
        "media_access.grant_change",
        "media_access.grant_revoke",
    ]
    entry = PageLogEntry.objects.get(page=page, action="media_access.grant_change")
    assert entry.data["grant"]["can_download"] is True
    assert entry.data["previous"]["can_download"] is False
    assert str(entry.formatter.label) == "Change viewer access"


def test_grants_are_edited_in_the_page_editor(page, client):
    admin = make_user("boss", superuser=True)
    client.force_login(admin)
    response = client.get(reverse("wagtailadmin_pages:edit", args=[page.pk]))
    assert response.status_code == 200
    html = response.content.decode()
    assert "viewer_grants-TOTAL_FORMS" in html
    assert "Viewers" in html


def test_player_renders_a_video_element_for_viewers(client, page, video):
    response = client.get(page.url)
    html = response.content.decode()
    src = reverse("media_access:watch", args=[page.pk, video.pk, "original"])
    assert '<video class="video-player__video" controls preload="metadata"' in html
    assert f'<source src="{src}" type="video/mp4">' in html
    assert "video-player__message" not in html


def test_player_tells_visitors_why_they_cannot_watch(client, page, video):
    video.title = "Q3 reorganisation plan"
    video.save()
    members = Group.objects.create(name="Members")
    ViewerGrant.objects.create(page=page, group=members)
    html = client.get(page.url).content.decode()
    assert "<video" not in html
    assert "Sign in</a> to watch it." in html
    assert f'href="/login/?next={page.url}"' in html
    # Nothing of the video itself: not its title, not its shape.
    assert "Q3 reorganisation plan" not in html and "aspect-ratio" not in html
    client.force_login(make_user("outsider"))
    html = client.get(page.url).content.decode()
    assert "<video" not in html
    assert "You do not have access to this video." in html
    assert "Q3 reorganisation plan" not in html
    member = make_user("member", groups=[members])
    client.force_login(member)
    html = client.get(page.url).content.decode()
    assert '<p class="video-player__title">Q3 reorganisation plan</p>' in html


def test_playback_report_lists_sessions(client, page, video):
    viewer = make_user("watcher")
    client.force_login(viewer)
    url = reverse("media_access:watch", args=[page.pk, video.pk, "original"])
    for _ in range(3):
        assert client.get(url, HTTP_RANGE="bytes=0-1").status_code == 200
    assert PlaybackLogEntry.objects.count() == 1
    client.force_login(make_user("boss", superuser=True))
    response = client.get(reverse("media_access_reports:playback"))
    assert response.status_code == 200
    html = response.content.decode()
    assert "watcher" in html and "Policy page" in html and "Policy clip" in html
    client.force_login(make_user("nosy"))
    assert client.get(reverse("media_access_reports:playback")).status_code in (302, 403)


def test_content_type_allow_list_never_yields_html():
    assert content_type_for("videos/ab/x/original.mp4") == "video/mp4"
    assert content_type_for("x/master.m3u8") == "application/vnd.apple.mpegurl"
    assert content_type_for("x/seg.m4s") == "video/iso.segment"
    assert content_type_for("x/captions.vtt") == "text/vtt"
    assert content_type_for("x/page.html") == "application/octet-stream"
    assert content_type_for("x/page.mp4", "text/html") == "video/mp4"


def test_accel_path_is_encoded_and_refuses_traversal():
    assert accel_redirect_path("videos/ab/k y/original.mp4") == "/_private/videos/ab/k%20y/original.mp4"
    assert accel_redirect_path("videos/a?b#c%.mp4") == "/_private/videos/a%3Fb%23c%25.mp4"
    from django.core.exceptions import SuspiciousFileOperation

    for bad in ["../etc/passwd", "/etc/passwd", "videos/../../x", "videos/./x", "a\nb", ""]:
        with pytest.raises(SuspiciousFileOperation):
            accel_redirect_path(bad)


def test_content_disposition_is_rfc6266():
    assert content_disposition("a b.mp4") == "inline; filename=\"a b.mp4\"; filename*=UTF-8''a%20b.mp4"
    assert content_disposition("x.mp4", attachment=True).startswith("attachment; ")
    assert "\n" not in content_disposition("a\r\nb.mp4")


def test_editor_publishes_a_grant_and_the_page_history_says_who(client, page, video):
    from wagtail.test.utils.form_data import inline_formset, nested_form_data, rich_text, streamfield

    admin = make_user("boss", superuser=True)
    members = Group.objects.create(name="Members")
    client.force_login(admin)
    data = nested_form_data({
        "title": page.title,
        "slug": page.slug,
        "video": video.pk,
        "intro": rich_text(""),
        "body": streamfield([]),
        "viewer_grants": inline_formset([{"group": members.pk, "user": "", "expires_at": "", "can_download": ""}]),
        "comments": inline_formset([]),
        "action-publish": "publish",
    })
    response = client.post(reverse("wagtailadmin_pages:edit", args=[page.pk]), data)
    assert response.status_code == 302, response.content.decode()[:2000]
    grant = ViewerGrant.objects.get(page=page)
    assert grant.group == members and grant.user is None
    entry = PageLogEntry.objects.get(page=page, action="media_access.grant_add")
    assert entry.user == admin
    assert decide(make_user("outsider"), page, video).outcome is Outcome.FORBIDDEN


def test_player_plays_the_original_only_until_a_rendition_is_ready(client, page, video, tmp_path):
    """An MP4 original too: once a rendition can stand in for it, the original
    is for those who may download it (media_access.views.serve)."""
    from django.core.files.base import ContentFile

    from media_access.files import best_playback_name, original_is_played
    from transcoding.models import Rendition

    assert video.file.name.endswith(".mp4")
    assert best_playback_name(video) == "original" and original_is_played(video)
    Kind = Rendition.Kind
    for name, kind, height in (
        ("mp4-360p", Kind.MP4, 360), ("mp4-720p", Kind.MP4, 720), ("hls-master", Kind.HLS_MASTER, None),
    ):
        rendition = Rendition(video=video, name=name, kind=kind, content_type="video/mp4", height=height, size=10)
        rendition.file.save(f"{name}.mp4", ContentFile(b"x" * 10), save=False)
        rendition.save()
    assert best_playback_name(video) == "mp4-720p" and not original_is_played(video)
