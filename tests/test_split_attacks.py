"""Hostile review of the issue-10 split (a reusable module in a host site).

Each test is one attack on a seam the split introduced or moved, and the
answer it must get now:

- A host site's own page type with a field named ``video`` that points to
  something else (its own model, e.g. wagtailmedia's Media): the policy took
  any ``video_id`` equal to a private video's id for "the video is on this
  page", so an anonymous visitor got a private video through an unrelated
  public page; a host page's own ``videos()`` (not ``VideoPageMixin``'s)
  likewise. The page contract (``VideoPageMixin.videos()``) only counts
  relations to the video model; the policy must agree.
- A host page type that holds videos without ``VideoChoicePageForm``:
  Wagtail's own form takes any video id, so a page editor with no video
  rights published a private video. Such a page type holds none for
  media_access, and ``manage.py check`` says so (private_video.W001).
- A private folder inside a static source folder (``STATICFILES_DIRS``, an
  app's ``static/``): collectstatic published every original; E002 now.
- ``check_video_access`` hooks got a plain ``Page`` from the media views: a
  hook testing the site's page type refused the player but served the bytes.
  A hook that raises fails closed (no bytes, nothing of the exception).
- The published-text cache keeps stored text only (no token, no page) and
  never answers before the policy.
- A number setting that is no number (``TOKEN_LIFETIME = "5 minutes"``) was
  a 500 on every playback; now a check error (private_video_access.E006).
"""

import pytest
from django.apps import apps
from django.db import connection, models
from django.test import Client
from django.urls import reverse
from wagtail.admin.panels import FieldPanel
from wagtail.fields import StreamField
from wagtail.models import Page

from private_video import get_video_model_string
from private_video.blocks import VideoBlock

from .helpers import home_page, make_video
from .media_cache import transcoded_video

pytestmark = pytest.mark.django_db(transaction=True, serialized_rollback=True)

# Registered under an installed app only while a test runs (Wagtail finds a
# page's class through the app registry), then taken out again.
HOST_APP = "cms"
_host_models = {}


def _define_host_models():
    """A host site's own models (defined once per process): a clip model of its own and
    a page type whose ``video`` field points to it, not to the video library."""
    if _host_models:
        return _host_models

    class H6HostClip(models.Model):
        title = models.CharField(max_length=100)

        class Meta:
            app_label = HOST_APP

    class H6HostClipPage(Page):
        video = models.ForeignKey(H6HostClip, null=True, blank=True, on_delete=models.SET_NULL, related_name="+")

        class Meta:
            app_label = HOST_APP

    class H6HostPlaylistPage(Page):
        """No ``video`` field, but a ``videos()`` of its own (the host's clips), not the page contract's."""

        clips = models.ManyToManyField(H6HostClip, blank=True, related_name="+")

        def videos(self):
            return list(self.clips.all())

        class Meta:
            app_label = HOST_APP

    class H6UncheckedPage(Page):
        """Holds videos like the docs' LessonPage, but without VideoPageMixin (or
        VideoChoicePageForm): Wagtail's plain page form takes any video id."""

        video = models.ForeignKey(
            get_video_model_string(), null=True, blank=True, on_delete=models.SET_NULL, related_name="+"
        )
        body = StreamField([("video", VideoBlock())], blank=True)

        content_panels = Page.content_panels + [FieldPanel("video"), FieldPanel("body")]

        class Meta:
            app_label = HOST_APP

    _host_models.update(
        clip=H6HostClip, page=H6HostClipPage, playlist_page=H6HostPlaylistPage, unchecked_page=H6UncheckedPage
    )
    return _host_models


def _forget_content_types(models):
    """Drop only our page types from ContentType's cache: the flush after the
    test removes their rows, and the rest of the cache must stay (clearing it
    makes the next test's serialized-rollback load create content types)."""
    from django.contrib.contenttypes.models import ContentType

    for cache in ContentType.objects._cache.values():
        for key, content_type in list(cache.items()):
            if content_type.app_label == HOST_APP and content_type.model in {m._meta.model_name for m in models}:
                del cache[key]


@pytest.fixture
def host_models():
    from wagtail.models import PAGE_MODEL_CLASSES

    from media_access import decisions

    defined = _define_host_models()
    # Creation order (foreign keys point backwards).
    ordered = list(defined.values())
    with connection.schema_editor() as editor:
        for model in ordered:
            editor.create_model(model)
    from django.contrib.contenttypes.models import ContentType

    for model in ordered:
        ContentType.objects.get_for_model(model)
    try:
        yield defined
    finally:
        page_models = [model for model in ordered if issubclass(model, Page)]
        Page.objects.filter(content_type__model__in=[m._meta.model_name for m in page_models]).delete()
        with connection.schema_editor() as editor:
            for model in reversed(ordered):
                editor.delete_model(model)
        # The rest of the suite must not see a page type of ours.
        for model in page_models:
            if model in PAGE_MODEL_CLASSES:
                PAGE_MODEL_CLASSES.remove(model)
        for model in ordered:
            apps.all_models[HOST_APP].pop(model._meta.model_name, None)
            for field in model._meta.local_many_to_many:
                apps.all_models[HOST_APP].pop(field.remote_field.through._meta.model_name, None)
        apps.clear_cache()
        _forget_content_types(ordered)
        _host_models.clear()
        # The decision cache counts triggers per watched table: count again without ours.
        decisions.install_triggers()


def test_a_host_pages_own_video_field_is_not_a_private_video(host_models, sample_video):
    private = make_video(sample_video, title="Secret")
    # The host's own clip with the same id as the private video.
    clip = host_models["clip"].objects.create(pk=private.pk, title="Public clip")
    page = host_models["page"](title="Blog", video=clip)
    home_page().add_child(instance=page)
    page.save_revision().publish()
    playlist = host_models["playlist_page"](title="Clips")
    home_page().add_child(instance=playlist)
    playlist.clips.add(clip)
    playlist.save_revision().publish()

    anonymous = Client()
    for host_page in (page, playlist):
        for name in ("media_access:watch", "media_access:download"):
            response = anonymous.get(reverse(name, args=[host_page.pk, private.pk, "original"]))
            assert response.status_code == 404, (host_page, name)
            assert not response.has_header("X-Accel-Redirect")
        playback = anonymous.get(reverse("media_access:playback", args=[host_page.pk, private.pk]))
        assert playback.status_code == 404 and "token" not in playback.json()


# --- a site developer's private folder that collectstatic publishes -----------------------


def test_private_storage_inside_a_static_source_folder_is_e002(settings, tmp_path):
    """wagtail start's site has ``STATICFILES_DIRS = [mysite/static]``: a private
    folder put in there is not under MEDIA_ROOT or STATIC_ROOT, yet
    ``collectstatic`` copies every original into STATIC_ROOT, which nginx serves
    to anyone. ``manage.py check`` must say so before that happens."""
    from django.contrib.staticfiles import finders
    from django.core.files.base import ContentFile
    from django.core.files.storage import storages
    from django.core.management import call_command

    from private_video import checks

    site_static = tmp_path / "mysite" / "static"
    site_static.mkdir(parents=True)
    settings.STATIC_ROOT = str(tmp_path / "collected")
    settings.MEDIA_ROOT = str(tmp_path / "media")
    settings.STATICFILES_DIRS = [str(site_static)]
    settings.STORAGES = {**settings.STORAGES, "private": {
        "BACKEND": "private_video.storage.PrivateFileSystemStorage",
        "OPTIONS": {"location": str(site_static / "private-media")},
    }}
    finders.get_finder.cache_clear()
    try:
        name = storages["private"].save("videos/ab/" + "ab" * 16 + "/original.mp4", ContentFile(b"secret bytes"))
        call_command("collectstatic", interactive=False, verbosity=0)
        # The harm: the original is now a public static file.
        assert (tmp_path / "collected" / "private-media" / name).read_bytes() == b"secret bytes"
        errors = checks.check_private_storage(None)
    finally:
        finders.get_finder.cache_clear()
    assert [error.id for error in errors] == ["private_video.E002"]
    assert "STATICFILES_DIRS" in errors[0].msg


def test_private_storage_inside_an_apps_static_folder_is_e002(settings, tmp_path):
    """The same through an app's own static/ folder (AppDirectoriesFinder)."""
    from pathlib import Path

    import cms

    from private_video import checks

    app_static = Path(cms.__file__).resolve().parent / "static"
    settings.STORAGES = {**settings.STORAGES, "private": {
        "BACKEND": "private_video.storage.PrivateFileSystemStorage",
        # Never created: the check looks at the path only.
        "OPTIONS": {"location": str(app_static / "h6-private-never-created")},
    }}
    errors = checks.check_private_storage(None)
    assert [error.id for error in errors] == ["private_video.E002"]
    assert "static" in errors[0].msg


# --- check_video_access: the hook sees the page a site developer wrote it for ------------


def test_a_hook_that_refuses_on_its_page_type_refuses_the_bytes_too(sample_video):
    """A site's hook is written against its own page type (``isinstance(page,
    LessonPage)``, a field of it): the player's template tag passed it the
    specific page, but the byte-serving views a plain ``Page``, so the same
    hook refused the player and let /watch/, /playback/ and the playlists through."""
    from django.contrib.auth.models import Group
    from wagtail import hooks

    from cms.models import VideoPage
    from media_access import decisions
    from media_access.models import ViewerGrant
    from media_access.policy import Outcome

    from .helpers import make_user, make_video_page

    decisions.cache().clear()
    members = Group.objects.create(name="Members")
    video = make_video(sample_video, title="Course video")
    page = make_video_page(video, title="Lesson")
    ViewerGrant.objects.create(page=page, group=members)
    viewer = Client()
    viewer.force_login(make_user("viewer", groups=[members]))
    seen = []

    def not_enrolled(request, page, video):
        seen.append(type(page))
        if isinstance(page, VideoPage):
            return Outcome.FORBIDDEN
        return None

    with hooks.register_temporarily("check_video_access", not_enrolled):
        rendered = viewer.get(page.url)
        watch = viewer.get(reverse("media_access:watch", args=[page.pk, video.pk, "original"]))
        download = viewer.get(reverse("media_access:download", args=[page.pk, video.pk, "original"]))
        playback = viewer.get(reverse("media_access:playback", args=[page.pk, video.pk]))
    assert rendered.status_code == 200 and 'data-access="denied"' in rendered.content.decode()
    for response in (watch, download):
        assert response.status_code == 403 and not response.has_header("X-Accel-Redirect")
    assert playback.status_code == 403 and "token" not in playback.json()
    assert set(seen) == {VideoPage}


def test_a_hook_that_raises_fails_closed_and_says_nothing(sample_video, settings):
    """An exception in a site's hook is a plain 500: no bytes, no token, no
    X-Accel-Redirect, and nothing of the exception in the body."""
    from wagtail import hooks

    from media_access import decisions

    from .helpers import make_video_page

    settings.DEBUG = False
    decisions.cache().clear()
    video = make_video(sample_video, title="Open video")
    page = make_video_page(video, title="Open page")
    anonymous = Client(raise_request_exception=False)
    watch_url = reverse("media_access:watch", args=[page.pk, video.pk, "original"])
    # Open page, no grants: allowed, and remembered.
    assert anonymous.get(watch_url).has_header("X-Accel-Redirect")

    def broken(request, page, video):
        raise RuntimeError("enrolment service at 10.0.0.7 said no-such-table")

    with hooks.register_temporarily("check_video_access", broken):
        responses = [
            anonymous.get(watch_url),
            anonymous.get(reverse("media_access:download", args=[page.pk, video.pk, "original"])),
            anonymous.get(reverse("media_access:playback", args=[page.pk, video.pk])),
        ]
    for response in responses:
        assert response.status_code == 500
        assert not response.has_header("X-Accel-Redirect")
        assert b"10.0.0.7" not in response.content and b"token" not in response.content


# --- published playlists and cues: kept by storage name, asked for after the policy -------


def test_the_published_cache_holds_no_viewer_token_and_never_skips_the_policy(tmp_path):
    """Two viewers on two pages share the cached texts, but what is cached is the
    stored text: no token, no page id. A viewer whose grant is revoked, or a
    rendition that is deleted, gets nothing from the cache."""
    from django.contrib.auth.models import Group

    from media_access import decisions, published
    from media_access.models import ViewerGrant
    from transcoding.profiles import Rung

    from .helpers import make_user, make_video_page

    decisions.cache().clear()
    published.forget()
    # Transcoded for real once per run, then copies (tests/media_cache.py).
    video = transcoded_video(tmp_path / "clip.mp4", title="Cached", clip=dict(duration=3, width=320, height=180),
                             settings=dict(TRANSCODING_LADDER=[Rung(90, 150)]))
    members = Group.objects.create(name="Members")
    first_page = make_video_page(video, title="First")
    second_page = make_video_page(video, title="Second")
    for page in (first_page, second_page):
        ViewerGrant.objects.create(page=page, group=members)
    users = [make_user(name, groups=[members]) for name in ("anna", "ben")]
    viewers = []
    for user in users:
        client = Client()
        client.force_login(user)
        viewers.append(client)
    Kind = type(video.renditions.first()).Kind
    media = video.renditions.get(kind=Kind.HLS_VIDEO)

    def playlist_url(page, rendition):
        return reverse("media_access:hls_playlist", args=[page.pk, video.pk, rendition.name])

    tokens = []
    for client, page in zip(viewers, (first_page, second_page)):
        playback = client.get(reverse("media_access:playback", args=[page.pk, video.pk]))
        assert playback.status_code == 200
        tokens.append(playback.json()["token"]["value"])
        master = client.get(playlist_url(page, video.renditions.get(kind=Kind.HLS_MASTER)))
        assert master.status_code == 200 and f"/hls/{page.pk}/".encode() in master.content
        assert client.get(playlist_url(page, media)).status_code == 200
    cached = repr(list(published._entries.values()))
    assert published._entries, "nothing was cached"
    for token in tokens:
        assert token not in cached
    assert "/hls/" not in cached and "/stream/" not in cached

    # Revoked (taken out of the group the grant names): the cached playlist is not an answer.
    members.user_set.remove(users[0])
    refused = viewers[0].get(playlist_url(first_page, media))
    assert refused.status_code == 403 and b"#EXT" not in refused.content
    # Deleted rendition: gone, though its text is still cached.
    media.delete()
    assert viewers[1].get(playlist_url(second_page, media)).status_code == 404



# --- media_access's number settings: a check message, not a 500 per request ----------------


@pytest.mark.parametrize("name,value", [
    ("TOKEN_LIFETIME", "5 minutes"),
    ("TOKEN_LIFETIME", 0),
    ("TOKEN_LIFETIME", -300),
    ("S3_URL_LIFETIME", "a minute"),
    ("S3_URL_LIFETIME", 8 * 24 * 3600),  # beyond S3's 7 days: every presigned request refused
    ("DECISION_CACHE_SIZE", "lots"),
    ("DECISION_CACHE_TTL", -1),
    ("PUBLISHED_TEXT_CACHE_SIZE", None),
    ("LOG_WINDOW", "half an hour"),
])
def test_a_bad_number_setting_is_a_check_error(settings, name, value):
    """``MEDIA_ACCESS_TOKEN_LIFETIME = "5 minutes"`` passed ``manage.py check``,
    then every playback answer (and every transcode's publish, which asks for
    the signed URL lifetime) ended in a ValueError; 0 or less handed out
    tokens already expired."""
    from media_access import checks

    setattr(settings, f"MEDIA_ACCESS_{name}", value)
    errors = [error for error in checks.check_settings() if error.id == "private_video_access.E006"]
    assert len(errors) == 1, checks.check_settings()
    assert f"MEDIA_ACCESS_{name}" in errors[0].msg


def test_the_default_number_settings_pass():
    from media_access import checks

    assert [error for error in checks.check_settings() if error.id == "private_video_access.E006"] == []


def test_a_non_number_token_lifetime_is_a_500_on_playback(settings, sample_video):
    """What E006 spares a site: the request itself fails (fail closed, but a traceback)."""
    from .helpers import make_video_page

    video = make_video(sample_video)
    page = make_video_page(video)
    settings.MEDIA_ACCESS_TOKEN_LIFETIME = "5 minutes"
    response = Client(raise_request_exception=False).get(reverse("media_access:playback", args=[page.pk, video.pk]))
    assert response.status_code == 500 and b"token" not in response.content


# --- a host page type that holds videos but does not check the editor's choice ------------


def test_a_page_type_that_does_not_check_video_choices_serves_no_video(host_models, sample_video, client):
    """A site developer gives their page type a video field but forgets
    VideoPageMixin: Wagtail's own page form accepts any video id, so a page
    editor with no video rights at all put a private video on a page they
    publish, and everyone who may see the page got the bytes. Such a page
    type holds no video as far as media_access is concerned."""
    from django.contrib.auth.models import Group, Permission
    from wagtail.models import Collection, GroupPagePermission
    from wagtail.test.utils.form_data import nested_form_data, streamfield

    from .helpers import make_user

    secret_collection = Collection.get_first_root_node().add_child(name="Board only")
    private = make_video(sample_video, title="Board meeting", collection=secret_collection)
    home = home_page()
    editors = Group.objects.create(name="Page editors")
    editors.permissions.add(Permission.objects.get(codename="access_admin"))
    for permission_type in ("add", "change", "publish"):
        GroupPagePermission.objects.create(
            group=editors, page=home, permission=Permission.objects.get(codename=f"{permission_type}_page")
        )
    client.force_login(make_user("page-editor", groups=[editors]))
    page_type = host_models["unchecked_page"]
    response = client.post(
        reverse("wagtailadmin_pages:add", args=[HOST_APP, page_type._meta.model_name, home.pk]),
        nested_form_data({
            "title": "Leak", "slug": "leak", "video": private.pk,
            "body": streamfield([("video", {"video": private.pk, "caption": ""})]),
            "action-publish": "publish",
        }),
    )
    assert response.status_code in (200, 302)
    page = page_type.objects.filter(slug="leak").first()
    if page is not None and page.live:
        # Wagtail took it (its form cannot know): media_access must not serve it.
        anonymous = Client()
        watch = anonymous.get(reverse("media_access:watch", args=[page.pk, private.pk, "original"]))
        assert watch.status_code == 404 and not watch.has_header("X-Accel-Redirect")
        playback = anonymous.get(reverse("media_access:playback", args=[page.pk, private.pk]))
        assert playback.status_code == 404 and "token" not in playback.json()


def test_manage_py_check_names_a_page_type_that_does_not_check_video_choices(host_models):
    from private_video import checks

    warnings = checks.check_page_types_check_video_choices(None)
    assert [(w.id, w.obj) for w in warnings] == [("private_video.W001", host_models["unchecked_page"])]
    assert "VideoPageMixin" in warnings[0].hint
    # The demo's VideoPage (VideoPageMixin) and the host's pages whose fields point elsewhere pass.
