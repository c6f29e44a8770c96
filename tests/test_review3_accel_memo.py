"""Review 3, hostile: the X-Accel header memo now copies HttpResponse's header
store (responses.XAccelResponseBuilder). Held: nothing one response gains on
its way out (Vary, cookies, a header a middleware adds) is kept for the next,
and nothing per-request is lost from an answer served from the memo."""

import pytest

from media_access import responses

from .helpers import make_user, make_video, make_video_page
from .test_review2_decisions_memo import url


@pytest.mark.django_db
def test_a_response_from_the_memo_is_its_own(client, sample_video, settings):
    responses._local_headers.clear()
    settings.SESSION_SAVE_EVERY_REQUEST = True
    client.force_login(make_user("memo-own", superuser=True))
    video = make_video(sample_video, title="Own")
    page = make_video_page(video, title="Own page")
    path = url(page, video)
    first = client.get(path)
    assert first.status_code == 200 and len(responses._local_headers) == 1
    kept = dict(next(iter(responses._local_headers.values())))
    assert "vary" not in kept and "content-length" not in kept and "set-cookie" not in kept
    first["X-Leak"] = "first"
    first.headers["Vary"] = "Cookie, X-Leak"
    for method in (client.get, client.head, client.get):
        again = method(path)
        assert again.status_code == 200
        assert "X-Leak" not in again and again["Vary"] == "Cookie"
        assert again["Cache-Control"] == "private, no-store"
        assert again["X-Accel-Redirect"] == first["X-Accel-Redirect"]
        assert not again.has_header("Content-Length") or again["Content-Length"] == "0"
        assert settings.SESSION_COOKIE_NAME in again.cookies  # per request, not from the memo
        assert again.headers._store is not next(iter(responses._local_headers.values()))
    assert dict(next(iter(responses._local_headers.values()))) == kept
    responses._local_headers.clear()
