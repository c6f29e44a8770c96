"""Settings for `make bench-serve` only: the production settings plus a urlconf
with the comparison views. Never imported by the site itself."""

from cms.settings.base import *  # noqa: F401,F403
from cms.settings.base import STORAGES

ROOT_URLCONF = "bench.serve_urls"
# No collectstatic manifest in the throwaway bench data folder.
STORAGES["staticfiles"] = {"BACKEND": "django.contrib.staticfiles.storage.StaticFilesStorage"}
LOGGING = {"version": 1, "disable_existing_loggers": False, "root": {"level": "WARNING"}}
