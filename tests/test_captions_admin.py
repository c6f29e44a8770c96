"""Captions in the video library's admin: an editor uploads SRT or WebVTT on
the video's edit view, the file is stored as normalised WebVTT (checked byte
for byte), a bad file is refused with its line number and nothing is stored,
hostile files cannot put markup into a cue, rights are checked per video, the
admin search finds a video by its captions' words, and (the one integration
test) captions, chapters and the poster survive a real re-run of the transcode."""

from pathlib import Path

import pytest
from django.conf import settings
from django.core.files.uploadedfile import SimpleUploadedFile
from django.test import override_settings
from django.urls import reverse
from wagtail.models import Collection, ModelLogEntry

from private_video.captions import CaptionError, caption_cues, import_caption, parse_caption
from private_video.tracks import Caption

from .helpers import collection_group, make_user, make_video

pytestmark = pytest.mark.django_db

SRT = (
    "1\n"
    "00:00:00,500 --> 00:00:01,800\n"
    "Café déjà vu, señor\n"
    "\n"
    "2\n"
    "00:00:02,000 --> 00:00:03,000\n"
    "東京で会いましょう 🎉\n"
    "مرحبا بالعالم\n"
).encode("utf-8")

SRT_AS_VTT = (
    "WEBVTT\n"
    "\n"
    "1\n"
    "00:00:00.500 --> 00:00:01.800\n"
    "Café déjà vu, señor\n"
    "\n"
    "2\n"
    "00:00:02.000 --> 00:00:03.000\n"
    "東京で会いましょう 🎉\n"
    "مرحبا بالعالم\n"
).encode("utf-8")


def stored(name):
    return Path(settings.PRIVATE_MEDIA_ROOT, name)


def srt_upload(data=SRT, name="talk.fr.srt"):
    return SimpleUploadedFile(name, data, "application/x-subrip")


@pytest.fixture
def video(sample_video):
    return make_video(sample_video, title="Lecture")


def add_url(video):
    return reverse("private_video:caption_add", args=[video.pk])


def post_caption(client, video, data=SRT, name="talk.fr.srt", **fields):
    payload = {"language": "fr", "kind": "subtitles", "label": "Français", "file": srt_upload(data, name)}
    payload.update(fields)
    return client.post(add_url(video), payload)


# --- upload, replace, delete --------------------------------------------------------------


def test_editor_uploads_srt_stored_as_webvtt_and_logged(admin_client, video, django_capture_on_commit_callbacks):
    with django_capture_on_commit_callbacks(execute=True):
        response = post_caption(admin_client, video, is_default="on")
    assert response.status_code == 302 and response.url == video.get_admin_edit_url()
    caption = Caption.objects.get(video=video)
    assert (caption.language, caption.kind, caption.label, caption.is_default) == ("fr", "subtitles", "Français", True)
    assert caption.file.name.startswith(f"videos/{video.key.hex[:2]}/{video.key.hex}/renditions/captions-")
    assert stored(caption.file.name).read_bytes() == SRT_AS_VTT
    assert caption.text == "Café déjà vu, señor\n東京で会いましょう 🎉\nمرحبا بالعالم"
    assert caption_cues(caption) == [
        (0.5, 1.8, "Café déjà vu, señor"),
        (2.0, 3.0, "東京で会いましょう 🎉\nمرحبا بالعالم"),
    ]
    entry = ModelLogEntry.objects.get(action="private_video.caption_add")
    assert entry.object_id == str(video.pk) and entry.user == admin_client.user
    assert entry.data["language"] == "fr"
    history = admin_client.get(reverse("private_video:history", args=[video.pk]))
    assert history.status_code == 200 and "Added a caption track" in history.content.decode()
    # The edit view lists the track with its edit and delete links.
    page = admin_client.get(video.get_admin_edit_url()).content.decode()
    assert "Français" in page
    assert reverse("private_video:caption_delete", args=[video.pk, caption.pk]) in page


def test_malformed_file_is_refused_with_its_line_number_and_nothing_is_stored(admin_client, video):
    bad = SRT.replace(b"00:00:02,000 --> 00:00:03,000", b"00:00:02,000 -> 00:00:03,000")
    before = sorted(p for p in Path(settings.PRIVATE_MEDIA_ROOT).rglob("*") if p.is_file())
    response = post_caption(admin_client, video, data=bad)
    assert response.status_code == 200
    html = response.content.decode()
    assert "Line 6: a cue needs a timing line" in html
    assert not Caption.objects.exists()
    assert sorted(p for p in Path(settings.PRIVATE_MEDIA_ROOT).rglob("*") if p.is_file()) == before
    assert not ModelLogEntry.objects.filter(action__startswith="private_video.caption").exists()


@pytest.mark.parametrize(
    "data, message",
    [
        (SRT.replace(b"00:00:02,000 --> 00:00:03,000", b"00:00:03,000 --> 00:00:02,000"),
         "Line 6: the cue ends (0:02) before it starts (0:03)."),
        (SRT.replace(b"00:00:02,000 --> 00:00:03,000", b"00:00:02,000 --> 00:00:02,000"),
         "Line 6: the cue ends (0:02) before it starts (0:02)."),
        (SRT.replace(b"00:00:00,500", b"-00:00:00,500"), "Line 2: this timing cannot be read"),
        (SRT.replace(b"00:00:02,000", b"00:00:75,000"), "Line 6: minutes and seconds go up to 59."),
        (SRT.replace(b"\n\n2\n", b"\n2\n"), "Line 5: cue text cannot contain"),
        (b"WEBVTT\n\nhello\nworld\n", "Line 4: a cue needs a timing line"),
        (b"not captions at all\n", "Line 1: this is neither an SRT nor a WebVTT file"),
        (bytes(range(256)) * 20, "This is not a text file"),
        (b"\x89PNG\r\n\x1a\n" + b"\x00" * 100, "This is not a text file"),
        (SRT.replace("señor".encode(), b"se\x81\x8d\x90or"), "Line 3: this file is not UTF-8 text"),
        (SRT.replace(b"vu", b"v\x07u"), "Line 3: this file holds control characters"),
        (b"1\n00:00:01,000 --> 00:00:02,000\n<b></b>\n", "The file's cues have no text."),
        # pysubs2's tag handling is quadratic in a cue's length: long or tag-heavy cues are refused first.
        (b"1\n00:00:01,000 --> 00:00:02,000\nok\n\n2\n00:00:03,000 --> 00:00:04,000\n" + b"<a" * 40_000,
         "Line 7: this cue has 40000 “<” and “{”; a cue may have 40."),
        (b"1\n00:00:01,000 --> 00:00:02,000\n" + b"{" * 41, "Line 3: this cue has 41"),
        (b"1\n00:00:01,000 --> 00:00:02,000\n" + b"x" * 600 + b"\n" + b"y" * 600,
         "Line 3: this cue has 1,200 characters of text; a cue may have 1,000."),
    ],
)
def test_bad_files_get_a_clear_message(data, message):
    with pytest.raises(CaptionError) as raised:
        parse_caption(data)
    assert str(raised.value).startswith(message), str(raised.value)


def test_a_big_file_of_tag_heavy_cues_parses_in_bounded_time():
    import time

    cue = "00:00:01,000 --> 00:00:02,000\n" + "{\\i1}<" * 6 + "<i>a</i> " * 3 + "x" * 900 + "\n\n"
    data = (cue * (2 * 1024 * 1024 // len(cue) - 1)).encode()
    started = time.monotonic()
    vtt, _ = parse_caption(data)
    # Seconds on a slow machine; without the per-cue limits such a file took minutes.
    assert time.monotonic() - started < 20
    assert vtt.count("-->") == data.count(b"-->")


def test_size_limit_is_checked_on_the_form_before_parsing(admin_client, video):
    with override_settings(PRIVATE_VIDEO_MAX_CAPTION_SIZE=1000):
        response = post_caption(admin_client, video, data=SRT * 20)
        assert response.status_code == 200
        assert "the largest caption file is 1,000 bytes" in response.content.decode()
        with pytest.raises(CaptionError, match="largest caption file is 1,000 bytes"):
            import_caption(video, SRT * 20, "x.srt", language="fr", kind="subtitles", label="F")
    assert not Caption.objects.exists()


def test_markup_in_cues_cannot_reach_the_player(video):
    hostile = (
        "WEBVTT\n\n"
        "00:00:01.000 --> 00:00:02.000\n"
        "<script>alert(1)</script><img src=x onerror=alert(2)> <i>fine</i> <c.red>x</c> a &lt;b&gt; b & c\n"
        "\n"
        "00:00:01.500 --> 00:00:03.000\n"
        "overlapping <b>cue</b> </i></v><u>under</u> \"quotes\" <v Bob>Bob speaks</v> 1 < 2 > 0\n"
    ).encode()
    caption = import_caption(video, hostile, "x.vtt", language="en", kind="captions", label="English")
    vtt = stored(caption.file.name).read_text()
    assert vtt == (
        "WEBVTT\n\n"
        "1\n00:00:01.000 --> 00:00:02.000\n"
        "alert(1) <i>fine</i> x a &lt;b&gt; b &amp; c\n\n"
        "2\n00:00:01.500 --> 00:00:03.000\n"
        "overlapping cue <u>under</u> \"quotes\" Bob speaks 1 &lt; 2 &gt; 0\n"
    )
    # No tag other than WebVTT's <i>, <u>, <b> survives in a cue.
    import re

    assert set(re.findall(r"</?([a-zA-Z.]+)", vtt)) <= {"i", "u", "b"}
    assert caption.text.splitlines()[0] == "alert(1) fine x a <b> b & c"


@pytest.mark.parametrize(
    "data",
    [
        b"\xef\xbb\xbf" + SRT,  # UTF-8 with a BOM
        SRT.replace(b"\n", b"\r\n"),  # Windows line ends
        "\ufeff".encode("utf-16-le") + SRT.decode().encode("utf-16-le"),  # UTF-16 with its BOM
    ],
)
def test_encodings_and_line_ends_give_the_same_webvtt(video, data):
    caption = import_caption(video, data, "x.srt", language="fr", kind="subtitles", label="F")
    assert stored(caption.file.name).read_bytes() == SRT_AS_VTT


def test_windows_1252_latin_text_is_read(video):
    data = "1\n00:00:01,000 --> 00:00:02,000\nDéjà vu – «oui»\n".encode("cp1252")
    caption = import_caption(video, data, "x.srt", language="fr", kind="subtitles", label="F")
    assert caption.text == "Déjà vu – «oui»"


def test_replace_gets_a_new_file_and_the_old_one_goes_after_commit(admin_client, video,
                                                                   django_capture_on_commit_callbacks):
    with django_capture_on_commit_callbacks(execute=True):
        post_caption(admin_client, video)
    caption = Caption.objects.get()
    old = caption.file.name
    new_srt = b"1\n00:00:01,000 --> 00:00:02,000\nBonjour\n"
    url = reverse("private_video:caption_edit", args=[video.pk, caption.pk])
    form_page = admin_client.get(url)
    assert form_page.status_code == 200 and 'value="Français"' in form_page.content.decode()
    with django_capture_on_commit_callbacks(execute=True):
        response = admin_client.post(url, {"language": "fr-CA", "kind": "captions", "label": "Québec",
                                           "file": srt_upload(new_srt, "new.srt")})
    assert response.status_code == 302
    caption.refresh_from_db()
    assert caption.file.name != old and not stored(old).exists()
    assert stored(caption.file.name).read_bytes() == b"WEBVTT\n\n1\n00:00:01.000 --> 00:00:02.000\nBonjour\n"
    assert (caption.language, caption.kind, caption.label, caption.text) == ("fr-CA", "captions", "Québec", "Bonjour")
    assert ModelLogEntry.objects.filter(action="private_video.caption_change").count() == 1
    # A bad replacement keeps the current file.
    current = caption.file.name
    response = admin_client.post(url, {"language": "fr-CA", "kind": "captions", "label": "Québec",
                                       "file": srt_upload(b"1\n00:00:01,000 -> 00:00:02,000\nx\n\n2\n00:00:03,000 --> 00:00:04,000\ny\n",
                                                          "bad.srt")})
    assert response.status_code == 200 and "Line 2:" in response.content.decode()
    caption.refresh_from_db()
    assert caption.file.name == current and stored(current).exists()


def test_labels_only_change_without_a_file(admin_client, video):
    post_caption(admin_client, video)
    caption = Caption.objects.get()
    name = caption.file.name
    url = reverse("private_video:caption_edit", args=[video.pk, caption.pk])
    response = admin_client.post(url, {"language": "fr", "kind": "subtitles", "label": "French"})
    assert response.status_code == 302
    caption.refresh_from_db()
    assert caption.label == "French" and caption.file.name == name


def test_delete_removes_the_row_and_the_file_after_commit(admin_client, video, django_capture_on_commit_callbacks):
    post_caption(admin_client, video)
    caption = Caption.objects.get()
    url = reverse("private_video:caption_delete", args=[video.pk, caption.pk])
    assert admin_client.get(url).status_code == 200
    assert Caption.objects.exists(), "a GET deletes nothing"
    with django_capture_on_commit_callbacks(execute=True):
        response = admin_client.post(url)
    assert response.status_code == 302
    assert not Caption.objects.exists() and not stored(caption.file.name).exists()
    assert ModelLogEntry.objects.filter(action="private_video.caption_delete", object_id=str(video.pk)).exists()


def test_one_default_track_and_one_track_per_language_and_kind(admin_client, video):
    post_caption(admin_client, video, is_default="on")
    post_caption(admin_client, video, language="en", label="English", is_default="on")
    assert list(Caption.objects.filter(is_default=True).values_list("language", flat=True)) == ["en"]
    response = post_caption(admin_client, video, label="Encore")
    assert response.status_code == 200
    assert "already has a Subtitles track in fr" in response.content.decode()
    assert Caption.objects.count() == 2


@pytest.mark.parametrize(
    "fields, message",
    [
        ({"language": "fr\" onload"}, "is not a language tag"),
        ({"label": 'Fr",URI="evil.m3u8'}, "without quotes or line breaks"),
        ({"kind": "chapters"}, "Select a valid choice"),
    ],
)
def test_track_fields_cannot_inject_into_playlists(admin_client, video, fields, message):
    response = post_caption(admin_client, video, **fields)
    assert response.status_code == 200 and message in response.content.decode()
    assert not Caption.objects.exists()


# --- rights ----------------------------------------------------------------------------------


@pytest.fixture
def two_collections():
    root = Collection.get_first_root_node()
    return root.add_child(name="Mine"), root.add_child(name="Theirs")


def test_another_collections_video_and_captions_are_404(client, sample_video, two_collections):
    mine, theirs = two_collections
    editor = make_user("ed", groups=[collection_group("Mine editors", mine, "add_video", "change_video")])
    own = make_video(sample_video, title="Own", collection=mine)
    other = make_video(sample_video, title="Other", collection=theirs)
    caption = import_caption(other, SRT, "x.srt", language="fr", kind="subtitles", label="F")
    name = caption.file.name
    client.force_login(editor)
    assert client.get(add_url(own)).status_code == 200
    urls = [
        add_url(other),
        reverse("private_video:caption_edit", args=[other.pk, caption.pk]),
        reverse("private_video:caption_delete", args=[other.pk, caption.pk]),
        # Another video's caption under a video the editor may change.
        reverse("private_video:caption_edit", args=[own.pk, caption.pk]),
        reverse("private_video:caption_delete", args=[own.pk, caption.pk]),
    ]
    for url in urls:
        assert client.get(url).status_code == 404, url
        response = client.post(url, {"language": "de", "kind": "subtitles", "label": "D", "file": srt_upload()})
        assert response.status_code == 404, url
    caption.refresh_from_db()
    assert (caption.language, caption.file.name) == ("fr", name) and stored(name).exists()
    assert Caption.objects.count() == 1


def test_no_video_rights_is_403(client, video):
    from django.contrib.auth.models import Group, Permission

    group = Group.objects.create(name="Admin only")
    group.permissions.add(Permission.objects.get(codename="access_admin"))
    client.force_login(make_user("nobody", groups=[group]))
    for response in (client.get(add_url(video)), post_caption(client, video)):
        assert response.status_code == 403 and b"no rights on videos" in response.content
    assert not Caption.objects.exists()


# --- search ----------------------------------------------------------------------------------


def test_admin_search_finds_a_video_by_its_captions(admin_client, sample_video):
    lecture = make_video(sample_video, title="Lecture one")
    other = make_video(sample_video, title="Lecture two")
    import_caption(lecture, SRT, "x.srt", language="fr", kind="subtitles", label="F")
    import_caption(lecture, SRT, "x.srt", language="fr", kind="captions", label="F (CC)")
    import_caption(other, b"1\n00:00:01,000 --> 00:00:02,000\nNothing here\n", "y.srt",
                   language="en", kind="subtitles", label="E")
    response = admin_client.get(reverse("private_video:index"), {"q": "señor"})
    assert response.status_code == 200
    listed = list(response.context["object_list"])
    assert listed == [lecture], "found once, though two of its tracks match"
    response = admin_client.get(reverse("private_video:index"), {"q": "会いましょう"})
    assert list(response.context["object_list"]) == [lecture]
    assert list(admin_client.get(reverse("private_video:index"), {"q": "zebra"}).context["object_list"]) == []


# --- a re-run of the transcode keeps them (integration) ----------------------------------------

DB_TASKS = {
    "default": {"BACKEND": "django_tasks.backends.immediate.ImmediateBackend"},
    "transcoding": {"BACKEND": "django_tasks_db.DatabaseBackend", "QUEUES": []},
}


@pytest.fixture
def worker_stack(tmp_path_factory, stack_database_url, static_root):
    from .conftest import _start_stack

    stack = _start_stack(tmp_path_factory, stack_database_url, static_root, with_worker=True)
    yield stack
    stack.stop()


@pytest.mark.integration
@pytest.mark.django_db(transaction=True, serialized_rollback=True)
def test_captions_chapters_and_poster_survive_a_rerun(worker_stack, sample_video):
    import time

    from private_video.captions import set_chapters, set_poster_frame
    from transcoding.models import RetiredFile, TranscodeJob
    from transcoding.publish import delete_retired_files
    from transcoding.tasks import rerun

    from .helpers import wait_for_job

    with override_settings(TRANSCODING_AUTO_ENQUEUE=True, TASKS=DB_TASKS):
        video = make_video(sample_video, title="Re-run")
    first = wait_for_job(video, worker_stack)
    caption = import_caption(video, SRT, "talk.srt", language="fr", kind="subtitles", label="Français")
    set_chapters(video, [(0, "Intro"), (2, "End")])
    set_poster_frame(video, 1.0)
    kept = {caption.file.name: SRT_AS_VTT, video.poster_file.name: stored(video.poster_file.name).read_bytes()}
    old_renditions = set(video.renditions.values_list("file", flat=True))
    assert old_renditions

    with override_settings(TASKS=DB_TASKS):
        job = rerun(video)
    deadline = time.monotonic() + 120
    while TranscodeJob.objects.get(pk=job.pk).status not in ("ready", "failed"):
        assert time.monotonic() < deadline, worker_stack.log_text("transcoder")[-3000:]
        time.sleep(0.3)
    job.refresh_from_db()
    assert job.status == "ready" and job.pk != first.pk, job.error
    new_renditions = set(video.renditions.values_list("file", flat=True))
    assert new_renditions and new_renditions.isdisjoint(old_renditions), "the re-run published a new set"
    # Even once the replaced set's grace period is over and its files are gone.
    RetiredFile.objects.update(delete_after=job.finished_at)
    assert delete_retired_files() >= len(old_renditions)
    assert not any(stored(name).exists() for name in old_renditions)
    video.refresh_from_db()
    caption.refresh_from_db()
    assert caption.file.name in kept and video.poster_file.name in kept
    for name, data in kept.items():
        assert stored(name).read_bytes() == data, name
    assert list(video.chapters.values_list("start", "title")) == [(0.0, "Intro"), (2.0, "End")]
