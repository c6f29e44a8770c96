"""The one-way layers beyond Python imports (import-linter checks those, in
make test): a lower layer's templates, template tags and URL names never
name a higher layer's. site (cms) -> media_access -> transcoding -> private_video."""

import re
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parent.parent

# What each app may not mention: the template folders, static folders, URL
# namespaces and app labels of the layers above it.
ABOVE = {
    "private_video": ["transcoding", "private_video_transcoding", "media_access", "private_video_access", "cms"],
    "transcoding": ["media_access", "private_video_access", "media_access_reports", "cms"],
    "media_access": ["cms"],
}


def _references(app, names):
    pattern = re.compile(
        r"""(?:["'](?:%s)[/:.][\w/.:-]*["'])|(?:\{%%\s*(?:load|include|extends)[^%%]*\b(?:%s)\b)"""
        % ("|".join(map(re.escape, names)), "|".join(map(re.escape, names)))
    )
    found = []
    for path in sorted((REPO / app).rglob("*")):
        if path.suffix not in (".py", ".html", ".js", ".txt") or "migrations" in path.parts:
            continue
        for number, line in enumerate(path.read_text(errors="replace").splitlines(), 1):
            stripped = line.strip()
            if stripped.startswith("#") or stripped.startswith("{#"):
                continue
            for match in pattern.finditer(line):
                found.append(f"{path.relative_to(REPO)}:{number}: {match.group(0)}")
    return found


@pytest.mark.parametrize("app", sorted(ABOVE))
def test_lower_layers_name_no_template_url_or_label_of_a_higher_one(app):
    assert _references(app, ABOVE[app]) == []


def test_the_scan_sees_a_template_include():
    # The scan itself: the demo site's page template does use the library's tag.
    site = (REPO / "cms" / "templates" / "cms" / "video_page.html").read_text()
    assert re.search(r"\{%\s*load[^%]*\bprivate_video_tags\b", site)
