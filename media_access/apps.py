from django.apps import AppConfig


class MediaAccessConfig(AppConfig):
    name = "media_access"
    verbose_name = "Media access"
    default_auto_field = "django.db.models.BigAutoField"
