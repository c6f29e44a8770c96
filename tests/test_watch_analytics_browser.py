"""Watch analytics in Chromium through the real stack (nginx + gunicorn): a
viewer plays a few seconds, seeks ahead, plays a few more and leaves; the
seconds stored are what the browser's own ``video.played`` said, and the
report's audience curve is 1 exactly there and 0 elsewhere."""

import csv
import io
import time

import pytest
from django.contrib.auth.models import Group
from django.test import Client, override_settings
from django.urls import reverse

from media_access import analytics
from media_access.models import Viewing, ViewerGrant
from transcoding.profiles import Rung
from transcoding.tasks import enqueue_transcode
from transcoding.testmedia import make_test_video

from .browser import chromium_page
from .helpers import make_user, make_video, make_video_page

pytestmark = [
    pytest.mark.browser,
    pytest.mark.integration,
    pytest.mark.django_db(transaction=True, serialized_rollback=True),
]

VIDEO = ".video-player video"


def expected_seconds(ranges, count):
    """The seconds a list of played ranges covers, by the rule the server applies (the middle of each second)."""
    return analytics.bits_to_ranges(analytics.ranges_to_bits(ranges, count))


def close(found, wanted, tolerance=1):
    """Same runs of seconds, each edge within ``tolerance`` seconds."""
    return len(found) == len(wanted) and all(
        abs(a - c) <= tolerance and abs(b - d) <= tolerance for (a, b), (c, d) in zip(found, wanted)
    )


def test_stored_seconds_and_curve_are_what_chromium_played(stack, tmp_path, output_dir):
    clip = make_test_video(tmp_path / "analytics clip.mp4", duration=16, width=160, height=90)
    video = make_video(clip, title="Analytics clip")
    with override_settings(TRANSCODING_LADDER=[Rung(90, 150)], TRANSCODING_SEGMENT_SECONDS=2,
                           TRANSCODING_KEYFRAME_SECONDS=2):
        job = enqueue_transcode(video)
    job.refresh_from_db()
    assert job.status == "ready", job.error
    page_obj = make_video_page(video, title="Analytics page")
    members = Group.objects.create(name="Members")
    ViewerGrant.objects.create(page=page_obj, group=members)
    viewer = make_user("viewer", groups=[members])
    client = Client()
    client.force_login(viewer)
    page_url = stack.url(page_obj.url) + "?player-engine=hlsjs"  # (no database inside Playwright's event loop)

    with chromium_page(output_dir, viewport=(640, 480), session_cookie=client.cookies["sessionid"].value,
                       base_url=stack.base_url) as page:
        page.goto(page_url)
        page.wait_for_function("document.querySelector('.video-player').dataset.engine === 'hlsjs'")
        page.evaluate(f"document.querySelector('{VIDEO}').muted = true")
        page.locator(".video-player__play").click()
        page.wait_for_function(f"document.querySelector('{VIDEO}').currentTime > 2.6", timeout=15_000)
        page.evaluate(f"document.querySelector('{VIDEO}').parentElement.playerInstance.seek(9)")
        page.wait_for_function(f"document.querySelector('{VIDEO}').currentTime > 11.6", timeout=15_000)
        played = page.evaluate(
            f"(() => {{ const p = document.querySelector('{VIDEO}').played; const r = [];"
            " for (let i = 0; i < p.length; i++) r.push([p.start(i), p.end(i)]); return r; })()"
        )
        # Leaving: pagehide → navigator.sendBeacon.
        page.goto(stack.url("/"))

    assert len(played) == 2, played
    count = analytics.seconds_count(video.duration)
    wanted = expected_seconds(played, count)
    assert wanted[0][0] == 0 and wanted[1][0] == 9, wanted

    # The beacon is asynchronous: wait for the one that has everything played.
    deadline = time.monotonic() + 10
    stored = []
    while time.monotonic() < deadline:
        viewing = Viewing.objects.filter(video=video).first()
        stored = analytics.bits_to_ranges(analytics.from_bytes(viewing.seconds)) if viewing else []
        if stored and close(stored, wanted):
            break
        time.sleep(0.2)
    assert close(stored, wanted), (stored, wanted, played, stack.log_text("gunicorn")[-2000:])
    assert Viewing.objects.filter(video=video).count() == 1
    viewing = Viewing.objects.get(video=video)
    assert viewing.user == viewer and viewing.page_id == page_obj.pk

    # The report: the audience curve is 1 on every stored second and 0 elsewhere.
    admin = Client()
    admin.force_login(make_user("boss", superuser=True))
    url = reverse("media_access_reports:video_analytics", args=[video.pk])
    curve = list(csv.reader(io.StringIO(admin.get(url, {"format": "csv", "data": "curve"}).content.decode())))[1:]
    ones = {second for start, stop in stored for second in range(start, stop)}
    assert len(curve) == count
    assert [int(row[1]) for row in curve] == [1 if second in ones else 0 for second in range(count)]
    html = admin.get(url).content.decode()
    assert "<svg" in html and "data-audience-curve" in html
    assert 'data-viewer="viewer"' in html and "data-unique-viewers>1<" in html
