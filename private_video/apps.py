from django.apps import AppConfig
from django.utils.translation import gettext_lazy as _


class PrivateVideoConfig(AppConfig):
    name = "private_video"
    label = "private_video"
    verbose_name = _("Video library")
    default_auto_field = "django.db.models.BigAutoField"

    def ready(self):
        from django.core.exceptions import ImproperlyConfigured
        from wagtail.models.reference_index import ReferenceIndex
        from wagtail.permissions import register_permission_policy

        from . import checks  # noqa: F401 - registers the system checks
        from . import get_video_model
        from .permissions import video_permission_policy
        from .signal_handlers import register_signal_handlers

        try:
            Video = get_video_model()
        except ImproperlyConfigured:
            return  # private_video.E004 says why; nothing to wire to a model that is not one.
        register_permission_policy(Video, video_permission_policy())
        register_signal_handlers()
        ReferenceIndex.register_model(Video)
