"""System checks for what would otherwise fail at run time, in a worker,
long after deployment: a task alias the jobs cannot be sent to, a task
backend that cannot keep quick versions ahead of ladders, no ffmpeg (or one
built without libx264 or zscale), a ladder that is not one, and a grace period
shorter than a player may still use a replaced file. Ids are ``private_video_transcoding.<E|W>0xx``."""

import shutil

from django.core.checks import Error, Warning, register
from django.core.exceptions import ImproperlyConfigured

ID = "private_video_transcoding.{}"


@register()
def check_phase_queues(app_configs, **kwargs):
    from django_tasks import task_backends

    from .tasks import phase_queues, task_backend_alias

    alias = task_backend_alias()
    try:
        backend = task_backends[alias]
    except Exception as exc:  # noqa: BLE001 - reported, not raised
        return [Error(
            f"The transcoding task backend {alias!r} cannot be loaded: {exc}",
            hint=f"Add a {alias!r} alias to TASKS (docs/install.md has the settings block), "
            "or set TRANSCODING_TASK_BACKEND to an alias TASKS has.",
            id=ID.format("E001"),
        )]
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
        id=ID.format("E002"),
    )]


@register()
def check_ffmpeg(app_configs, **kwargs):
    """The worker runs ``ffmpeg`` from PATH: without it every job fails."""
    if shutil.which("ffmpeg"):
        return []
    return [Error(
        "ffmpeg was not found on PATH: no video can be transcoded.",
        hint="Install ffmpeg (Debian/Ubuntu: apt-get install ffmpeg) on every host that runs the "
        "transcoding worker, and make sure it is on the PATH of the worker's process.",
        id=ID.format("E003"),
    )]


@register()
def check_ffmpeg_build(app_configs, **kwargs):
    """What the renditions are made with: libx264 and the aac encoder (without
    them every job fails), zscale (libzimg: HDR sources fail without it, and
    SD sources come out slightly tinted)."""
    if not shutil.which("ffmpeg"):
        return []  # E003
    from .backends.ffmpeg_python import ffmpeg_has

    messages = []
    missing = [name for name in ("libx264", "aac") if name not in ffmpeg_has("encoders")]
    if missing:
        messages.append(Error(
            f"ffmpeg on PATH has no {' or '.join(missing)} encoder: no video can be transcoded.",
            hint="Install an ffmpeg built with libx264 (Debian/Ubuntu's ffmpeg package is).",
            id=ID.format("E006"),
        ))
    if "zscale" not in ffmpeg_has("filters"):
        messages.append(Warning(
            "ffmpeg on PATH has no zscale filter (libzimg): HDR sources cannot be tone-mapped and fail, "
            "and SD (BT.601) sources come out slightly tinted.",
            hint="Install an ffmpeg built with --enable-libzimg (Debian/Ubuntu's ffmpeg package is).",
            id=ID.format("W002"),
        ))
    return messages


@register()
def check_ladder(app_configs, **kwargs):
    from .profiles import get_ladder

    try:
        get_ladder()
    except ImproperlyConfigured as exc:
        return [Error(
            str(exc),
            hint="TRANSCODING_LADDER is a list of dicts of Rung fields: height (the short side, "
            "in pixels), maxrate_kbps, and optionally crf (0-51) and audio_kbps; "
            "e.g. [{'height': 720, 'maxrate_kbps': 3000}]. Unset it for the default ladder.",
            id=ID.format("E004"),
        )]
    return []


@register()
def check_retired_file_grace(app_configs, **kwargs):
    from .profiles import segment_seconds
    from .publish import retired_file_grace_seconds, signed_url_lifetime

    try:
        lifetime = signed_url_lifetime()
    except Exception:  # noqa: BLE001 - the serving app's own checks report its settings
        return []
    try:
        needed = lifetime + float(segment_seconds())
        grace = retired_file_grace_seconds()
    except (TypeError, ValueError) as exc:
        return [Error(
            f"TRANSCODING_RETIRED_FILE_GRACE_SECONDS or TRANSCODING_SEGMENT_SECONDS is not a number: {exc}",
            hint="Set them to a number of seconds, or unset them for the defaults.",
            id=ID.format("E005"),
        )]
    if grace >= needed:
        return []
    return [Warning(
        f"TRANSCODING_RETIRED_FILE_GRACE_SECONDS is {grace:g}; replaced rendition "
        f"files would go while players may still fetch them with a valid token ({needed:g} s).",
        hint="Make it at least MEDIA_ACCESS_TOKEN_LIFETIME plus one segment, or unset it for the default.",
        id=ID.format("W001"),
    )]
