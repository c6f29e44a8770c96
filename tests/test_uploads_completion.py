"""complete_upload when the check itself cannot run (the probe or the store
unreachable): not a verdict on the file, so nothing is lost and the upload
can be completed again (issue 13: bad input loses nothing)."""

from pathlib import Path

import pytest

from private_video.models import Upload, Video
from private_video.uploads import completion, staging

from .test_uploads_tus import (  # noqa: F401 - fixtures
    create,
    created_upload,
    editor,
    library,
    patch,
    signed_in,
    staging_folder,
)

pytestmark = pytest.mark.django_db


def test_a_probe_that_cannot_run_keeps_the_bytes_and_the_upload_can_be_completed_again(
    editor, library, sample_video, monkeypatch  # noqa: F811
):
    films = library[0]
    data = Path(sample_video).read_bytes()
    client = signed_in(editor)
    location, upload = created_upload(create(client, len(data), filename="outage.mp4", collection=films.pk))

    real_validate = completion.validate_video_upload
    calls = []

    def unreachable(uploaded):
        calls.append(uploaded)
        if len(calls) == 1:
            raise OSError("ffprobe could not be started")
        return real_validate(uploaded)

    monkeypatch.setattr(completion, "validate_video_upload", unreachable)
    response = patch(client, location, 0, data)
    assert response.status_code == 422
    assert "nothing is lost" in response.content.decode()
    upload.refresh_from_db()
    assert upload.state == Upload.State.RECEIVING and upload.video is None
    assert staging.path_for(upload.pk).read_bytes() == data  # every byte kept
    assert Video.objects.count() == 0

    # The client asks again with nothing left to send: the check runs again and the video is made.
    # (Django's test client drops the Content-Type of an empty body; a tus client sends it.)
    again = client.generic(
        "PATCH", location, b"", CONTENT_TYPE="application/offset+octet-stream", CONTENT_LENGTH="0",
        headers={"Tus-Resumable": "1.0.0", "Upload-Offset": str(len(data))},
    )
    assert again.status_code == 204, again.content
    video = Video.objects.get(pk=again["Upload-Video"])
    assert video.file.read() == data
    upload.refresh_from_db()
    assert upload.state == Upload.State.COMPLETE and upload.video == video
    assert len(calls) == 2
