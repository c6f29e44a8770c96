"""A video's processing status, as the admin shows it."""

from dataclasses import dataclass


@dataclass(frozen=True)
class VideoStatus:
    code: str
    label: str
    progress: int | None = None
    error: str = ""


def video_status(video):
    # Until a transcode job exists the original is all there is.
    return VideoStatus("uploaded", "Uploaded")
