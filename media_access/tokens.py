"""Short-lived signed URLs for the files of one video's renditions.

nginx checks them with the stock ``secure_link`` module, so a player's many
segment, init-segment, poster, storyboard and caption requests never reach
Python. A token signs an expiry and a per-video path prefix (the video's
``renditions/`` folder): it opens every rendition file of that video and
nothing else (not the original, not another video). Django hands tokens out
only after ``can_watch`` allowed the request (playlists, the playback JSON),
so a revoked viewer stops getting new ones and keeps an old one at most
``MEDIA_ACCESS_TOKEN_LIFETIME`` seconds.

URL shape, matched by the bundled nginx config::

    {MEDIA_ACCESS_TOKEN_URL_PREFIX}<token>/<expires>/<videos/ab/<hex>/renditions/>...<file>

``token`` is nginx's ``secure_link_md5`` of ``"<expires><prefix><viewer> <secret>"``:
the unpadded URL-safe base64 of an MD5 digest. MD5 is what the stock module
offers; the secret keeps it a keyed check, and an expiry bounds its use.

``viewer`` binds a token to one browser: the value of a random cookie
(``MEDIA_ACCESS_VIEWER_COOKIE``, ``pv_viewer``) that the playback JSON and the
playlists set when it is missing (``request_viewer`` / ``remember_viewer``).
The browser sends it with every same-origin media request, and nginx reads it
into the hash (``$cookie_pv_viewer``), so a signed URL copied into another
browser (no cookie, or its own) is a 403 without any Python. It binds to the
browser, not to a person: whoever copies the cookie too can use the URL until
it expires. A token is never issued without a viewer: the empty viewer is what
nginx hashes for a request without the cookie.
"""

import base64
import hashlib
import hmac
import re
import secrets
import time
from dataclasses import dataclass
from urllib.parse import quote

from django.conf import settings
from django.core.exceptions import ImproperlyConfigured

from private_video import layout

from .conf import setting

# What nginx may receive inside a string literal of its config, and long enough to matter.
_SECRET_RE = re.compile(r"^[A-Za-z0-9_-]{32,}$")
_URL_PREFIX_RE = re.compile(r"^/[A-Za-z0-9_-]+/$")
# The rendition folder of one video (private_video.layout).
_PREFIX_RE = re.compile(rf"^{layout.RENDITIONS_PREFIX_PATTERN}$")
# A cookie name nginx can read as $cookie_<name> (no "-": it would end the variable's name).
_COOKIE_NAME_RE = re.compile(r"^[A-Za-z][A-Za-z0-9_]{0,63}$")
# A viewer cookie's value: URL-safe base64 as secrets.token_urlsafe makes it;
# anything else (another charset, too short to be unguessable, too long) is
# never hashed or echoed, and the viewer gets a new one. nginx's map holds the
# same expression (site.conf.template).
VIEWER_PATTERN = r"[A-Za-z0-9_-]{22,64}"
_VIEWER_RE = re.compile(rf"^{VIEWER_PATTERN}$")
# 192 random bits: 32 characters.
_VIEWER_BYTES = 24
# Where a request keeps the viewer it was given (read from the cookie or new).
_REQUEST_ATTRIBUTE = "_media_access_viewer"


def token_secret():
    """``MEDIA_ACCESS_TOKEN_SECRET``, or one derived from SECRET_KEY (never SECRET_KEY itself,
    since it is written into the rendered nginx config)."""
    secret = setting("TOKEN_SECRET")
    if secret:
        if not valid_secret(secret):
            raise ImproperlyConfigured(
                "MEDIA_ACCESS_TOKEN_SECRET must be at least 32 characters of A-Z a-z 0-9 _ -."
            )
        return secret
    return hmac.new(
        settings.SECRET_KEY.encode(), b"media_access.tokens.secure_link", hashlib.sha256
    ).hexdigest()


def valid_secret(secret):
    """Empty (derived from SECRET_KEY) or 32+ characters nginx can hold in a string literal."""
    return secret in ("", None) or (isinstance(secret, str) and bool(_SECRET_RE.match(secret)))


def token_lifetime():
    return int(setting("TOKEN_LIFETIME"))


def valid_url_prefix(prefix):
    return isinstance(prefix, str) and bool(_URL_PREFIX_RE.match(prefix))


def url_prefix():
    prefix = setting("TOKEN_URL_PREFIX")
    if not valid_url_prefix(prefix):
        raise ImproperlyConfigured(
            "MEDIA_ACCESS_TOKEN_URL_PREFIX must look like '/stream/' (one plain path segment)."
        )
    return prefix


def video_prefix(video):
    """The storage folder every rendition of ``video`` lives under."""
    return layout.renditions_prefix(video.key)


def valid_viewer_cookie_name(name):
    return isinstance(name, str) and bool(_COOKIE_NAME_RE.match(name))


def viewer_cookie_name():
    name = setting("VIEWER_COOKIE")
    if not valid_viewer_cookie_name(name):
        raise ImproperlyConfigured(
            "MEDIA_ACCESS_VIEWER_COOKIE must be a letter then up to 63 of A-Z a-z 0-9 _ "
            "(nginx reads it as $cookie_<name>)."
        )
    return name


def valid_viewer(value):
    """A viewer cookie value we could have made (the only kind ever hashed)."""
    return isinstance(value, str) and bool(_VIEWER_RE.match(value))


def new_viewer():
    return secrets.token_urlsafe(_VIEWER_BYTES)


def cookie_viewer(request):
    """The request's viewer cookie when it holds a valid value, else None.

    Read from the raw Cookie header the way nginx reads ``$cookie_<name>``
    (the first cookie of that name, any case, its value as sent), not from
    ``request.COOKIES`` (the last one, unquoted): Django must sign for exactly
    the value nginx will hash, or refuse it as nginx would."""
    name = viewer_cookie_name().lower()
    for part in re.split("[;,]", request.META.get("HTTP_COOKIE", "")):
        key, sep, value = part.partition("=")
        if sep and key.strip().lower() == name:
            value = value.strip()
            return value if valid_viewer(value) else None
    return None


def request_viewer(request):
    """The viewer every token of this response is bound to: the cookie's value,
    or a new one (``remember_viewer`` then sets it on the response). The same
    for every call during one request."""
    viewer = getattr(request, _REQUEST_ATTRIBUTE, None)
    if viewer is None:
        viewer = cookie_viewer(request) or new_viewer()
        setattr(request, _REQUEST_ATTRIBUTE, viewer)
    return viewer


def remember_viewer(request, response):
    """Set the viewer cookie on ``response`` when this request made a new one.

    HttpOnly (page scripts never need it), SameSite=Lax, Secure on HTTPS,
    path "/" (the /stream/ URLs and the playlists), and a browser-session
    cookie: it dies with the browser session; the next playback JSON or
    playlist then sets a new one and signs for it. It changes no caching
    header: these answers are already ``private, no-store`` with ``Vary: Cookie``."""
    viewer = getattr(request, _REQUEST_ATTRIBUTE, None)
    if viewer is not None and viewer != cookie_viewer(request):
        response.set_cookie(
            viewer_cookie_name(), viewer, path="/", secure=request.is_secure(), httponly=True, samesite="Lax",
        )
    return response


def secure_link_token(prefix, expires, viewer, secret=None):
    """nginx's ``secure_link_md5 "$media_expires$media_prefix$media_viewer <secret>"``."""
    digest = hashlib.md5(f"{expires}{prefix}{viewer} {secret or token_secret()}".encode()).digest()
    return base64.urlsafe_b64encode(digest).rstrip(b"=").decode()


@dataclass(frozen=True)
class VideoToken:
    """A grant, for ``lifetime`` seconds, to fetch the rendition files of one
    video from the one browser whose viewer cookie is ``viewer``."""

    prefix: str
    expires: int
    value: str

    @classmethod
    def issue(cls, video, *, viewer, now=None, lifetime=None):
        if not valid_viewer(viewer):
            # Never the empty viewer: nginx hashes that for requests without the cookie.
            raise ValueError("A token is bound to a valid viewer cookie value (tokens.request_viewer).")
        prefix = video_prefix(video)
        expires = int(now if now is not None else time.time()) + (
            lifetime if lifetime is not None else token_lifetime()
        )
        return cls(prefix=prefix, expires=expires, value=secure_link_token(prefix, expires, viewer))

    def url_for(self, storage_name):
        """The signed URL of a stored rendition file (a name from the database)."""
        if not _PREFIX_RE.match(self.prefix) or not storage_name.startswith(self.prefix):
            raise ValueError(f"{storage_name!r} is not below {self.prefix!r}")
        return f"{url_prefix()}{self.value}/{self.expires}/{quote(storage_name)}"

    def as_json(self):
        # The player swaps these into URLs it already has (see frontend/src/player.js).
        return {
            "value": self.value,
            "expires": self.expires,
            "lifetime": token_lifetime(),
            "url_prefix": url_prefix(),
        }
