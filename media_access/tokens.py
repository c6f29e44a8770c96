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

``token`` is nginx's ``secure_link_md5`` of ``"<expires><prefix> <secret>"``:
the unpadded URL-safe base64 of an MD5 digest. MD5 is what the stock module
offers; the secret keeps it a keyed check, and an expiry bounds its use.
"""

import base64
import hashlib
import hmac
import re
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


def secure_link_token(prefix, expires, secret=None):
    digest = hashlib.md5(f"{expires}{prefix} {secret or token_secret()}".encode()).digest()
    return base64.urlsafe_b64encode(digest).rstrip(b"=").decode()


@dataclass(frozen=True)
class VideoToken:
    """A grant, for ``lifetime`` seconds, to fetch the rendition files of one video."""

    prefix: str
    expires: int
    value: str

    @classmethod
    def issue(cls, video, *, now=None, lifetime=None):
        prefix = video_prefix(video)
        expires = int(now if now is not None else time.time()) + (
            lifetime if lifetime is not None else token_lifetime()
        )
        return cls(prefix=prefix, expires=expires, value=secure_link_token(prefix, expires))

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
