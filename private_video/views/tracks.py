"""Captions, chapters and the poster of one video, in the admin (linked from
its edit view). Every view looks the video up among the videos the user may
change (another collection's video is a 404, as in the edit view) and the
caption among that video's own; a user with no video rights at all gets a 403.
The library's API (private_video.captions) does the work and the logging."""

from functools import wraps

from django import forms
from django.contrib import messages
from django.core.exceptions import ValidationError
from django.forms import formset_factory
from django.http import FileResponse, Http404, HttpResponseForbidden
from django.shortcuts import get_object_or_404, redirect
from django.template.response import TemplateResponse
from django.utils.translation import gettext
from django.utils.translation import gettext_lazy as _
from django.views.decorators.http import require_http_methods
from wagtail.permissions import policy_registry

from .. import get_video_model
from ..captions import (
    CaptionError,
    clear_poster,
    delete_caption,
    import_caption,
    MAX_CHAPTERS,
    parse_chapter_lines,
    parse_time,
    set_chapters,
    set_poster_frame,
    set_poster_image,
    update_caption,
)
from ..conf import setting
from ..permissions import videos_user_may
from ..tracks import Caption


def per_video(view):
    """The view gets the video, looked up among those the user may change (a
    404 otherwise, as the edit view); a user with no video rights at all gets
    a plain 403 (not the admin's redirect: nothing here is for them)."""

    @wraps(view)
    def wrapper(request, pk, *args, **kwargs):
        Video = get_video_model()
        if not policy_registry.get_by_type(Video).user_has_any_permission(request.user, ["add", "change"]):
            return HttpResponseForbidden(gettext("You have no rights on videos."), content_type="text/plain")
        video = get_object_or_404(videos_user_may(request.user, "change"), pk=pk)
        return view(request, video, *args, **kwargs)

    return wrapper


def _render(request, template, video, title, **context):
    return TemplateResponse(
        request,
        template,
        {"video": video, "page_title": title, "page_subtitle": video.title, "header_icon": "media",
         "edit_url": video.get_admin_edit_url(), **context},
    )


def _format_seconds(seconds):
    """"1:05", "1:02:03" or "1:05.5": how the chapter and poster forms show a time."""
    whole = int(seconds)
    fraction = round(seconds - whole, 3)
    hours, rest = divmod(whole, 3600)
    minutes, secs = divmod(rest, 60)
    text = f"{hours}:{minutes:02d}:{secs:02d}" if hours else f"{minutes}:{secs:02d}"
    return text + (f"{fraction:.3f}"[1:].rstrip("0") if fraction else "")


# --- captions ---------------------------------------------------------------------


class CaptionForm(forms.Form):
    file = forms.FileField(
        label=_("SRT or WebVTT file"),
        widget=forms.FileInput(attrs={"accept": ".srt,.vtt,text/vtt,application/x-subrip"}),
    )
    language = forms.CharField(
        label=_("Language"), max_length=35, help_text=_("A language tag such as en, fr, fr-CA or zh-Hant.")
    )
    kind = forms.ChoiceField(label=_("Kind"), choices=Caption.Kind.choices, initial=Caption.Kind.SUBTITLES)
    label = forms.CharField(label=_("Label"), max_length=100, help_text=_("What viewers see in the captions menu."))
    is_default = forms.BooleanField(label=_("Show by default"), required=False)

    def __init__(self, *args, replacing=False, **kwargs):
        super().__init__(*args, **kwargs)
        if replacing:
            self.fields["file"].required = False
            self.fields["file"].label = _("Replace the file (optional)")

    def clean_file(self):
        upload = self.cleaned_data.get("file")
        limit = int(setting("MAX_CAPTION_SIZE"))
        if upload and upload.size > limit:
            raise ValidationError(
                gettext("This file is %(size)s bytes; the largest caption file is %(limit)s bytes.")
                % {"size": f"{upload.size:,}", "limit": f"{limit:,}"}
            )
        return upload


def _caption_form_view(request, video, caption=None):
    replacing = caption is not None
    if request.method == "POST":
        form = CaptionForm(request.POST, request.FILES, replacing=replacing)
        if form.is_valid():
            data = form.cleaned_data
            fields = {"language": data["language"], "kind": data["kind"], "label": data["label"],
                      "is_default": data["is_default"], "user": request.user}
            try:
                if data["file"]:
                    upload = data["file"]
                    upload.seek(0)
                    caption = import_caption(video, upload.read(), upload.name, replace=caption, **fields)
                else:
                    caption = update_caption(caption, **fields)
            except CaptionError as exc:
                form.add_error("file" if data["file"] else None, str(exc))
            else:
                messages.success(request, gettext("Caption track “%(label)s” saved.") % {"label": caption.label})
                return redirect(video.get_admin_edit_url())
        messages.error(request, gettext("The caption track could not be saved."))
    elif caption is not None:
        form = CaptionForm(
            initial={"language": caption.language, "kind": caption.kind, "label": caption.label,
                     "is_default": caption.is_default},
            replacing=True,
        )
    else:
        form = CaptionForm()
    title = gettext("Edit caption track") if replacing else gettext("Add a caption track")
    return _render(request, "private_video/videos/caption_form.html", video, title, form=form, caption=caption)


@require_http_methods(["GET", "POST"])
@per_video
def caption_add(request, video):
    return _caption_form_view(request, video)


@require_http_methods(["GET", "POST"])
@per_video
def caption_edit(request, video, caption_id):
    caption = get_object_or_404(Caption, video=video, pk=caption_id)
    return _caption_form_view(request, video, caption)


@require_http_methods(["GET", "POST"])
@per_video
def caption_delete(request, video, caption_id):
    caption = get_object_or_404(Caption, video=video, pk=caption_id)
    if request.method == "POST":
        delete_caption(caption, user=request.user)
        messages.success(request, gettext("Caption track “%(label)s” deleted.") % {"label": caption.label})
        return redirect(video.get_admin_edit_url())
    return _render(request, "private_video/videos/caption_delete.html", video,
                   gettext("Delete caption track"), caption=caption)


# --- chapters ---------------------------------------------------------------------


def _clean_time(value):
    try:
        return parse_time(value)
    except ValueError:
        raise ValidationError(gettext("Write a time in seconds or as m:ss, like 75 or 1:15.")) from None


class ChapterForm(forms.Form):
    start = forms.CharField(label=_("Start (m:ss)"), max_length=16, required=False)
    title = forms.CharField(label=_("Title"), max_length=255, required=False)

    def clean(self):
        data = super().clean()
        start, title = (data.get("start") or "").strip(), (data.get("title") or "").strip()
        if start and not title:
            self.add_error("title", gettext("A chapter needs a title."))
        if title and not start:
            self.add_error("start", gettext("A chapter needs a start time."))
        if start:
            try:
                data["seconds"] = _clean_time(start)
            except ValidationError as exc:
                self.add_error("start", exc)
        return data


ChapterFormSet = formset_factory(ChapterForm, extra=3, can_delete=True, max_num=MAX_CHAPTERS, validate_max=True)


class PasteChaptersForm(forms.Form):
    lines = forms.CharField(
        label=_("Or paste chapter lines"),
        required=False,
        widget=forms.Textarea(attrs={"rows": 6, "placeholder": "00:00 Introduction\n01:30 The method"}),
        help_text=_("One chapter a line: a time then a title. When filled in, these lines replace the rows above."),
    )


@require_http_methods(["GET", "POST"])
@per_video
def chapters_edit(request, video):
    chapter_error = ""
    if request.method == "POST":
        formset = ChapterFormSet(request.POST, prefix="chapters")
        paste = PasteChaptersForm(request.POST)
        chapters = None
        if paste.is_valid() and paste.cleaned_data["lines"].strip():
            try:
                chapters = parse_chapter_lines(paste.cleaned_data["lines"])
            except ValidationError as exc:
                paste.add_error("lines", exc)
        elif formset.is_valid():
            chapters = [
                (form.cleaned_data["seconds"], form.cleaned_data["title"])
                for form in formset.forms
                if form.cleaned_data.get("seconds") is not None and not form.cleaned_data.get("DELETE")
            ]
        if chapters is not None:
            try:
                set_chapters(video, chapters, user=request.user)
            except CaptionError as exc:
                chapter_error = str(exc)
            else:
                messages.success(request, gettext("Chapters saved."))
                return redirect(video.get_admin_edit_url())
        messages.error(request, gettext("The chapters could not be saved."))
    else:
        formset = ChapterFormSet(
            prefix="chapters",
            initial=[{"start": c.start_display, "title": c.title} for c in video.chapters.all()],
        )
        paste = PasteChaptersForm()
    return _render(request, "private_video/videos/chapters_form.html", video, gettext("Chapters"),
                   formset=formset, paste=paste, chapter_error=chapter_error)


# --- poster ---------------------------------------------------------------------------


class PosterImageForm(forms.Form):
    image = forms.ImageField(label=_("Upload an image"), help_text=_("JPEG, PNG or WebP."))


class PosterFrameForm(forms.Form):
    time = forms.CharField(label=_("Or use the frame at (seconds or m:ss)"), max_length=16)

    def clean_time(self):
        return _clean_time(self.cleaned_data["time"])


@require_http_methods(["GET", "POST"])
@per_video
def poster_edit(request, video):
    image_form, frame_form = PosterImageForm(), PosterFrameForm(
        initial={"time": _format_seconds(video.poster_time) if video.poster_time is not None else ""}
    )
    if request.method == "POST":
        action = request.POST.get("action")
        try:
            if action == "image":
                image_form = PosterImageForm(request.POST, request.FILES)
                if image_form.is_valid():
                    set_poster_image(video, image_form.cleaned_data["image"], user=request.user)
                    messages.success(request, gettext("Poster saved."))
                    return redirect(video.get_admin_edit_url())
            elif action == "frame":
                frame_form = PosterFrameForm(request.POST)
                if frame_form.is_valid():
                    set_poster_frame(video, frame_form.cleaned_data["time"], user=request.user)
                    messages.success(request, gettext("Poster saved."))
                    return redirect(video.get_admin_edit_url())
            elif action == "clear":
                clear_poster(video, user=request.user)
                messages.success(request, gettext("The poster is the automatic one again."))
                return redirect(video.get_admin_edit_url())
        except CaptionError as exc:
            (image_form if action == "image" else frame_form).add_error(None, str(exc))
        messages.error(request, gettext("The poster could not be changed."))
    return _render(request, "private_video/videos/poster_form.html", video, gettext("Poster"),
                   image_form=image_form, frame_form=frame_form)


@require_http_methods(["GET", "HEAD"])
@per_video
def poster_file(request, video):
    """The editor's poster, for the admin only: checked per video, never cached by a shared cache."""
    if not video.poster_file.name:
        raise Http404
    try:
        handle = video.poster_file.storage.open(video.poster_file.name, "rb")
    except FileNotFoundError:
        raise Http404 from None
    response = FileResponse(handle, content_type="image/jpeg")
    response["Cache-Control"] = "private, no-store"
    response["X-Content-Type-Options"] = "nosniff"
    return response
