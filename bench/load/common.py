"""Pieces shared by the many-viewer benchmarks (bench/serve.py --postgres and
bench/load.py): signed-in viewers in bulk, the churn side process."""

import os
import subprocess
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent.parent
PASSWORD = "bench viewer password"


def create_database(url):
    """CREATE DATABASE for DATABASE_URL when it is missing (a throwaway server starts empty)."""
    from urllib.parse import urlsplit, urlunsplit

    import psycopg

    parts = urlsplit(url)
    name = parts.path.lstrip("/")
    with psycopg.connect(urlunsplit(parts._replace(path="/postgres")), autocommit=True) as conn:
        if not conn.execute("SELECT 1 FROM pg_database WHERE datname = %s", [name]).fetchone():
            conn.execute(f'CREATE DATABASE "{name}"')


def make_viewer_sessions(count, group, *, prefix="viewer-"):
    """``count`` distinct users in ``group``, each with one signed-in session
    (a real database session carrying the auth hash, as after a sign-in).
    Returns the session keys, in user order. Reruns reuse the users."""
    from django.contrib.auth import BACKEND_SESSION_KEY, HASH_SESSION_KEY, SESSION_KEY, get_user_model
    from django.contrib.auth.hashers import make_password
    from django.contrib.sessions.backends.db import SessionStore

    User = get_user_model()
    existing = set(User.objects.filter(username__startswith=prefix).values_list("username", flat=True))
    # One PBKDF2 hash for all (each costs ~0.4 s); every user still has a real one.
    password = make_password(PASSWORD, hasher="pbkdf2_sha256")
    User.objects.bulk_create([
        User(username=f"{prefix}{i:04d}", email=f"{prefix}{i:04d}@example.com", password=password)
        for i in range(count) if f"{prefix}{i:04d}" not in existing
    ])
    users = list(User.objects.filter(username__startswith=prefix).order_by("username")[:count])
    Through = User.groups.through
    have = set(Through.objects.filter(group=group, user__in=users).values_list("user_id", flat=True))
    Through.objects.bulk_create([Through(user_id=u.pk, group_id=group.pk) for u in users if u.pk not in have])
    keys = []
    for user in users:
        store = SessionStore()
        store[SESSION_KEY] = str(user.pk)
        store[BACKEND_SESSION_KEY] = "django.contrib.auth.backends.ModelBackend"
        store[HASH_SESSION_KEY] = user.get_session_auth_hash()
        store.create()
        keys.append(store.session_key)
    return keys


def make_churn_users(count=50, prefix="churn-"):
    from django.contrib.auth import get_user_model
    from django.contrib.auth.hashers import make_password

    User = get_user_model()
    existing = set(User.objects.filter(username__startswith=prefix).values_list("username", flat=True))
    password = make_password(PASSWORD, hasher="pbkdf2_sha256")
    User.objects.bulk_create([
        User(username=f"{prefix}{i:03d}", password=password)
        for i in range(count) if f"{prefix}{i:03d}" not in existing
    ])


def make_churn_page(parent, slug="bench-churn"):
    """A live page no viewer watches: the publish of the churn."""
    from cms.models import IndexPage
    from wagtail.models import Page

    page = Page.objects.filter(slug=slug).first()
    if page is None:
        page = parent.add_child(instance=IndexPage(title="Churn", slug=slug))
        page.save_revision().publish()
    return page


def start_churn(env, *, logins=2.0, publish_every=10.0, seconds=300, log_path=None):
    """The churn side process (bench/load/churn.py) with the stack's settings and database."""
    log = open(log_path, "w") if log_path else subprocess.DEVNULL
    return subprocess.Popen(
        [sys.executable, str(REPO / "bench" / "load" / "churn.py"), "--logins", str(logins),
         "--publish-every", str(publish_every), "--seconds", str(seconds)],
        cwd=REPO, env={**os.environ, **env}, stdout=subprocess.PIPE, stderr=log, text=True,
    )


def stop_churn(proc):
    """Stop the churn and return its summary line (key=value pairs)."""
    if proc.poll() is None:
        proc.terminate()
    out, _ = proc.communicate(timeout=30)
    lines = [line for line in (out or "").splitlines() if line.startswith("churn_")]
    return lines[-1] if lines else f"churn_exit={proc.returncode}"
