"""The video library's seams, as a site sees them: the model it swaps in
(get_video_model / PRIVATE_VIDEO_MODEL), the chooser hook, the page contract
(VideoPageMixin.videos) and how its storage tells nginx where a file is."""

import ast
import time
from pathlib import Path

import pytest
import requests
from django.apps import apps
from django.core.checks import run_checks
from django.core.exceptions import ImproperlyConfigured
from django.core.files.base import ContentFile
from django.db import models
from django.urls import reverse

import private_video
from private_video import get_video_model, get_video_model_string, video_model_problem
from private_video.models import AbstractVideo, Video
from private_video.storage import NginxSource, PrivateFileSystemStorage, PrivateS3Storage, private_storage

from .conftest import S3_BUCKET
from .helpers import make_user, make_video, make_video_page

LIBRARY = Path(private_video.__file__).resolve().parent


# --- get_video_model() and PRIVATE_VIDEO_MODEL --------------------------------------


def test_the_default_video_model():
    assert get_video_model_string() == "private_video.Video"
    assert get_video_model() is Video
    assert video_model_problem() is None


@pytest.mark.parametrize("value,says", [
    ("auth.User", "not a subclass of private_video.models.AbstractVideo"),
    ("private_video.NoSuchVideo", "has not been installed"),
    ("Video", "must be of the form 'app_label.ModelName'"),
    ("a.b.c", "must be of the form 'app_label.ModelName'"),
])
def test_a_video_model_setting_that_names_no_video_model_is_e004(settings, value, says):
    settings.PRIVATE_VIDEO_MODEL = value
    errors = [e for e in run_checks() if e.id == "private_video.E004"]
    assert len(errors) == 1 and says in errors[0].msg and "AbstractVideo" in errors[0].hint
    # Code that asks for the model anyway gets the same sentence, not a FieldError far away.
    with pytest.raises(ImproperlyConfigured, match=says.replace("(", r"\(").replace(")", r"\)")):
        get_video_model()


@pytest.fixture
def site_video_models(settings):
    """A site's own video models, registered for the test only (no tables: the
    seam is the lookup). ``LazyVideo`` forgets its own tags; ``SiteVideo`` has them."""
    from modelcluster.contrib.taggit import ClusterTaggableManager
    from modelcluster.fields import ParentalKey
    from taggit.models import TaggedItemBase

    class LazyVideo(AbstractVideo):
        class Meta(AbstractVideo.Meta):
            app_label = "private_video"

    class SiteVideoTag(TaggedItemBase):
        content_object = ParentalKey("private_video.SiteVideo", on_delete=models.CASCADE,
                                     related_name="tagged_items")

        class Meta:
            app_label = "private_video"

    class SiteVideo(AbstractVideo):
        speaker = models.CharField(max_length=100, blank=True)
        tags = ClusterTaggableManager(through=SiteVideoTag, blank=True)

        class Meta(AbstractVideo.Meta):
            app_label = "private_video"

    try:
        yield LazyVideo, SiteVideo
    finally:
        for name in ("lazyvideo", "sitevideotag", "sitevideo"):
            apps.all_models["private_video"].pop(name, None)
        apps.clear_cache()


def test_a_sites_own_video_model(settings, site_video_models):
    from private_video.blocks import VideoChooserBlock, is_video_chooser
    from private_video.permissions import video_permission_policy

    lazy, site_video = site_video_models
    settings.PRIVATE_VIDEO_MODEL = "private_video.SiteVideo"
    assert video_model_problem() is None
    assert get_video_model() is site_video
    assert video_permission_policy().model is site_video
    assert is_video_chooser(VideoChooserBlock())
    # The library's own tag model stays the default model's.
    settings.PRIVATE_VIDEO_MODEL = "private_video.LazyVideo"
    errors = [e for e in run_checks() if e.id == "private_video.E004"]
    assert len(errors) == 1 and "give it its own" in errors[0].msg and "private_video.Video" in errors[0].msg


def _imports_of(path):
    for node in ast.walk(ast.parse(path.read_text(), filename=str(path))):
        if isinstance(node, ast.ImportFrom):
            yield node.module or "", node.level, [alias.name for alias in node.names]


def test_the_library_reaches_its_model_only_through_get_video_model():
    """A site's model (PRIVATE_VIDEO_MODEL) is used everywhere only if no
    module takes the default ``Video`` class or names "private_video.Video"
    (models.py, which defines it, and the migrations excepted)."""
    offenders = []
    for path in sorted(LIBRARY.rglob("*.py")):
        relative = path.relative_to(LIBRARY)
        if relative.parts[0] == "migrations" or relative.name in ("models.py", "conf.py"):
            continue
        for module, level, names in _imports_of(path):
            if module.endswith("models") and ("Video" in names or "*" in names) and (
                level or module.startswith("private_video")
            ):
                offenders.append(f"{relative}: from {'.' * level}{module} import Video")
        if "private_video.Video" in path.read_text():
            offenders.append(f'{relative}: "private_video.Video"')
    assert offenders == []


# --- construct_video_chooser_queryset ----------------------------------------------------
# (tests/test_editor_permissions.py checks it narrows the choose view for an editor.)


@pytest.mark.django_db
def test_the_chooser_hook_narrows_listing_and_search(client, sample_video):
    from wagtail import hooks

    from wagtail.models import Collection

    client.force_login(make_user("chooser-admin", superuser=True))
    alpha = Collection.get_first_root_node().add_child(name="Alpha")
    make_video(sample_video, title="Alpha lecture", collection=alpha)
    make_video(sample_video, title="Beta lecture")

    def only_alpha(queryset, request):
        # A field the search backend can filter on (a hook narrowing search results needs one).
        return queryset.filter(collection=alpha)

    urls = [reverse("private_video_chooser:choose"), reverse("private_video_chooser:choose_results") + "?q=lecture"]
    for url in urls:
        html = client.get(url).json()["html"] if url.endswith("choose/") else client.get(url).content.decode()
        assert "Alpha lecture" in html and "Beta lecture" in html, url
    with hooks.register_temporarily("construct_video_chooser_queryset", only_alpha):
        for url in urls:
            response = client.get(url)
            html = response.json()["html"] if url.endswith("choose/") else response.content.decode()
            assert "Alpha lecture" in html and "Beta lecture" not in html, url


# --- the page contract ----------------------------------------------------------------


@pytest.mark.django_db
def test_videos_are_the_main_video_then_the_body_in_order_once_each(sample_video):
    main, first, second = (make_video(sample_video, title=t) for t in ("Main", "First", "Second"))
    page = make_video_page(main, title="Contract", body=[
        ("video", {"video": first, "caption": ""}),
        ("text", "<p>between</p>"),
        ("video", {"video": main, "caption": "again"}),
        ("video", {"video": second, "caption": ""}),
        ("video", {"video": first, "caption": "again"}),
    ])
    from cms.models import VideoPage

    page = VideoPage.objects.get(pk=page.pk)
    assert [v.title for v in page.videos()] == ["Main", "First", "Second"]
    assert page.video_ids() == [main.pk, first.pk, second.pk]


# --- storage: how nginx reaches a file -------------------------------------------------


def test_local_storage_gives_nginx_the_files_path(tmp_path):
    storage = PrivateFileSystemStorage(location=str(tmp_path / "private"))
    name = storage.save("videos/ab/" + "ab" * 16 + "/original.mp4", ContentFile(b"moov bytes"))
    assert storage.nginx_root() == str(tmp_path / "private")
    for method in ("GET", "HEAD"):
        source = storage.nginx_source(name, http_method=method)
        assert source == NginxSource(path=str(tmp_path / "private" / name)) and source.url is None
        assert Path(source.path).read_bytes() == b"moov bytes"
        assert Path(source.path).is_relative_to(storage.nginx_root())


@pytest.mark.django_db
def test_the_configured_private_storage_answers_through_the_models_field(settings, sample_video):
    video = make_video(sample_video)
    source = video.file.storage.nginx_source(video.file.name)
    assert Path(source.path) == Path(settings.PRIVATE_MEDIA_ROOT).resolve() / video.file.name
    assert Path(source.path).read_bytes() == Path(sample_video).read_bytes()
    assert private_storage().nginx_root() == str(Path(settings.PRIVATE_MEDIA_ROOT).resolve())


def test_the_models_storage_follows_a_changed_storages_setting(settings, tmp_path):
    """The FileField's storage is looked up on use, so it is never stale (and never read at import)."""
    settings.STORAGES = {**settings.STORAGES, "private": {
        "BACKEND": "private_video.storage.PrivateFileSystemStorage", "OPTIONS": {"location": str(tmp_path)}}}
    assert Video._meta.get_field("file").storage.nginx_root() == str(tmp_path)


S3_OPTIONS = dict(bucket_name="private-video", endpoint_url="http://127.0.0.1:9000", region_name="us-east-1",
                  access_key="key-id", secret_key="secret", signature_version="s3v4", querystring_expire=60)
KEY = "videos/ab/" + "ab" * 16 + "/original.mp4"


def _query(url):
    from urllib.parse import parse_qs, urlsplit

    return {k: v[0] for k, v in parse_qs(urlsplit(url).query).items()}


def test_s3_storage_presigns_per_method_for_nginx_only():
    storage = PrivateS3Storage(**S3_OPTIONS)
    assert storage.nginx_root() is None
    get = storage.nginx_source(KEY)
    head = storage.nginx_source(KEY, http_method="HEAD")
    assert get.path is None and get.url.startswith(f"http://127.0.0.1:9000/private-video/{KEY}?")
    # The signature covers the method: the HEAD URL is a different one.
    assert _query(get.url)["X-Amz-Signature"] != _query(head.url)["X-Amz-Signature"]
    assert _query(get.url)["X-Amz-Expires"] == "60" and _query(head.url)["X-Amz-Expires"] == "60"
    assert _query(storage.nginx_source(KEY, expire=15).url)["X-Amz-Expires"] == "15"
    with pytest.raises(ValueError):
        storage.nginx_source(KEY, http_method="PUT")
    with pytest.raises(NotImplementedError):
        storage.url(KEY)


@pytest.mark.parametrize("options", [{"custom_domain": "cdn.example.com"}, {"querystring_auth": False}])
def test_s3_storage_refuses_to_hand_nginx_an_unsigned_url(options):
    with pytest.raises(ImproperlyConfigured):
        PrivateS3Storage(**{**S3_OPTIONS, **options}).nginx_source(KEY)


@pytest.mark.integration
def test_presigned_urls_open_only_what_they_were_signed_for(s3_server):
    """Against s3rver, which checks presigned (SigV2) signatures: the GET URL
    reads the bytes, the HEAD URL answers HEAD, neither works for the other
    method, and an expired one works for nothing."""
    from .s3rver_storage import SigV2PresignS3Storage

    storage = SigV2PresignS3Storage(
        bucket_name=S3_BUCKET, endpoint_url=s3_server["AWS_S3_ENDPOINT_URL"], region_name="us-east-1",
        access_key=s3_server["AWS_ACCESS_KEY_ID"], secret_key=s3_server["AWS_SECRET_ACCESS_KEY"],
        signature_version="s3v4", file_overwrite=False,
    )
    name = storage.save("videos/cd/" + "cd" * 16 + "/original.mp4", ContentFile(b"0123456789" * 100))
    get = storage.nginx_source(name, http_method="GET", expire=30).url
    head = storage.nginx_source(name, http_method="HEAD", expire=30).url
    assert get != head

    response = requests.get(get, timeout=10)
    assert response.status_code == 200 and response.content == b"0123456789" * 100
    response = requests.head(head, timeout=10)
    assert response.status_code == 200 and response.headers["Content-Length"] == "1000"
    assert requests.get(head, timeout=10).status_code == 403
    assert requests.head(get, timeout=10).status_code == 403

    expired = storage.nginx_source(name, expire=1).url
    time.sleep(2.5)
    assert requests.get(expired, timeout=10).status_code == 403


@pytest.mark.django_db
def test_a_video_block_renders_with_its_template(client, sample_video):
    """VideoBlock's Meta: its own template (a figure with the player and the caption)."""
    video = make_video(sample_video, title="Block clip")
    page = make_video_page(None, title="Block page", body=[("video", {"video": video, "caption": "Hello there"})])
    html = client.get(page.url).content.decode()
    figure = html[html.index('<figure class="video-block">'):]
    figure = figure[:figure.index("</figure>")]
    assert "<figcaption>Hello there</figcaption>" in figure
    assert f"/{video.pk}/" in figure  # the player points at this video
