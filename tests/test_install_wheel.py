"""The wheel in a site that is not ours: docs/install.md, followed by a test.

`wagtail start` makes a fresh site in a temporary folder; a fresh virtualenv
gets the wheel built from this checkout; the site gets docs/install.md's code
blocks **read from the doc** (so the guide and this test cannot drift), a
video uploaded through its admin over HTTP, that video on the site's own page
type, and plays in Chromium for a granted viewer behind nginx + gunicorn +
the transcoding worker, while an outsider gets no bytes.

The fresh virtualenv holds only the wheel's files; its dependencies (Django,
Wagtail, ...) come from this project's virtualenv through a .pth line to a
folder of links that leaves out this checkout's own (editable) install. pip
installs the wheel with ``--no-index``, so every requirement the wheel declares
must be met by what is there, and ``private_video.__file__`` must be inside the
new virtualenv: what runs is the wheel, not the checkout.
"""

import json
import os
import re
import shutil
import signal
import subprocess
import sys
import time
import zipfile
from pathlib import Path

import pytest
import requests

from transcoding.testmedia import make_test_video

from .browser import chromium_page
from .stack import REPO, VENV_BIN, _nginx_binary, free_port

pytestmark = [pytest.mark.integration, pytest.mark.browser, pytest.mark.standalone]

INSTALL_DOC = REPO / "docs" / "install.md"
PASSWORD = "correct horse battery staple"
# Left out of the dependency folder: this checkout's own install, and the
# packaging tools the new virtualenv has itself.
NOT_DEPENDENCIES = re.compile(
    r"^(wagtail_private_video.*|__editable__.*|.*\.pth|pip|pip-.*|setuptools|setuptools-.*"
    r"|_distutils_hack|pkg_resources|__pycache__)$"
)
# Settings of this project's demo site that must not leak into the fresh site.
SITE_ENV_PREFIXES = ("CMS_", "MEDIA_ACCESS_", "PRIVATE_VIDEO_", "TRANSCODING_", "AWS_", "DJANGO_", "WAGTAIL")


# --- docs/install.md's code blocks -------------------------------------------------


def doc_section(number):
    """The text of the install guide's step ``number`` ("## <number>. ...")."""
    text = INSTALL_DOC.read_text()
    match = re.search(rf"^## {number}\. .*?(?=^## |\Z)", text, re.M | re.S)
    assert match, f"docs/install.md has no step {number}"
    return match.group(0)


def doc_blocks(number, language):
    blocks = re.findall(rf"^```{re.escape(language)}\n(.*?)^```$", doc_section(number), re.M | re.S)
    assert blocks, f"docs/install.md step {number} has no ```{language} block"
    return blocks


# --- the wheel, the site, the virtualenv -----------------------------------------


def build_wheel(outdir):
    """Build the wheel from this checkout (make wheel's command; the player is built by make setup)."""
    assert (REPO / "media_access/static/media_access/player/player.js").exists(), "run make frontend"
    shutil.rmtree(REPO / "build", ignore_errors=True)
    result = subprocess.run(
        [sys.executable, "-m", "build", "--wheel", "--outdir", str(outdir)],
        cwd=REPO, capture_output=True, text=True, timeout=300,
    )
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-3000:]
    (wheel,) = outdir.glob("wagtail_private_video-*-py3-none-any.whl")
    return wheel


def site_env(settings_module="mysite.settings.dev", **extra):
    env = {
        name: value for name, value in os.environ.items()
        if not name.startswith(SITE_ENV_PREFIXES)
        and name not in ("PYTHONPATH", "VIRTUAL_ENV", "DATABASE_URL", "STORAGE", "STATIC_ROOT", "MEDIA_ROOT")
    }
    env.update({"DJANGO_SETTINGS_MODULE": settings_module, "PYTHONUNBUFFERED": "1",
                "PIP_CONFIG_FILE": os.devnull, "PIP_FIND_LINKS": "", **extra})
    return env


class FreshSite:
    def __init__(self, root, python):
        self.root = Path(root)
        self.dir = self.root / "mysite"
        self.python = Path(python)

    def run(self, *args, check=True, timeout=180, **kwargs):
        result = subprocess.run(
            [str(self.python), *args], cwd=self.dir, env=site_env(), capture_output=True, text=True,
            timeout=timeout, **kwargs,
        )
        if check:
            assert result.returncode == 0, f"{args}:\n{result.stdout[-3000:]}\n{result.stderr[-5000:]}"
        return result

    def manage(self, *args, **kwargs):
        return self.run("manage.py", *args, **kwargs)

    def shell(self, code, **kwargs):
        """Run ``code`` in the site (manage.py shell); it prints one JSON line last."""
        out = self.manage("shell", "--no-imports", "-c", code, **kwargs).stdout.strip().splitlines()
        return json.loads(out[-1])


def make_venv(root):
    """A new virtualenv with this project's dependencies on its path, but not this project."""
    venv = root / "venv"
    subprocess.run([str(VENV_BIN / "python"), "-m", "venv", str(venv)], check=True, timeout=120)
    project_site_packages = Path(
        subprocess.check_output([str(VENV_BIN / "python"), "-c", "import sysconfig; print(sysconfig.get_paths()['purelib'])"],
                                text=True).strip()
    )
    deps = root / "dependencies"
    deps.mkdir()
    for entry in project_site_packages.iterdir():
        if not NOT_DEPENDENCIES.match(entry.name):
            (deps / entry.name).symlink_to(entry)
    (site_packages,) = (venv / "lib").glob("python3*/site-packages")
    (site_packages / "project-dependencies.pth").write_text(f"{deps}\n")
    return venv


def start_site(root):
    """`wagtail start mysite`, the way a developer begins a site."""
    subprocess.run([str(VENV_BIN / "wagtail"), "start", "mysite"], cwd=root, check=True,
                   capture_output=True, timeout=60, env=site_env())
    return root / "mysite"


def add_installed_apps(site_dir):
    """Step 2, from the doc."""
    (block,) = doc_blocks(2, "python")
    settings = site_dir / "mysite" / "settings" / "base.py"
    settings.write_text(settings.read_text() + "\n\n" + block)


@pytest.fixture(scope="module")
def wheel(tmp_path_factory):
    return build_wheel(tmp_path_factory.mktemp("dist"))


@pytest.fixture(scope="module")
def fresh_site(tmp_path_factory, wheel):
    """A `wagtail start` site in a new virtualenv that has the wheel installed, after step 2 only."""
    root = tmp_path_factory.mktemp("host")
    venv = make_venv(root)
    # No index: every requirement the wheel declares must be met by what is
    # on the path already, or the install fails.
    result = subprocess.run(
        [str(venv / "bin" / "python"), "-m", "pip", "install", "--no-index", str(wheel)],
        capture_output=True, text=True, timeout=300, env=site_env(),
    )
    assert result.returncode == 0, result.stdout + result.stderr
    assert "Successfully installed wagtail-private-video-" in result.stdout, result.stdout
    site_dir = start_site(root)
    add_installed_apps(site_dir)
    site = FreshSite(root, venv / "bin" / "python")
    where = site.run("-c", "import json, sys, private_video, transcoding, media_access; print(json.dumps("
                     "[m.__file__ for m in (private_video, transcoding, media_access)] + [sys.path]))")
    *files, path = json.loads(where.stdout)
    for file in files:
        assert Path(file).is_relative_to(venv), file
    assert str(REPO) not in path, path
    return site


# --- the wheel's contents -------------------------------------------------------


def test_wheel_holds_the_apps_and_the_built_player_but_not_the_site(wheel):
    names = set(zipfile.ZipFile(wheel).namelist())
    for required in (
        "private_video/migrations/0001_initial.py",
        "transcoding/migrations/0001_initial.py",
        "media_access/migrations/0001_initial.py",
        "private_video/templates/private_video/videos/upload.html",
        "transcoding/templates/transcoding/processing_panel.html",
        "media_access/templates/media_access/player.html",
        "media_access/static/media_access/player/player.js",
        "media_access/static/media_access/player/player.css",
        "media_access/static/media_access/player/vendor/hls.min.js",
        "media_access/nginx/site.conf.template",
        "media_access/management/commands/render_nginx_config.py",
        "transcoding/management/commands/transcoding_worker.py",
        "private_video/static/private_video/js/upload.js",
        "private_video/static/private_video/uploader/vendor/uppy.min.js",
    ):
        assert required in names, required
    top = {name.split("/")[0] for name in names}
    assert top == {"private_video", "transcoding", "media_access", wheel.name.split("-py3")[0] + ".dist-info"}, top
    assert not [name for name in names if name.endswith((".pyc", ".built", ".mjs"))]
    metadata = zipfile.ZipFile(wheel).read(wheel.name.split("-py3")[0] + ".dist-info/METADATA").decode()
    assert "Classifier: Framework :: Wagtail :: 8" in metadata
    assert "Classifier: Framework :: Django :: 5.2" in metadata
    assert "License-Expression: BSD-3-Clause" in metadata
    requires = [line for line in metadata.splitlines() if line.startswith("Requires-Dist:") and "extra ==" not in line]
    # Site-only dependencies are extras, not what every site installs.
    for site_only in ("gunicorn", "honcho", "dj-database-url", "psycopg"):
        assert not [line for line in requires if site_only in line.lower()], requires


# --- only INSTALLED_APPS: messages, not a traceback ---------------------------------


def test_only_installed_apps_gives_check_errors_not_a_traceback(fresh_site):
    result = fresh_site.manage("check", check=False)
    output = result.stdout + result.stderr
    assert result.returncode != 0, output
    assert "Traceback" not in output, output
    for check_id in ("private_video.E001", "private_video_transcoding.E001", "private_video_access.W001"):
        assert f"({check_id})" in output, output
    # Each names the setting to add and where the guide is.
    assert 'STORAGES has no "private" entry' in output, output
    assert "TASKS" in output and "docs/install.md" in output, output


# --- the whole guide, then a viewer and an outsider --------------------------------


PLAY = """
async () => {
  const video = document.querySelector("video.video-player__video");
  if (!video) throw new Error("no player on the page");
  const until = (predicate, what, ms = 20000) => new Promise((resolve, reject) => {
    const started = performance.now();
    const tick = () => {
      if (predicate()) return resolve();
      if (performance.now() - started > ms) return reject(new Error("timed out waiting for " + what +
        " (currentTime=" + video.currentTime + ", error=" + (video.error && video.error.code) + ")"));
      setTimeout(tick, 50);
    };
    tick();
  });
  video.muted = true;
  await video.play();
  const start = video.currentTime;
  await until(() => video.currentTime > start + 1, "playback to advance");
  return {currentTime: video.currentTime, duration: video.duration, src: video.currentSrc,
          width: video.videoWidth, height: video.videoHeight};
}
"""


class Processes:
    def __init__(self, root, env):
        self.root, self.env, self.procs, self.logs = root, env, {}, {}

    def spawn(self, name, cmd, cwd):
        log = open(self.root / f"{name}.log", "a")
        self.logs[name] = log
        self.procs[name] = subprocess.Popen(cmd, cwd=cwd, env=self.env, stdout=log, stderr=subprocess.STDOUT,
                                            start_new_session=True)

    def log(self, name):
        path = self.root / f"{name}.log"
        return path.read_text(errors="replace")[-4000:] if path.exists() else ""

    def check_alive(self):
        for name, proc in self.procs.items():
            assert proc.poll() is None, f"{name} exited:\n{self.log(name)}"

    def stop(self):
        for proc in self.procs.values():
            if proc.poll() is None:
                os.killpg(proc.pid, signal.SIGTERM)
        for proc in self.procs.values():
            try:
                proc.wait(timeout=15)
            except subprocess.TimeoutExpired:
                os.killpg(proc.pid, signal.SIGKILL)
                proc.wait(timeout=5)
        for log in self.logs.values():
            log.close()


def apply_install_guide(site):
    """Steps 3 to 5 of docs/install.md, each from the doc's own code block."""
    (settings_block,) = doc_blocks(3, "python")
    settings = site.dir / "mysite" / "settings" / "base.py"
    settings.write_text(settings.read_text() + "\n\n" + settings_block)

    (urls_block,) = doc_blocks(4, "python")
    include_lines = [line for line in urls_block.splitlines() if 'include("media_access.urls")' in line]
    assert len(include_lines) == 1, urls_block
    urls = site.dir / "mysite" / "urls.py"
    wagtail_line = '    path("", include(wagtail_urls)),\n'
    text = urls.read_text()
    assert text.count(wagtail_line) == 1, text
    urls.write_text(text.replace(wagtail_line, include_lines[0].rstrip() + "\n" + wagtail_line))

    (models_block,) = doc_blocks(5, "python")
    (page_class,) = re.findall(r"^class (\w+)\(VideoPageMixin, Page\):", models_block, re.M)
    models = site.dir / "home" / "models.py"
    models.write_text(models.read_text() + "\n\n" + models_block)
    (template_block,) = doc_blocks(5, "html+django")
    template_name = re.sub(r"(?<!^)(?=[A-Z])", "_", page_class).lower() + ".html"
    assert f"home/templates/home/{template_name}" in doc_section(5)
    (site.dir / "home" / "templates" / "home" / template_name).write_text(template_block)
    return page_class


def test_fresh_wagtail_site_installs_the_wheel_and_a_granted_viewer_plays(fresh_site, tmp_path, output_dir):
    site = fresh_site
    # The check test above ran on the site after step 2; now the rest of the guide.
    page_class = apply_install_guide(site)
    site.manage("makemigrations", "home")
    site.manage("migrate", "--noinput")
    site.manage("collectstatic", "--noinput", "--verbosity", "0")
    checked = site.manage("check", "--database", "default")
    # The guide's settings and URLs leave nothing for the checks to report.
    assert "Traceback" not in checked.stdout + checked.stderr
    assert "private_video" not in checked.stdout + checked.stderr, checked.stdout + checked.stderr

    # Step 7: render the config and let nginx check it.
    run = tmp_path / "run"
    run.mkdir()
    port = free_port()
    conf = run / "nginx" / "nginx.conf"
    site.manage(
        "render_nginx_config", "--listen", f"127.0.0.1:{port}", "--upstream", f"unix:{run / 'gunicorn.sock'}",
        "--runtime-dir", str(run / "nginx"), "--output", str(conf),
        # Workers as root: the test folders are 0700.
        *(["--user", "root"] if os.geteuid() == 0 else []),
    )
    nginx = _nginx_binary()
    tested = subprocess.run([nginx, "-t", "-p", str(run / "nginx"), "-e", "stderr", "-c", str(conf)],
                            capture_output=True, text=True, timeout=30)
    assert tested.returncode == 0, tested.stderr
    assert "test is successful" in tested.stderr

    # Users, and a signed-in session for the viewer and the outsider.
    world = site.shell(
        "import json\n"
        "from django.contrib.auth import get_user_model\n"
        "from django.test import Client\n"
        "from django.urls import reverse\n"
        "User = get_user_model()\n"
        f"User.objects.create_superuser('editor', 'editor@example.com', {PASSWORD!r})\n"
        "cookies = {}\n"
        "for name in ('viewer', 'outsider'):\n"
        f"    user = User.objects.create_user(name, name + '@example.com', {PASSWORD!r})\n"
        "    client = Client(); client.force_login(user)\n"
        "    cookies[name] = client.cookies['sessionid'].value\n"
        "print(json.dumps({'cookies': cookies, 'add': reverse('private_video:add')}))\n"
    )

    processes = Processes(run, site_env())
    python = str(site.python)
    processes.spawn("gunicorn", [python, "-m", "gunicorn", "mysite.wsgi:application", "--workers", "2",
                                 "--bind", f"unix:{run / 'gunicorn.sock'}"], site.dir)
    processes.spawn("nginx", [nginx, "-p", str(run / "nginx"), "-e", "stderr", "-c", str(conf),
                              "-g", "daemon off;"], site.dir)
    # Step 8: the worker.
    processes.spawn("worker", [python, "manage.py", "transcoding_worker", "--interval", "0.2",
                               "--no-startup-delay"], site.dir)
    base = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 60
        while True:
            processes.check_alive()
            try:
                if requests.get(base + "/admin/login/", timeout=2).status_code == 200:
                    break
            except requests.RequestException:
                pass
            assert time.monotonic() < deadline, processes.log("gunicorn") + processes.log("nginx")
            time.sleep(0.2)

        # The editor signs in to the site's admin and uploads, over HTTP with CSRF.
        editor = requests.Session()
        login_page = editor.get(base + "/admin/login/", timeout=10)
        token = re.search(r'name="csrfmiddlewaretoken" value="([^"]+)"', login_page.text).group(1)
        signed_in = editor.post(base + "/admin/login/", timeout=10, data={
            "csrfmiddlewaretoken": token, "username": "editor", "password": PASSWORD, "next": "/admin/"})
        assert signed_in.status_code == 200 and signed_in.url == base + "/admin/", signed_in.url
        clip = make_test_video(tmp_path / "lesson.mp4", duration=4, width=320, height=180)
        upload_page = editor.get(base + world["add"], timeout=10)
        token = re.search(r'name="csrfmiddlewaretoken" value="([^"]+)"', upload_page.text).group(1)
        with open(clip, "rb") as handle:
            uploaded = editor.post(base + world["add"], data={"csrfmiddlewaretoken": token},
                                   files={"file": ("Lesson one.mp4", handle, "video/mp4")},
                                   headers={"Accept": "application/json"}, timeout=60)
        assert uploaded.status_code == 200, uploaded.text[:2000]
        assert uploaded.json()["success"] is True, uploaded.text[:2000]
        video_id = uploaded.json()["pk"]

        # On the site's own page type, with the viewer granted; the worker makes it playable.
        placed = site.shell(
            "import json, time\n"
            "from django.contrib.auth import get_user_model\n"
            "from media_access.models import ViewerGrant\n"
            "from private_video import get_video_model\n"
            f"from home.models import HomePage, {page_class} as PageType\n"
            "from transcoding.models import TranscodeJob\n"
            f"video = get_video_model().objects.get(pk={video_id})\n"
            "page = PageType(title='Lesson one', slug='lesson-one', video=video)\n"
            "HomePage.objects.get().add_child(instance=page)\n"
            "page.viewer_grants.add(ViewerGrant(user=get_user_model().objects.get(username='viewer')))\n"
            "page.save_revision().publish()\n"
            "deadline = time.monotonic() + 90\n"
            "job = None\n"
            "while time.monotonic() < deadline:\n"
            "    job = TranscodeJob.objects.filter(video=video).first()\n"
            "    if job and job.status in ('ready', 'failed'): break\n"
            "    time.sleep(0.3)\n"
            "page.refresh_from_db()\n"
            "print(json.dumps({'page': page.pk, 'url': page.url, 'status': job and job.status,"
            " 'error': job and job.error, 'videos': [v.pk for v in page.videos()]}))\n",
            timeout=150,
        )
        assert placed["status"] == "ready", (placed, processes.log("worker"))
        assert placed["videos"] == [video_id]
        page_url = base + placed["url"]

        # The granted viewer plays it in Chromium.
        with chromium_page(output_dir, session_cookie=world["cookies"]["viewer"], base_url=base) as page:
            response = page.goto(page_url)
            assert response.status == 200
            played = page.evaluate(PLAY)
        assert played["currentTime"] > 1, played
        assert (played["width"], played["height"]) == (320, 180), played

        playback = f"/playback/{placed['page']}/{video_id}/"
        viewer = requests.Session()
        viewer.cookies.set("sessionid", world["cookies"]["viewer"])
        info = viewer.get(base + playback, timeout=10)
        assert info.status_code == 200 and info.json()["allowed"] is True, info.text[:500]
        sources = [source["src"] for source in info.json()["sources"]]
        watch = [src for src in sources if src.startswith("/watch/")]
        assert watch, sources
        media = viewer.get(base + watch[0], timeout=10)
        assert media.status_code == 200 and len(media.content) > 10_000
        assert media.content[4:8] == b"ftyp", media.content[:16]

        # The outsider (signed in, not granted) and an anonymous visitor get no bytes.
        outsider = requests.Session()
        outsider.cookies.set("sessionid", world["cookies"]["outsider"])
        for who, session in (("outsider", outsider), ("anonymous", requests.Session())):
            page_html = session.get(page_url, timeout=10)
            assert page_html.status_code == 200
            assert 'data-access="denied"' in page_html.text and "<video" not in page_html.text, who
            for url in (playback, *sources):
                denied = session.get(base + url, timeout=10, allow_redirects=False)
                assert denied.status_code in (302, 403), (who, url, denied.status_code)
                assert b"ftyp" not in denied.content and b"#EXTM3U" not in denied.content, (who, url)
                assert media.content[:4096] not in denied.content
        processes.check_alive()
    except BaseException:
        for name in ("gunicorn", "nginx", "worker"):
            (output_dir / f"{name}.log").write_text(processes.log(name))
        raise
    finally:
        processes.stop()
