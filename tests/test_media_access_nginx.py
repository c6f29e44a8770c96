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
    assert 'add_header X-Content-Type-Options "nosniff" always;' in private
    for needle in ("video/mp4 mp4", "video/webm webm", "application/vnd.apple.mpegurl m3u8",
                   "video/iso.segment m4s", "text/vtt vtt"):
        assert needle in private
    types = re.search(r"types \{(.*?)\}", private, re.S).group(1)
    assert "text/html" not in types
    assert "default_type application/octet-stream;" in private
    for name, body in blocks.items():
        if name == "^~ /_private/":
            continue
        for directive in re.findall(r"^\s*(?:alias|root)\s+([^;]+);", body, re.M):
            assert not directive.startswith(private_root), (name, directive)
            assert not private_root.startswith(directive.rstrip("/") + "/"), (name, directive)
    # Every alias keeps its trailing slash, and so does its location prefix.
    for name, body in blocks.items():
        for directive in re.findall(r"^\s*alias\s+([^;]+);", body, re.M):
            assert directive.endswith("/") and name.endswith("/"), (name, directive)


def test_accel_prefix_setting_is_rendered_and_validated():
    with override_settings(MEDIA_ACCESS_ACCEL_PREFIX="/_protected/"):
        assert "location ^~ /_protected/ {" in render_nginx_config()
    for bad in ("/_protected", "_protected/", "/a b/", "/x;y/"):
        with override_settings(MEDIA_ACCESS_ACCEL_PREFIX=bad), pytest.raises(ImproperlyConfigured):
            render_nginx_config()
