"""The rendered nginx config: private files only behind an internal location."""

import re

import pytest
from django.conf import settings
from django.core.exceptions import ImproperlyConfigured
from django.test import override_settings

from media_access.nginx import render_nginx_config


def locations(config):
    """{location line: body} for the server's top-level locations (no nesting in our template)."""
    found = {}
    for match in re.finditer(r"location\s+([^{]+)\{(.*?)\n    \}", config, re.S):
        found[match.group(1).strip()] = match.group(2)
    return found


def test_private_root_only_behind_an_internal_location():
    config = render_nginx_config()
    private_root = str(settings.PRIVATE_MEDIA_ROOT)
    blocks = locations(config)
    private = blocks["^~ /_private/"]
    assert re.search(r"^\s*internal;", private, re.M)
    assert f"alias {private_root}/;" in private
    assert f"disable_symlinks on from={private_root};" in private
    assert not re.search(r"^\s*expires\s", private, re.M)
    assert 'add_header X-Content-Type-Options "nosniff";' in private
    # Not `always`: a 416 passes the header filter a second time and would get two of each.
    assert not re.search(r"^\s*add_header .* always;", private, re.M)
    for needle in ("video/mp4 mp4", "video/webm webm", "application/vnd.apple.mpegurl m3u8",
                   "video/iso.segment m4s", "text/vtt vtt"):
        assert needle in private
    types = re.search(r"types \{(.*?)\}", private, re.S).group(1)
    assert "text/html" not in types
    assert "default_type application/octet-stream;" in private
    for name, body in blocks.items():
        if name in ("^~ /_private/", SIGNED):
            continue
        for directive in re.findall(r"^\s*(?:alias|root)\s+([^;]+);", body, re.M):
            assert not directive.startswith(private_root), (name, directive)
            assert not private_root.startswith(directive.rstrip("/") + "/"), (name, directive)
    # Every alias keeps its trailing slash, and so does its location prefix
    # (the signed location's alias is built from checked captures instead).
    for name, body in blocks.items():
        if name == SIGNED:
            continue
        for directive in re.findall(r"^\s*alias\s+([^;]+);", body, re.M):
            assert directive.endswith("/") and name.endswith("/"), (name, directive)


# media_access: HLS - the one non-internal location that reaches the private
# root: rendition files of one video, only after nginx checked a signed token.
SIGNED = "^~ /stream/"


def test_signed_location_reaches_only_rendition_folders_after_the_token_check():
    config = render_nginx_config()
    private_root = str(settings.PRIVATE_MEDIA_ROOT)
    body = locations(config)[SIGNED]
    assert "secure_link $media_token,$media_expires;" in body
    # Bound to the browser: the validated viewer cookie is in the hash, and no cookie is a 403.
    assert 'secure_link_md5 "$media_expires$media_prefix$media_viewer ' in body
    assert re.search(r'if \(\$secure_link != "1"\) \{\s*return 403;\s*\}', body)
    assert re.search(r'if \(\$media_viewer = ""\) \{\s*return 403;\s*\}', body)
    assert "(?<media_prefix>videos/[0-9a-f]{2}/[0-9a-f]{32}/renditions/)" in body
    assert r"\.(?:m4s|mp4|jpg|vtt))$" in body  # never playlists, never the original's folder
    assert re.findall(r"^\s*alias\s+([^;]+);", body, re.M) == [f"{private_root}/$media_prefix$media_file"]
    assert f"disable_symlinks on from={private_root};" in body
    # The check precedes the file, and anything else in the prefix is refused.
    assert body.index("secure_link ") < body.index("alias ")
    assert re.search(r"\n        return 403;\s*$", body)


def test_accel_prefix_setting_is_rendered_and_validated():
    with override_settings(MEDIA_ACCESS_ACCEL_PREFIX="/_protected/"):
        assert "location ^~ /_protected/ {" in render_nginx_config()
    for bad in ("/_protected", "_protected/", "/a b/", "/x;y/"):
        with override_settings(MEDIA_ACCESS_ACCEL_PREFIX=bad), pytest.raises(ImproperlyConfigured):
            render_nginx_config()
