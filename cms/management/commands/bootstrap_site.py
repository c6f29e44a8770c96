"""First-run set-up for the embedded stack: a home page, an admin account and
a private demo video. Safe to run on every start: it only fills what is missing."""

import os
import secrets
import tempfile
from pathlib import Path

from django.conf import settings
from django.contrib.auth import get_user_model
from django.core.files import File
from django.core.management.base import BaseCommand
from django.db import transaction
from wagtail.models import Page, PageViewRestriction, Site

from cms.models import IndexPage, VideoPage
from private_video import get_video_model
from private_video.probe import probe_video
from transcoding.testmedia import make_test_video

DEMO_SLUG = "demo-private-video"


class Command(BaseCommand):
    help = "Create the home page, an admin account and private demo content if missing."

    def add_arguments(self, parser):
        parser.add_argument("--no-demo", action="store_true", help="Skip the demo video page.")
        parser.add_argument("--base-url", default=settings.WAGTAILADMIN_BASE_URL)

    def handle(self, *args, **options):
        home = self.ensure_home_page()
        username, password = self.ensure_admin()
        demo = None
        if not options["no_demo"]:
            demo = self.ensure_demo(home)
        base = options["base_url"].rstrip("/")
        lines = [
            "",
            f"  Site:   {base}/",
            f"  Admin:  {base}/admin/",
            f"  Sign in as '{username}'"
            + (f" with password '{password}'" if password else " (password set from DJANGO_SUPERUSER_PASSWORD earlier)"),
        ]
        if demo:
            lines.append(f"  Demo:   {base}{demo.url} (private: sign in to watch)")
        self.stdout.write("\n".join(lines) + "\n")

    @transaction.atomic
    def ensure_home_page(self):
        site = Site.objects.filter(is_default_site=True).select_related("root_page").first()
        if site and site.root_page.specific_class is not Page:
            return site.root_page.specific
        # Wagtail's placeholder "Welcome" page has no template of its own;
        # replace it with a home page that lists what is published.
        placeholder = site.root_page if site else None
        if placeholder:
            placeholder.slug = f"welcome-{placeholder.pk}"
            placeholder.save(update_fields=["slug"])
        home = IndexPage(title="Home", slug="home", intro="<p>Private videos.</p>")
        Page.get_first_root_node().add_child(instance=home)
        home.save_revision().publish()
        if site:
            site.root_page = home
            site.save()
        else:
            Site.objects.create(hostname="localhost", port=80, root_page=home, is_default_site=True)
        if placeholder and not placeholder.get_children().exists():
            placeholder.delete()
        return home

    def ensure_admin(self):
        User = get_user_model()
        password_file = Path(settings.DATA_DIR) / "admin-password.txt"
        existing = User.objects.filter(is_superuser=True).order_by("pk").first()
        if existing:
            env_password = os.environ.get("DJANGO_SUPERUSER_PASSWORD")
            if password_file.exists():
                return existing.get_username(), password_file.read_text().strip()
            return existing.get_username(), env_password
        username = os.environ.get("DJANGO_SUPERUSER_USERNAME", "admin")
        email = os.environ.get("DJANGO_SUPERUSER_EMAIL", "admin@example.com")
        password = os.environ.get("DJANGO_SUPERUSER_PASSWORD")
        if not password:
            password = secrets.token_urlsafe(12)
            password_file.parent.mkdir(parents=True, exist_ok=True)
            password_file.write_text(password + "\n")
            password_file.chmod(0o600)
        User.objects.create_superuser(username=username, email=email, password=password)
        self.stdout.write(f"Created admin account '{username}'.")
        return username, password

    def ensure_demo(self, home):
        existing = VideoPage.objects.filter(slug=DEMO_SLUG).first()
        if existing:
            return existing
        admin = get_user_model().objects.filter(is_superuser=True).order_by("pk").first()
        with tempfile.TemporaryDirectory() as tmp:
            clip = make_test_video(Path(tmp) / "demo.mp4", duration=12, width=640, height=360)
            info = probe_video(clip)
            video = get_video_model()(
                title="Demo clip (test pattern)",
                original_filename="demo.mp4",
                file_size=clip.stat().st_size,
                uploaded_by_user=admin,
            )
            video.apply_probe(info)
            with clip.open("rb") as handle:
                video.file.save("demo.mp4", File(handle), save=False)
            video.save()
        with transaction.atomic():
            page = VideoPage(
                title="Demo: a private video",
                slug=DEMO_SLUG,
                video=video,
                intro="<p>Only signed-in users can watch this page's video.</p>",
                owner=admin,
            )
            home.add_child(instance=page)
            page.save_revision(user=admin).publish()
            PageViewRestriction.objects.create(
                page=page, restriction_type=PageViewRestriction.LOGIN
            )
        self.stdout.write(f"Created demo page '{page.title}'.")
        return page
