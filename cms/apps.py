from django.apps import AppConfig


class CmsConfig(AppConfig):
    """The demo site that `make run` serves: its settings, urls and page types."""

    name = "cms"
    verbose_name = "Demo site"
    default_auto_field = "django.db.models.BigAutoField"
