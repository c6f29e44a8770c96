from django.apps import AppConfig


class TranscodingConfig(AppConfig):
    name = "transcoding"
    verbose_name = "Transcoding"
    default_auto_field = "django.db.models.BigAutoField"
