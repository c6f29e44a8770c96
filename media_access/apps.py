from django.apps import AppConfig
from django.utils.translation import gettext_lazy as _


class MediaAccessConfig(AppConfig):
    name = "media_access"
    label = "private_video_access"
    verbose_name = _("Media access")
    default_auto_field = "django.db.models.BigAutoField"

    def ready(self):
        from . import checks  # noqa: F401 (registers the system checks)
        from .signal_handlers import register_signal_handlers

        register_signal_handlers()

        from django.db.models.signals import post_migrate

        from .decisions import install_after_migrate

        post_migrate.connect(install_after_migrate, sender=self, dispatch_uid="media_access_decision_triggers")
