"""Signals media_access sends, like Wagtail's ``document_served``.

``video_served``: a viewer the policy allowed is being answered with a
video's bytes (a watch or download request, each range request of it) or its
HLS master playlist. ``sender`` is the video model; keyword arguments:
``request``, ``page``, ``video``, ``rendition`` (the name asked for),
``user`` (``request.user``, lazy: untouched unless a receiver reads it) and
``decision`` (the policy's ``Decision``). Receivers run in the request, so
keep them quick; the playback log (``access_log``) is one. Refusals are not
sent: nothing is served.
"""

from django.dispatch import Signal

# use_caching: the receivers per sender are looked up once, not on every media request.
video_served = Signal(use_caching=True)


def send_video_served(request, page, video, rendition, decision):
    video_served.send(
        sender=video._meta.model, request=request, page=page, video=video, rendition=rendition,
        user=request.user, decision=decision,
    )
