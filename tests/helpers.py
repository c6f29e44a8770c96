"""Small factories shared by the tests."""

import copy
from functools import lru_cache
from pathlib import Path

from django.contrib.auth import get_user_model
from django.contrib.auth.hashers import make_password
from django.core.files import File
from wagtail.models import Page, Site

from cms.models import IndexPage, VideoPage
from private_video.models import Video
from private_video.probe import probe_video


@lru_cache(maxsize=None)
def _password_hash(password):
    """PBKDF2 explicitly: gunicorn in integration tests runs the production
    hasher list, which has no MD5. One hash per password for the whole run
    (each takes ~0.4 s of CPU and the suite makes hundreds of users); every
    user still gets a real hash the production hasher checks."""
    return make_password(password, hasher="pbkdf2_sha256")


def make_user(username, password="correct horse battery", *, superuser=False, groups=()):
    User = get_user_model()
    user = User.objects.create(
        username=username,
        email=f"{username}@example.com",
        password=_password_hash(password),
        is_superuser=superuser,
        is_staff=superuser,
    )
    for group in groups:
        user.groups.add(group)
    return user


@lru_cache(maxsize=None)
def _probe(path, size, mtime_ns):
    return probe_video(Path(path))


def make_video(path, *, title="Sample", collection=None, user=None):
    path = Path(path)
    # The same sample file is probed once per run (ffprobe is ~0.13 s a call);
    # the probe itself is tested on its own.
    stat = path.stat()
    info = copy.deepcopy(_probe(str(path), stat.st_size, stat.st_mtime_ns))
    video = Video(
        title=title,
        original_filename=path.name,
        file_size=path.stat().st_size,
        uploaded_by_user=user,
    )
    if collection is not None:
        video.collection = collection
    video.apply_probe(info)
    with path.open("rb") as handle:
        video.file.save(path.name, File(handle), save=False)
    video.save()
    return video


def home_page():
    """The site's home page (an IndexPage), created under the tree root if missing."""
    site = Site.objects.filter(is_default_site=True).first()
    if site and site.root_page.specific_class is IndexPage:
        return site.root_page.specific
    root = Page.get_first_root_node()
    home = IndexPage(title="Home", slug=f"home-{root.numchild + 1}")
    root.add_child(instance=home)
    if site:
        site.root_page = home
        site.save()
    else:
        Site.objects.create(hostname="localhost", port=80, root_page=home, is_default_site=True)
    return home


def make_video_page(video, *, title="Watch", parent=None, live=True, **fields):
    parent = parent or home_page()
    page = VideoPage(title=title, video=video, live=live, **fields)
    parent.add_child(instance=page)
    if live:
        page.save_revision().publish()
    return page


def granted_viewer(sample_video, client, *, video_title="Sample", page_title="Watch"):
    """A published page showing a new video, granted to a "Viewers" group, and a
    member of it signed in on ``client``: (viewer, group, page, video, the watch URL)."""
    from django.contrib.auth.models import Group
    from django.urls import reverse

    from media_access.models import ViewerGrant

    viewers = Group.objects.create(name="Viewers")
    viewer = make_user("viewer", groups=[viewers])
    video = make_video(sample_video, title=video_title)
    page = make_video_page(video, title=page_title)
    ViewerGrant.objects.create(page=page, group=viewers)
    client.force_login(viewer)
    return viewer, viewers, page, video, reverse("media_access:watch", args=[page.pk, video.pk, "original"])


def stack_session(user):
    """A requests session signed in as ``user`` against a test stack (same DB and SECRET_KEY)."""
    import requests
    from django.test import Client

    session = requests.Session()
    if user is not None:
        client = Client()
        client.force_login(user)
        session.cookies.set("sessionid", client.cookies["sessionid"].value)
    return session


def wait_for_job(video, stack, timeout=90):
    """Wait for the video's transcode job to finish in the stack's worker; it must be ready."""
    import time

    from transcoding.models import TranscodeJob

    deadline = time.monotonic() + timeout
    job = None
    while time.monotonic() < deadline:
        job = TranscodeJob.objects.filter(video=video).first()
        if job and job.status in ("ready", "failed"):
            break
        time.sleep(0.3)
    assert job is not None and job.status == "ready", (
        job and (job.error, job.stderr_tail), stack.log_text("transcoder")[-3000:])
    return job


def collection_group(name, collection, *codenames):
    """A group with admin access and the given video permissions on ``collection``."""
    from django.contrib.auth.models import Group, Permission
    from wagtail.models import GroupCollectionPermission

    group = Group.objects.create(name=name)
    group.permissions.add(Permission.objects.get(codename="access_admin"))
    for codename in codenames:
        GroupCollectionPermission.objects.create(
            group=group, collection=collection, permission=Permission.objects.get(codename=codename)
        )
    return group


def csrf_token(session, url):
    """The CSRF form token of the page at ``url``, fetched with a requests session."""
    import re

    response = session.get(url, timeout=10)
    assert response.status_code == 200, response.text[:500]
    match = re.search(r'name="csrfmiddlewaretoken" value="([^"]+)"', response.text)
    assert match, "no CSRF token on " + url
    return match.group(1)
