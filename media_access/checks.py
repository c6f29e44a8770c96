"""System checks: a misconfigured media_access is a message with an id and a
hint, never a traceback at import or on the first request.

- private_video_access.E001  MEDIA_ACCESS_TOKEN_SECRET invalid
- private_video_access.E002  MEDIA_ACCESS_TOKEN_URL_PREFIX invalid
- private_video_access.E003  MEDIA_ACCESS_ACCEL_PREFIX (or S3_ACCEL_PREFIX) invalid
- private_video_access.E004  decision triggers missing (tag "database")
- private_video_access.E005  MEDIA_ACCESS_SERVE_MODE / RESPONSE_BUILDER invalid
- private_video_access.E006  a number setting (lifetimes, cache sizes, log window, body size) invalid
- private_video_access.E007  MEDIA_ACCESS_VIEWER_COOKIE invalid
- private_video_access.W001  media_access's URLs are not in ROOT_URLCONF
"""

from django.conf import settings
from django.core.exceptions import ImproperlyConfigured
from django.core.checks import Error, Tags, Warning, register
from django.db import DatabaseError, connections
from django.urls import NoReverseMatch, reverse
from django.utils.translation import gettext as _

from . import s3, tokens
from .conf import setting
from .responses import get_response_builder, valid_accel_prefix


@register()
def check_settings(app_configs=None, **kwargs):
    errors = []
    if not tokens.valid_secret(setting("TOKEN_SECRET")):
        errors.append(Error(
            _("MEDIA_ACCESS_TOKEN_SECRET is invalid: it is written into nginx's config and must be "
              "at least 32 characters of A-Z a-z 0-9 _ -."),
            hint=_("Generate one with: python -c \"import secrets; print(secrets.token_urlsafe(48))\", "
                   "or leave it empty to derive one from SECRET_KEY."),
            id="private_video_access.E001",
        ))
    if not tokens.valid_url_prefix(setting("TOKEN_URL_PREFIX")):
        errors.append(Error(
            _("MEDIA_ACCESS_TOKEN_URL_PREFIX is %(value)r; signed rendition URLs need one plain path "
              "segment between slashes.") % {"value": setting("TOKEN_URL_PREFIX")},
            hint=_("For example '/stream/' (the default). Until then signed URLs are not routed."),
            id="private_video_access.E002",
        ))
    if not tokens.valid_viewer_cookie_name(setting("VIEWER_COOKIE")):
        errors.append(Error(
            _("MEDIA_ACCESS_VIEWER_COOKIE is %(value)r; nginx reads the viewer cookie as $cookie_<name>, "
              "so the name must be a letter then up to 63 of A-Z a-z 0-9 _.") % {"value": setting("VIEWER_COOKIE")},
            hint=_("For example 'pv_viewer' (the default). Until then signed URLs are not issued."),
            id="private_video_access.E007",
        ))
    for name, valid, example in (
        ("ACCEL_PREFIX", valid_accel_prefix, "/_private/"),
        ("S3_ACCEL_PREFIX", s3.valid_accel_prefix, "/_s3/"),
    ):
        if not valid(setting(name)):
            errors.append(Error(
                _("MEDIA_ACCESS_%(name)s is %(value)r; nginx's internal location needs a plain path "
                  "that starts and ends with '/'.") % {"name": name, "value": setting(name)},
                hint=_("For example %(example)r (the default).") % {"example": example},
                id="private_video_access.E003",
            ))
    errors += _number_errors()
    try:
        get_response_builder()
    except ImproperlyConfigured as error:
        errors.append(Error(
            str(error),
            hint=_("MEDIA_ACCESS_SERVE_MODE is \"xaccel\" (nginx in front) or \"django\" (no nginx); "
                   "MEDIA_ACCESS_RESPONSE_BUILDER, if set, the dotted path of a builder class."),
            id="private_video_access.E005",
        ))
    return errors


# Number settings: (least, most). Lifetimes handed out must be at least a
# second; S3 refuses a presigned URL valid for more than 7 days.
NUMBER_BOUNDS = {
    "TOKEN_LIFETIME": (1, None),
    "S3_URL_LIFETIME": (1, 7 * 24 * 3600),
    "LOG_WINDOW": (0, None),
    "DECISION_CACHE_SIZE": (0, None),
    "DECISION_CACHE_TTL": (0, None),
    "PUBLISHED_TEXT_CACHE_SIZE": (0, None),
    "PUBLISHED_TEXT_CACHE_CHARS": (0, None),
    "ADMIN_MAX_BODY_SIZE": (1, None),
    "ANALYTICS_RETENTION_DAYS": (1, None),
    "PLAYBACK_LOG_RETENTION_DAYS": (1, None),
    "ANALYTICS_VIEWINGS_PER_HOUR": (1, None),
}


def _number_errors():
    errors = []
    for name, (least, most) in NUMBER_BOUNDS.items():
        value = setting(name)
        try:
            number = int(value)
        except (TypeError, ValueError):
            number = None
        if isinstance(value, bool) or number is None or number < least or (most is not None and number > most):
            bounds = f"from {least} to {most}" if most is not None else f"of at least {least}"
            errors.append(Error(
                _("MEDIA_ACCESS_%(name)s is %(value)r; it must be a whole number %(bounds)s.")
                % {"name": name, "value": value, "bounds": bounds},
                hint=_("Leave it unset for the default (docs/settings.md)."),
                id="private_video_access.E006",
            ))
    return errors


@register(Tags.urls)
def check_urls_included(app_configs=None, **kwargs):
    if not getattr(settings, "ROOT_URLCONF", None):
        return []
    try:
        reverse("media_access:watch", args=[1, 1, "original"])
    except NoReverseMatch:
        return [Warning(
            _("media_access's URLs are not included in ROOT_URLCONF: no video can be played."),
            hint=_("Add path(\"\", include(\"media_access.urls\")) to your urls.py, before Wagtail's "
                   "own include (docs/install.md)."),
            id="private_video_access.W001",
        )]
    return []


@register(Tags.database)
def check_decision_triggers(app_configs=None, databases=None, **kwargs):
    from . import decisions

    errors = []
    for alias in databases or ():
        connection = connections[alias]
        if connection.vendor not in decisions.SUPPORTED_VENDORS or not decisions.enabled(alias):
            continue
        try:
            with connection.cursor() as cursor:
                if decisions.SCOPE_TABLE not in connection.introspection.table_names(cursor):
                    continue  # not migrated yet: migrate installs them
                missing = sorted(set(decisions.trigger_names(connection)) - _present_triggers(connection, cursor))
        except DatabaseError:
            continue
        if missing:
            errors.append(Error(
                _("%(count)d of media_access's decision triggers are missing or disabled on database "
                  "%(alias)r (%(names)s): changes to the rows they watch are not seen. Web workers stop "
                  "remembering allowed decisions once they count the triggers again (SQLite: at once; "
                  "PostgreSQL: within a minute), so until then a revocation may be missed.") % {
                    "count": len(missing), "alias": alias, "names": ", ".join(missing[:5])
                    + (", …" if len(missing) > 5 else ""),
                },
                hint=_("Run manage.py migrate (media_access reinstalls them after every migrate) or call "
                       "media_access.decisions.install_triggers(), which also ends every remembered decision."),
                id="private_video_access.E004",
            ))
    return errors


def _present_triggers(connection, cursor):
    if connection.vendor == "sqlite":
        cursor.execute("SELECT name FROM sqlite_master WHERE type = 'trigger'")
    else:
        cursor.execute("SELECT tgname FROM pg_trigger WHERE tgenabled <> 'D'")
    return {row[0] for row in cursor.fetchall()}
