from django.apps import AppConfig


class TranscodingConfig(AppConfig):
    name = "transcoding"
    label = "private_video_transcoding"
    verbose_name = "Transcoding"
    default_auto_field = "django.db.models.BigAutoField"

    def ready(self):
        from . import checks  # noqa: F401 - registers the system checks
        from .signal_handlers import register_signal_handlers

        register_signal_handlers()
