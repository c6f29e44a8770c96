"""Hostile review 9: the changes since e7bee24 (the page as stored, the
revert guard, the Viewers tab's username field, the upload gate, the CSV
guard, caption text, analytics, Cache-Control on video pages, transcoding).

Tests that are not marked "Passes:" in their docstring failed when written:
each shows one defect. The "Passes:" ones pin subtle behaviour that held."""

import json

import pytest
from django.core.files.uploadedfile import SimpleUploadedFile
from django.urls import reverse
from wagtail.models import Collection

from media_access import published
from media_access.models import ViewerGrant
from private_video.tracks import Caption
from tests.helpers import collection_group, home_page, make_user, make_video, make_video_page
from tests.test_review8_attacks import signed_in, world  # noqa: F401 (world: the fixture)

pytestmark = pytest.mark.django_db


def _page_editor(*extra_groups):
    from django.contrib.auth.models import Group, Permission
    from wagtail.models import GroupPagePermission

    home = home_page()
    page_editors = Group.objects.create(name="Page editors")
    page_editors.permissions.add(Permission.objects.get(codename="access_admin"))
    for permission_type in ("add", "change", "publish"):
        GroupPagePermission.objects.create(
            group=page_editors, page=home, permission=Permission.objects.get(codename=f"{permission_type}_page"))
    return make_user("page-editor", groups=[page_editors, *extra_groups])


def _edit_data(page, video, grants, initial=0):
    from wagtail.test.utils.form_data import inline_formset, nested_form_data, rich_text, streamfield

    return nested_form_data({
        "title": page.title, "slug": page.slug, "video": video.pk if video else "", "intro": rich_text(""),
        "body": streamfield([]), "comments": inline_formset([]),
        "viewer_grants": inline_formset(grants, initial=initial),
    })


# ---- the Viewers tab's username field (media_access/widgets.py) -----------------------------


def test_a_page_editor_cannot_read_usernames_by_typing_user_ids(world):
    """UsernameInput.value_from_datadict hands any text that is no username
    to the ModelChoiceField as it was typed, and the field takes a digit
    string as a primary key; format_value then shows that pk's username back.
    So a page editor types 1, 2, 3, ... in a grant row, submits with any
    other error (or saves), and the re-rendered form shows every account's
    username in value="..." -- the user directory the widget was meant to
    hide (review 8). The grant also names an account the editor never named."""
    page_editor = _page_editor()
    ceo = make_user("ceo-private-account")
    page = make_video_page(world.video_a, title="Launch")
    url = reverse("wagtailadmin_pages:edit", args=[page.pk])
    data = _edit_data(page, world.video_a, [{"user": str(ceo.pk), "group": "", "expires_at": ""}])
    data["title"] = ""  # an error elsewhere: nothing is saved, the form comes back
    response = signed_in(page_editor).post(url, data)
    assert response.status_code == 200
    assert "ceo-private-account" not in response.content.decode()


@pytest.mark.parametrize("typed", ["9" * 30, "\u0661\u0662"])
def test_an_odd_digit_string_in_the_username_field_is_a_form_error(world, typed):
    """Passes: a 30-digit "username" (past SQLite's integer) and Arabic-Indic
    digits (str.isdigit() is True, int() reads them) are form errors, not a
    500 nor a grant to user 12."""
    page_editor = _page_editor()
    page = make_video_page(world.video_a, title="Launch")
    url = reverse("wagtailadmin_pages:edit", args=[page.pk])
    data = _edit_data(page, world.video_a, [{"user": typed, "group": "", "expires_at": ""}])
    data["action-publish"] = "action-publish"
    response = signed_in(page_editor).post(url, data)
    assert response.status_code == 200, response.status_code
    assert not ViewerGrant.objects.exists(), list(ViewerGrant.objects.values())


def test_a_digit_username_names_that_user_not_the_user_with_that_pk(world):
    """Passes: a user whose username is all digits ("42") is found by name
    first, even when another account has pk 42."""
    page_editor = _page_editor()
    page = make_video_page(world.video_a, title="Launch")
    other = make_user("someone-else")
    digits = make_user(str(other.pk))
    assert digits.pk != other.pk
    url = reverse("wagtailadmin_pages:edit", args=[page.pk])
    data = _edit_data(page, world.video_a, [{"user": str(other.pk), "group": "", "expires_at": ""}])
    data["action-publish"] = "action-publish"
    assert signed_in(page_editor).post(url, data).status_code == 302
    assert list(ViewerGrant.objects.values_list("user_id", flat=True)) == [digits.pk]


# ---- download grants carried over to another video -------------------------------------------


def test_a_download_grant_cannot_be_carried_over_to_a_video_the_editor_may_not_change(world, sample_video):
    """A download grant needs change permission on the page's videos
    (page_checks), and "a grant someone allowed made may be kept as it is".
    But "as it is" compares only the grant row, not the videos it applies
    to: an editor with change on collection A gives themselves a download
    grant on a page showing video A (allowed), then swaps the page's video
    for one of collection C, where they may only *choose*. The grant row is
    unchanged, so the form (and the revert hook, which shares _widens) keeps
    it, and the editor downloads the original of a video they may not change."""
    from django.contrib.auth.models import Permission
    from wagtail.models import GroupPagePermission

    c = Collection.get_first_root_node().add_child(name="Choose only C")
    choosers = collection_group("C choosers", c, "choose_video")
    video_c = make_video(sample_video, title="Charlie master", collection=c, user=world.boss)
    world.editor.groups.add(choosers)
    for permission_type in ("add", "change", "publish"):
        GroupPagePermission.objects.create(group=world.group, page=home_page(),
                                           permission=Permission.objects.get(codename=f"{permission_type}_page"))
    page = make_video_page(world.video_a, title="Launch")
    client = signed_in(world.editor)
    url = reverse("wagtailadmin_pages:edit", args=[page.pk])

    data = _edit_data(page, world.video_a, [{"user": world.editor.username, "group": "", "expires_at": "",
                                             "can_download": "on"}])
    data["action-publish"] = "action-publish"
    assert client.post(url, data).status_code == 302
    grant = ViewerGrant.objects.get()
    assert grant.can_download

    data = _edit_data(page, video_c, [{"id": grant.pk, "user": world.editor.username, "group": "",
                                       "expires_at": "", "can_download": "on"}], initial=1)
    data["action-publish"] = "action-publish"
    swapped = client.post(url, data)
    # Refused: the kept grant would reach C, which the editor may not change.
    assert swapped.status_code == 200 and "may not allow downloads" in swapped.content.decode()
    page.refresh_from_db()
    assert page.specific.video_id == world.video_a.pk
    download = client.get(reverse("media_access:download", args=[page.pk, video_c.pk, "original"]))
    assert download.status_code != 200, "the editor downloads C's original through A's grant"
    # Without the download flag the swap is theirs to make.
    data = _edit_data(page, video_c, [{"id": grant.pk, "user": world.editor.username, "group": "",
                                       "expires_at": ""}], initial=1)
    data["action-publish"] = "action-publish"
    assert client.post(url, data).status_code == 302
    assert not ViewerGrant.objects.get().can_download


# ---- caption text (private_video/captions.py) ----------------------------------------------------


KARAOKE = (b"WEBVTT\n\n00:00:01.000 --> 00:00:04.000\n"
           b"<00:00:01.000>Never <00:00:02.000>gonna give\n")


def test_webvtt_karaoke_timestamps_in_cue_text_are_accepted(world):
    """WebVTT allows inline timestamp tags (<00:00:02.000>) in cue text
    (karaoke / roll-up captions). The new "two times in a line" check refuses
    a cue with exactly two of them as "would be read as a timing line" (one
    or three pass), so a valid WebVTT file is an upload error. Its cause is
    pysubs2 reading any line with two times as a timing line: the tags could
    be taken out (or set aside) before pysubs2 reads the file. The same check
    refuses plain cue text such as "from 00:00:01,000 to 00:00:02,000" (SRT)
    or "the 01:00.000 to 02:00.000 slot" (VTT), while three times in a line
    pass: escaping the colons of cue text before pysubs2 and restoring them
    after would accept all of these."""
    client = signed_in(world.editor)
    response = client.post(
        reverse("private_video:caption_add", args=[world.video_a.pk]),
        {"file": SimpleUploadedFile("k.vtt", KARAOKE, "text/vtt"),
         "language": "en", "kind": "subtitles", "label": "English"},
    )
    assert Caption.objects.count() == 1, response.content.decode()[-2000:]


def test_webvtt_inline_timestamp_tags_are_not_shown_as_text():
    """Pre-existing (also at e7bee24). A cue with one inline timestamp tag is accepted, but the tag is
    escaped into the cue text: viewers read "Never &lt;00:00:02.000&gt;gonna"
    as "<00:00:02.000>" on screen and in the transcript. A timestamp tag is
    markup (like <c>, <v>), not text."""
    from private_video.captions import parse_caption

    vtt, text = parse_caption(b"WEBVTT\n\n00:00:01.000 --> 00:00:04.000\nNever <00:00:02.000>gonna give\n")
    assert "00:00:02.000" not in text, text
    assert "&lt;00:00:02.000&gt;" not in vtt, vtt


# ---- Cache-Control on pages holding videos -------------------------------------------------------


def test_an_admin_preview_of_a_video_page_is_not_left_for_a_shared_cache(world):
    """Passes: Wagtail's previews (view_draft here) call serve_preview, not
    serve, so VideoPageMixin.serve's "private, no-store" is not what covers
    them; the admin's own never_cache does (a site that serves previews
    outside /admin/, e.g. wagtail-headless-preview, would not have it)."""
    page = make_video_page(world.video_a, title="Launch")
    response = signed_in(world.boss).get(reverse("wagtailadmin_pages:view_draft", args=[page.pk]))
    assert response.status_code == 200
    cache_control = response.get("Cache-Control", "")
    assert "private" in cache_control or "no-store" in cache_control, dict(response.headers)


def test_the_csv_guard_prefixes_formula_starts_and_leaves_numbers():
    """Passes: the OWASP starts get an apostrophe; numbers stay numbers; text
    that only a person would call a formula (leading space, newline, NUL,
    full-width equals) is left as it is, as spreadsheets read it as text."""
    from decimal import Decimal

    from private_video.spreadsheets import csv_cell

    for text in ("=1+1", "+1", "-1+2", "@SUM(A1)", "\t=1", "\r=1", "=HYPERLINK(\"x\")"):
        assert csv_cell(text) == "'" + text
    for value in (-3, 2.5, Decimal("-1.5"), True):
        assert csv_cell(value) == value
    for text in (" =1+1", "\n=1", "\uff1d1+1", "\x00=1", "a=1"):
        assert csv_cell(text) == text
    assert csv_cell(None) == ""


# ---- a site's check_video_access hook and the object a template passes --------------------------


def test_a_site_hook_sees_the_page_as_stored_not_a_draft_rendered_in_the_admin(world):
    """builtin_decision now decides on the page as stored (review 8), but
    can_watch still hands the site's check_video_access hooks the object the
    template passed: in the admin's view_draft (and revisions_view,
    workflow_preview, the edit view's preview) that is the draft. A hook that
    refuses on the stored page (here: a page whose title marks it locked;
    on a real site a members-only flag) is answered by the draft's fields: a
    page editor clears the flag in a draft, opens view_draft and reads the
    transcript and title the live page refuses them."""
    from wagtail import hooks

    from cms.models import VideoPage
    from media_access.policy import Outcome
    from private_video.captions import import_caption

    secret = "The merger closes on Friday"
    import_caption(world.video_a, f"WEBVTT\n\n00:00:01.000 --> 00:00:02.000\n{secret}\n".encode(), "x.vtt",
                   language="en", kind="subtitles", label="English", is_default=True)
    page_editor = _page_editor()
    page = make_video_page(world.video_a, title="Locked launch")

    def locked(request, page, video):
        return Outcome.FORBIDDEN if page.title.startswith("Locked") else None

    client = signed_in(page_editor)
    with hooks.register_temporarily("check_video_access", locked):
        live = client.get(page.url)
        assert live.status_code == 200 and secret not in live.content.decode()
        draft = VideoPage.objects.get(pk=page.pk)
        draft.title = "Open launch"
        draft.save_revision(user=page_editor)
        response = client.get(reverse("wagtailadmin_pages:view_draft", args=[page.pk]))
    assert response.status_code == 200
    assert secret not in response.content.decode()


# ---- nginx: the upload gate, awkward framings ------------------------------------------------------


def _raw(stack, head, body=b"", timeout=3.0):
    import socket

    with socket.create_connection(("127.0.0.1", stack.port), timeout=timeout) as sock:
        sock.sendall(head.replace("PORT", str(stack.port)).encode() + body)
        try:
            return sock.recv(65536)
        except (TimeoutError, socket.timeout):
            return None


@pytest.mark.integration
@pytest.mark.django_db(transaction=True, serialized_rollback=True)
def test_the_upload_gate_refuses_an_anonymous_body_however_it_is_framed(stack):
    """Passes: GET/HEAD/OPTIONS/PROPFIND with an announced body in every
    framing tried is refused before nginx reads it (403 from the gate, or
    nginx's own 400/405/501), never waited on nor handed to Django."""
    path = "/admin/videos/new/"
    host = "Host: 127.0.0.1:PORT\r\n"
    cases = {
        "cl0+chunked": f"GET {path} HTTP/1.1\r\n{host}Content-Length: 0\r\nTransfer-Encoding: chunked\r\n\r\n",
        "chunked": f"GET {path} HTTP/1.1\r\n{host}Transfer-Encoding: chunked\r\n\r\n",
        "te identity": f"GET {path} HTTP/1.1\r\n{host}Transfer-Encoding: identity\r\nContent-Length: 67108864\r\n\r\n",
        "te gzip,chunked": f"GET {path} HTTP/1.1\r\n{host}Transfer-Encoding: gzip, chunked\r\n\r\n",
        "two lengths": f"GET {path} HTTP/1.1\r\n{host}Content-Length: 0\r\nContent-Length: 67108864\r\n\r\n",
        "http/1.0": f"GET {path} HTTP/1.0\r\n{host}Content-Length: 67108864\r\n\r\n",
        "http/1.0 chunked": f"OPTIONS {path} HTTP/1.0\r\n{host}Transfer-Encoding: chunked\r\n\r\n",
        "lowercase": f"get {path} HTTP/1.1\r\n{host}Content-Length: 67108864\r\n\r\n",
        "propfind": f"PROPFIND {path} HTTP/1.1\r\n{host}Content-Length: 67108864\r\n\r\n",
        "head": f"HEAD {path} HTTP/1.1\r\n{host}Content-Length: 67108864\r\n\r\n",
        "length 00": f"GET {path} HTTP/1.1\r\n{host}Content-Length: 067108864\r\n\r\n",
    }
    answers = {name: _raw(stack, head) for name, head in cases.items()}
    firsts = {name: (answer or b"(nginx waited)").split(b"\r\n", 1)[0].decode() for name, answer in answers.items()}
    print(firsts)
    assert all(first.split(" ")[1:2] and first.split(" ")[1][0] in "45" for first in firsts.values()), firsts
    # And a plain GET still reaches Django (the sign-in redirect).
    plain = _raw(stack, f"GET {path} HTTP/1.1\r\n{host}Connection: close\r\n\r\n")
    assert plain.split(b"\r\n", 1)[0].split(b" ")[1] == b"302", plain[:200]


# ---- transcoding: sound and picture start together -------------------------------------------


@pytest.mark.django_db(transaction=True, serialized_rollback=True)
def test_sound_that_starts_before_the_picture_keeps_its_place(media_dir):
    """Passes: a source whose sound starts 0.54 s before its first picture
    (an MKV; camera, OBS and TS captures start streams apart) comes out with
    sound and picture both starting at 0, the picture held from 0 on its
    first frame (89 frames, 3.56 s for 75 source frames), so the picture's
    content keeps its place against the sound (negative composition offsets
    and the MP4's reorder shift do not move it)."""
    import subprocess
    from pathlib import Path

    from django.test import override_settings

    from tests.test_transcoding_ladder import TEST_LADDER, first_sample_time, starts
    from transcoding.tasks import enqueue_transcode
    from transcoding.testmedia import ffprobe_json

    source = media_dir / "sound-first.mkv"
    subprocess.run([
        "ffmpeg", "-nostdin", "-hide_banner", "-loglevel", "error", "-y",
        "-itsoffset", "0.5", "-f", "lavfi", "-i", "testsrc2=size=320x180:rate=25:duration=3",
        "-f", "lavfi", "-i", "sine=frequency=440:sample_rate=48000:duration=3",
        "-map", "0:v", "-map", "1:a", "-c:v", "libx264", "-preset", "veryfast", "-pix_fmt", "yuv420p",
        "-c:a", "aac", str(source)], check=True, timeout=120)
    lead = starts(source)["video"] - starts(source)["audio"]
    assert lead > 0.5, starts(source)

    video = make_video(source, title="Sound first")
    with override_settings(TRANSCODING_LADDER=TEST_LADDER, TRANSCODING_PROGRESSIVE_HEIGHT=144):
        job = enqueue_transcode(video)
    job.refresh_from_db()
    assert job.status == "ready"
    files = {r.name: Path(r.file.path) for r in video.renditions.all()}
    mp4 = starts(files["mp4-144p"])
    assert abs(mp4["video"] - mp4["audio"]) < 0.001, mp4
    assert first_sample_time(files["hls-144p-media"]) == (0, 0)
    shown = next(st for st in ffprobe_json(files["mp4-144p"])["streams"] if st["codec_type"] == "video")
    # The picture runs from 0 to the source's last picture: its first frame is held for the lead.
    assert float(shown["duration"]) == pytest.approx(3 + lead, abs=0.05), shown["duration"]


# ---- legitimate previews still show the player ------------------------------------------------------


def _editor_with_page_rights(world):
    from django.contrib.auth.models import Permission
    from wagtail.models import GroupPagePermission

    for permission_type in ("add", "change", "publish"):
        GroupPagePermission.objects.create(group=world.group, page=home_page(),
                                           permission=Permission.objects.get(codename=f"{permission_type}_page"))
    return world.editor


@pytest.mark.parametrize("how", ["view_draft", "preview_on_edit"])
def test_an_editor_who_may_choose_a_drafts_video_sees_its_player_in_the_preview(world, sample_video, how):
    """Legit use after 18a2daf. view_draft passes: a saved draft's video is
    offered to an editor who may choose it. preview_on_edit FAILS (a
    regression: it passed at e7bee24): in the edit view's live preview
    panel, choosing a video the editor may choose (not yet saved) now shows
    "You do not have access to this video. Ask the page's owner for access."
    -- builtin_decision re-reads the stored page, where the unsaved choice
    is in neither the live content nor the latest revision. (At e7bee24 the
    title and player were shown; its media requests already 404ed, as the
    media views decide on the stored page, so the honest answer is a preview
    message such as "Save a draft to play this video", not a refusal.)"""
    from cms.models import VideoPage

    editor = _editor_with_page_rights(world)
    other = make_video(sample_video, title="Alpha two", collection=world.a, user=world.boss)
    page = make_video_page(world.video_a, title="Launch")
    client = signed_in(editor)
    if how == "view_draft":
        draft = VideoPage.objects.get(pk=page.pk)
        draft.video = other
        draft.save_revision(user=editor)
        response = client.get(reverse("wagtailadmin_pages:view_draft", args=[page.pk]))
        playback = client.get(reverse("media_access:playback", args=[page.pk, other.pk]))
        assert playback.status_code == 200, playback.status_code
    else:
        url = reverse("wagtailadmin_pages:preview_on_edit", args=[page.pk])
        posted = client.post(url, _edit_data(page, other, []))
        assert posted.status_code == 200 and posted.json().get("is_valid"), posted.content[:300]
        response = client.get(url)
    assert response.status_code == 200
    body = response.content.decode()
    assert "You do not have access to this video" not in body, how
    assert "Alpha two" in body, how
    if how == "view_draft":
        assert reverse("media_access:playback", args=[page.pk, other.pk]) in body
    else:
        # Nothing can play an unsaved choice (the media answers decide on
        # the stored page): the player says what to do instead of refusing.
        assert "Save a draft to play" in body


# ---- download grants copied without the form -------------------------------------------------------


def test_copying_a_page_does_not_make_download_grants_for_an_editor_without_change(world, sample_video):
    """The revert guard (0eb2175) treats a download grant coming back without
    the form as one being made; the admin API's copy (and the admin's copy
    view) makes new ones the same way and checks only "choose": a page editor
    who may choose (not change) video C copies a page whose admin-made grant
    lets viewer X download C's original. The copy's grant is a new row the
    editor made: when the admin narrows X's grant on the original to
    viewing, X still downloads the original through the copy."""
    from cms.models import VideoPage

    c = Collection.get_first_root_node().add_child(name="Choose only C")
    choosers = collection_group("C choosers", c, "choose_video")
    video_c = make_video(sample_video, title="Charlie master", collection=c, user=world.boss)
    page_editor = _page_editor(choosers)
    viewer = make_user("viewer-x")
    page = make_video_page(video_c, title="Launch")
    page = VideoPage.objects.get(pk=page.pk)
    page.viewer_grants = [ViewerGrant(user=viewer, can_download=True)]
    page.save_revision(user=world.boss).publish()

    copied = signed_in(page_editor).post(
        f"/admin/api/main/pages/{page.pk}/action/copy/",
        json.dumps({"destination_page_id": home_page().pk, "new_title": "Launch copy",
                    "new_slug": "launch-copy", "keep_live": True}),
        content_type="application/json")
    assert copied.status_code in (200, 201, 403), copied.content[:300]

    # The admin narrows X's grant on the original.
    page = VideoPage.objects.get(pk=page.pk)
    page.viewer_grants = [ViewerGrant(user=viewer, can_download=False)]
    page.save_revision(user=world.boss).publish()
    published.forget()
    x = signed_in(viewer)
    downloads = {
        p.pk: x.get(reverse("media_access:download", args=[p.pk, video_c.pk, "original"])).status_code
        for p in VideoPage.objects.all()
    }
    assert 200 not in downloads.values(), (copied.status_code, downloads,
                                           list(ViewerGrant.objects.values("page_id", "can_download")))
