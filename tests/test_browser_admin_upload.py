"""An editor signs in and uploads videos through the real admin UI in Chromium."""

import pytest
from django.urls import reverse

from private_video.models import Video

from .browser import chromium_page
from .helpers import make_user

pytestmark = [
    pytest.mark.browser,
    pytest.mark.django_db(transaction=True, serialized_rollback=True),
]


def test_editor_uploads_through_admin_ui(stack, sample_video, tmp_path, output_dir):
    make_user("editor", "correct horse battery", superuser=True)
    not_video = tmp_path / "notes.mp4"
    not_video.write_text("meeting notes\n" * 100)

    with chromium_page(output_dir) as page:
        page.goto(stack.url("/admin/login/"))
        page.fill("input[name=username]", "editor")
        page.fill("input[name=password]", "correct horse battery")
        page.click("button[type=submit]")
        page.wait_for_url(stack.url("/admin/"))

        page.click("text=Videos")
        page.wait_for_url(stack.url(reverse("private_video:index")))
        page.goto(stack.url(reverse("private_video:add")))
        page.set_input_files("[data-file-input]", [str(sample_video), str(not_video)])

        items = page.locator(".video-upload__item")
        page.wait_for_function(
            "document.querySelectorAll('.video-upload__item.is-done, .video-upload__item.is-error').length === 2"
        )
        assert items.nth(0).locator("[data-state]").inner_text() == "Uploaded: sample"
        assert items.nth(0).locator("progress").get_attribute("value") == "100"
        refusal = items.nth(1).locator("[data-state]").inner_text()
        assert refusal == (
            "“notes.mp4” is not a video we can read: "
            "Its content is not a media format ffmpeg knows; it is damaged or not a video."
        )
        page.screenshot(path=str(output_dir / "upload.png"))

        page.goto(stack.url(reverse("private_video:index")))
        row = page.locator("table tbody tr", has_text="sample")
        assert row.count() == 1
        assert "0:04" in row.inner_text()
        page.screenshot(path=str(output_dir / "listing.png"))

    assert list(Video.objects.values_list("title", flat=True)) == ["sample"]
