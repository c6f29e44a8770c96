"""The video library: the Video model, its private storage, upload checks,
admin views, chooser, StreamField block and the page contract. Transcoding
and media_access build on it; it imports neither."""


def get_video_model_string():
    """``"app_label.ModelName"`` of the video model (``PRIVATE_VIDEO_MODEL``)."""
    from django.conf import settings

    return getattr(settings, "PRIVATE_VIDEO_MODEL", "private_video.Video")


def get_video_model():
    """The video model in use, like Wagtail's ``get_document_model()``."""
    from django.apps import apps
    from django.core.exceptions import ImproperlyConfigured

    model_string = get_video_model_string()
    try:
        return apps.get_model(model_string, require_ready=False)
    except ValueError:
        raise ImproperlyConfigured("PRIVATE_VIDEO_MODEL must be of the form 'app_label.model_name'")
    except LookupError:
        raise ImproperlyConfigured(
            f"PRIVATE_VIDEO_MODEL refers to model '{model_string}' that has not been installed"
        )
