"""The writes of a busy site, beside a load run: ``--logins`` sign-ins per
second and one page publish every ``--publish-every`` seconds, on the bench
database, until ``--seconds`` have passed or SIGTERM. Started as a side
process by bench/serve.py --postgres and bench/load.py; prints one
``churn_logins=N churn_publishes=N churn_late=N`` line when it stops.

A sign-in is Django's own ``login()`` (a new session row, the key cycled,
``user_logged_in`` updating ``last_login``: every write a real sign-in makes)
through the test client's ``force_login``, without the password form: the
production PBKDF2 check costs ~0.4 s of CPU, and two a second would take
40 % of the two cores the measured stack runs on, which says nothing about
what the issue asks (what those writes do to access decisions).
The publish is ``save_revision().publish()`` of a page no viewer watches.
"""

import argparse
import os
import signal
import sys
import time
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent.parent
sys.path.insert(0, str(REPO))


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("--logins", type=float, default=2.0, help="sign-ins per second")
    parser.add_argument("--publish-every", type=float, default=10.0, help="seconds between publishes")
    parser.add_argument("--seconds", type=float, default=300.0, help="upper bound on the run")
    parser.add_argument("--user-prefix", default="churn-")
    parser.add_argument("--page-slug", default="bench-churn")
    args = parser.parse_args()

    import django

    django.setup()
    from django.contrib.auth import get_user_model
    from django.test import Client
    from wagtail.models import Page

    users = list(get_user_model().objects.filter(username__startswith=args.user_prefix).order_by("pk"))
    page = Page.objects.get(slug=args.page_slug).specific
    if not users:
        raise SystemExit(f"no users named {args.user_prefix}*")

    stopping = []
    signal.signal(signal.SIGTERM, lambda *_: stopping.append(True))
    signal.signal(signal.SIGINT, lambda *_: stopping.append(True))

    began = time.monotonic()
    logins = publishes = late = 0
    next_login = began
    next_publish = began + args.publish_every / 2
    login_step = 1.0 / args.logins if args.logins > 0 else None
    while not stopping and time.monotonic() - began < args.seconds:
        now = time.monotonic()
        if login_step is not None and now >= next_login:
            Client().force_login(users[logins % len(users)])
            logins += 1
            next_login += login_step
            if time.monotonic() > next_login:
                late += 1
        if now >= next_publish:
            page.title = f"Churn {publishes}"
            page.save_revision().publish()
            publishes += 1
            next_publish += args.publish_every
        wake = min(next_login if login_step else next_publish, next_publish)
        time.sleep(max(0.0, min(0.2, wake - time.monotonic())))
    print(f"churn_logins={logins} churn_publishes={publishes} churn_late={late} "
          f"churn_seconds={time.monotonic() - began:.0f}", flush=True)


if __name__ == "__main__":
    os.environ.setdefault("DJANGO_SETTINGS_MODULE", "bench.serve_settings")
    main()
