from django.apps import AppConfig


class MediaAccessConfig(AppConfig):
    name = "media_access"
    verbose_name = "Media access"
    default_auto_field = "django.db.models.BigAutoField"

    def ready(self):
        from .signal_handlers import register_signal_handlers

        register_signal_handlers()
