"""System checks for the transcoding settings that would otherwise fail at
run time: a task backend that cannot keep quick versions ahead of ladders,
and a grace period shorter than a player may still use a replaced file."""

from django.conf import settings
from django.core.checks import Error, Warning, register

from .profiles import segment_seconds


@register()
def check_phase_queues(app_configs, **kwargs):
    from django_tasks import task_backends

    from .tasks import phase_queues, task_backend_alias

    alias = task_backend_alias()
    try:
        backend = task_backends[alias]
    except Exception as exc:  # noqa: BLE001 - reported, not raised
        return [Error(f"The transcoding task backend {alias!r} cannot be loaded: {exc}",
                      hint="Add it to TASKS (see TRANSCODING_TASK_BACKEND).", id="transcoding.E001")]
    if backend.supports_priority or not backend.queues:
        return []
    missing = [name for name in phase_queues() if name not in backend.queues]
    if not missing:
        return []
    return [Error(
        f"The transcoding task backend {alias!r} has no priorities and no queue named {', '.join(missing)}.",
        hint="Quick playable versions and full ladders need their own queues: add "
        f"{' and '.join(repr(q) for q in phase_queues())} to RQ_QUEUES (or the backend's QUEUES), "
        "or set TRANSCODING_PLAYABLE_QUEUE / TRANSCODING_LADDER_QUEUE to queues it has.",
        id="transcoding.E002",
    )]


@register()
def check_retired_file_grace(app_configs, **kwargs):
    from .publish import retired_file_grace_seconds

    needed = float(getattr(settings, "MEDIA_ACCESS_TOKEN_LIFETIME", 300)) + segment_seconds()
    if retired_file_grace_seconds() >= needed:
        return []
    return [Warning(
        f"TRANSCODING_RETIRED_FILE_GRACE_SECONDS is {retired_file_grace_seconds():g}; replaced rendition "
        f"files would go while players may still fetch them with a valid token ({needed:g} s).",
        hint="Make it at least MEDIA_ACCESS_TOKEN_LIFETIME plus one segment, or unset it for the default.",
        id="transcoding.W001",
    )]
