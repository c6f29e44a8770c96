from django.apps import AppConfig


class CmsConfig(AppConfig):
    name = "cms"
    verbose_name = "Video library"
    default_auto_field = "django.db.models.BigAutoField"

    def ready(self):
        from wagtail.models.reference_index import ReferenceIndex
        from wagtail.permissions import register_permission_policy

        from .models import Video
        from .permissions import video_permission_policy

        from .signal_handlers import register_signal_handlers

        register_permission_policy(Video, video_permission_policy())
        register_signal_handlers()
        ReferenceIndex.register_model(Video)
