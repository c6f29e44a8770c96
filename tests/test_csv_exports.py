"""Spreadsheet exports cannot start a formula (private_video.spreadsheets):
the shared CSV cell guard, the library listing's CSV and XLSX, and the
playback report's CSV; also the fixes next to them in review 8: a caption
file pysubs2 cannot read is the editor's error naming the line, and the
chooser's hook narrows the chosen views too."""

import csv
import io
from decimal import Decimal

import pytest
from django.core.files.uploadedfile import SimpleUploadedFile
from django.test import Client
from django.urls import reverse
from openpyxl import load_workbook
from wagtail import hooks
from wagtail.models import Collection

from media_access.models import PlaybackLogEntry
from private_video import captions
from private_video.captions import CaptionError, parse_caption
from private_video.models import Video
from private_video.spreadsheets import FORMULA_STARTS, csv_cell
from private_video.tracks import Caption

from .helpers import collection_group, make_user, make_video


# ---- the cell guard ------------------------------------------------------------------


@pytest.mark.parametrize("start", FORMULA_STARTS)
def test_text_starting_a_formula_gets_an_apostrophe(start):
    assert csv_cell(f"{start}1+1") == f"'{start}1+1"


@pytest.mark.parametrize("value", [0, -3, 2.5, -0.25, Decimal("-1.50"), True])
def test_numbers_stay_numbers(value):
    assert csv_cell(value) is value


@pytest.mark.parametrize(
    "value, expected",
    [(None, ""), ("", ""), ("plain", "plain"), (" =not first", " =not first"), ("a=b", "a=b"),
     ("-3", "'-3")],  # text that only looks like a number is still text
)
def test_other_cells(value, expected):
    assert csv_cell(value) == expected


# ---- the exports ---------------------------------------------------------------------


def _rows(response):
    body = b"".join(response.streaming_content) if response.streaming else response.content
    return list(csv.reader(io.StringIO(body.decode("utf-8-sig"))))


@pytest.fixture
def boss(db):
    user = make_user("boss", superuser=True)
    client = Client()
    client.force_login(user)
    return user, client


@pytest.mark.django_db
def test_listing_csv_guards_text_and_keeps_numbers(boss, sample_video):
    user, client = boss
    video = make_video(sample_video, title="=1+1", user=user)
    Video.objects.filter(pk=video.pk).update(original_filename="+evil.mp4", duration=-1.5, file_size=1234)
    rows = _rows(client.get(reverse("private_video:index"), {"export": "csv"}))
    header, row = rows[0], rows[1]
    assert row[header.index("Title")] == "'=1+1"
    assert row[header.index("Original filename")] == "'+evil.mp4"
    # A number (even a negative one) is written as the number it is.
    assert float(row[2]) == -1.5 and row[3] == "1234"


@pytest.mark.django_db
def test_listing_xlsx_is_wagtails_own_guard_without_apostrophes(boss, sample_video):
    user, client = boss
    make_video(sample_video, title="=1+1", user=user)
    response = client.get(reverse("private_video:index"), {"export": "xlsx"})
    body = b"".join(response.streaming_content) if response.streaming else response.content
    sheet = load_workbook(io.BytesIO(body)).active
    cell = sheet.cell(row=2, column=1)
    assert cell.value == "=1+1" and cell.data_type == "s"


@pytest.mark.django_db
def test_playback_report_csv(boss, sample_video):
    user, client = boss
    video = make_video(sample_video, user=user)
    PlaybackLogEntry.objects.create(
        session="s" * 16, username="@viewer", page_id=1, page_title="\tTab", video_id=video.pk,
        video_title="Plain", rendition="original", allowed=False, reason="-denied",
    )
    header, row = _rows(client.get(reverse("media_access_reports:playback"), {"export": "csv"}))
    assert row[1:] == ["'@viewer", "1", "'\tTab", str(video.pk), "Plain", "original", "False", "'-denied"]


# ---- captions pysubs2 cannot read ---------------------------------------------------------


def test_cue_text_with_two_times_stays_text():
    # pysubs2 takes any line with two times for a timing line: it would have
    # made the text a cue of its own, past the timing checks, or failed.
    srt = b"1\n00:00:01,000 --> 00:00:02,000\nfrom 00:00:05,000 to 00:00:03,000\n"
    vtt, plain = parse_caption(srt)
    assert plain == "from 00:00:05,000 to 00:00:03,000" and vtt.count("-->") == 1
    vtt, plain = parse_caption(b"WEBVTT\n\nid\n00:00:01.000 --> 00:00:02.000\nok\nat :00:01.000 and :00:02.000\n")
    assert plain == "ok\nat :00:01.000 and :00:02.000" and vtt.count("-->") == 1


def test_one_or_three_times_in_cue_text_are_text():
    vtt, plain = parse_caption(b"WEBVTT\n\n00:00:01.000 --> 00:00:02.000\nat 00:01.000, 00:02.000 and 00:03.000\n")
    assert plain == "at 00:01.000, 00:02.000 and 00:03.000"


@pytest.mark.parametrize("error", [ValueError("x"), IndexError("x"), KeyError("x"), TypeError("x")])
def test_any_pysubs2_failure_is_a_caption_error_naming_the_cue(monkeypatch, error):
    real = captions.pysubs2.SSAFile.from_string

    def from_string(text, **kwargs):
        if "bad" in text:
            raise error
        return real(text, **kwargs)

    monkeypatch.setattr(captions.pysubs2.SSAFile, "from_string", staticmethod(from_string))
    data = b"1\n00:00:01,000 --> 00:00:02,000\nfine\n\n2\n00:00:03,000 --> 00:00:04,000\nbad\n"
    with pytest.raises(CaptionError, match="Line 6"):
        parse_caption(data)


def test_pysubs2_reading_another_number_of_cues_is_a_caption_error(monkeypatch):
    real = captions.pysubs2.SSAFile.from_string

    def from_string(text, **kwargs):
        subs = real(text, **kwargs)
        subs.events = subs.events * 2
        return subs

    monkeypatch.setattr(captions.pysubs2.SSAFile, "from_string", staticmethod(from_string))
    with pytest.raises(CaptionError, match="Line 2"):
        parse_caption(b"1\n00:00:01,000 --> 00:00:02,000\nfine\n")


@pytest.mark.django_db
def test_the_upload_form_shows_the_error(sample_video):
    root = Collection.get_first_root_node()
    team = root.add_child(name="Team")
    editor = make_user("editor", groups=[collection_group("Caption editors", team, "add_video", "change_video")])
    video = make_video(sample_video, collection=team)
    client = Client()
    client.force_login(editor)
    response = client.post(
        reverse("private_video:caption_add", args=[video.pk]),
        {"file": SimpleUploadedFile("x.vtt", b"WEBVTT\n\n00:00:01.000 --> 00:00:02.000\nfine\n"
                                    b"at 00:03.000 --> 00:04.000\n", "text/vtt"),
         "language": "en", "kind": "subtitles", "label": "English"},
    )
    assert response.status_code == 200 and "Line 5" in response.content.decode()
    assert not Caption.objects.exists()


# ---- the chooser hook ------------------------------------------------------------------


@pytest.mark.django_db
def test_chosen_views_apply_the_chooser_hook(sample_video):
    root = Collection.get_first_root_node()
    team = root.add_child(name="Team")
    editor = make_user("chooser", groups=[collection_group("Video choosers", team, "choose_video")])
    shown = make_video(sample_video, title="Shown", collection=team)
    hidden = make_video(sample_video, title="Hidden embargoed", collection=team)
    client = Client()
    client.force_login(editor)

    def not_embargoed(queryset, request):
        return queryset.exclude(title__contains="embargoed")

    with hooks.register_temporarily("construct_video_chooser_queryset", not_embargoed):
        assert client.get(reverse("private_video_chooser:chosen", args=[shown.pk])).status_code == 200
        assert client.get(reverse("private_video_chooser:chosen", args=[hidden.pk])).status_code == 404
        multiple = client.get(reverse("private_video_chooser:chosen_multiple"), {"id": [shown.pk, hidden.pk]})
    assert multiple.status_code == 200
    results = multiple.json()["result"]
    assert [str(item["id"]) for item in results] == [str(shown.pk)]
    # Without the hook both may be chosen.
    assert client.get(reverse("private_video_chooser:chosen", args=[hidden.pk])).status_code == 200
