"""The video library: the Video model, its private storage, upload checks,
admin views, chooser, StreamField block and the page contract. Transcoding
and media_access build on it; it imports neither."""


def get_video_model_string():
    """``"app_label.ModelName"`` of the video model (``PRIVATE_VIDEO_MODEL``)."""
    from .conf import setting

    return setting("MODEL")


def video_model_problem():
    """Why ``PRIVATE_VIDEO_MODEL`` does not name a usable video model, or None.
    The system check private_video.E004 reports it; get_video_model() raises it."""
    from django.apps import apps

    model_string = get_video_model_string()
    if not isinstance(model_string, str) or model_string.count(".") != 1 or not all(model_string.split(".")):
        return f"PRIVATE_VIDEO_MODEL must be of the form 'app_label.ModelName', not {model_string!r}."
    try:
        model = apps.get_model(model_string, require_ready=False)
    except LookupError:
        return f"PRIVATE_VIDEO_MODEL refers to model '{model_string}' that has not been installed."
    from .models import AbstractVideo

    if not issubclass(model, AbstractVideo):
        return f"PRIVATE_VIDEO_MODEL refers to '{model_string}', which is not a subclass of private_video.models.AbstractVideo."
    try:
        tagged = model._meta.get_field("tags").remote_field.through._meta.get_field("content_object").related_model
    except Exception:  # noqa: BLE001 - no tags field, or not resolved yet: nothing to compare
        tagged = model
    if tagged is not model:
        return (
            f"The video model '{model_string}' keeps its tags in {tagged._meta.label}'s tag model: give it its own "
            "(a TaggedItemBase subclass with a ParentalKey to it, and a tags field using it; see private_video.models.VideoTag)."
        )
    return None


def get_video_model():
    """The video model in use, like Wagtail's ``get_document_model()``.
    ImproperlyConfigured (with the reason) when the setting names no video model."""
    from django.apps import apps
    from django.core.exceptions import ImproperlyConfigured

    problem = video_model_problem()
    if problem:
        raise ImproperlyConfigured(problem)
    return apps.get_model(get_video_model_string(), require_ready=False)
