"""The video library in the Wagtail admin: listing, upload, edit, delete, usage.

Every view checks the user's collection permissions on *that* video: objects
are looked up among the videos the user has rights on (private_video.permissions), so
another collection's video is a 404 and nothing about it changes."""

import json
from functools import wraps

import django_filters
from django.http import HttpResponse, JsonResponse
from django.template.defaultfilters import filesizeformat
from django.template.loader import render_to_string
from django.urls import reverse
from django.utils.functional import cached_property
from django.utils.translation import gettext
from django.utils.translation import gettext_lazy as _
from django.views.decorators.csrf import csrf_exempt, csrf_protect
from wagtail.admin.filters import WagtailFilterSet
from wagtail.admin.ui.tables import Column, DateColumn, TitleColumn
from wagtail.admin.views import generic
from wagtail.admin.views.generic.history import HistoryView
from wagtail import hooks
from wagtail.admin.views.generic.usage import UsageView
from wagtail.admin.viewsets.model import ModelViewSet
from wagtail.permissions import policy_registry

from ..forms import VideoForm
from .. import get_video_model
from ..permissions import videos_user_may
from ..spreadsheets import CsvFormulaGuardMixin
from ..validation import max_upload_request_size, max_upload_size

Video = get_video_model()


# --- oversize uploads -------------------------------------------------------------


def oversize_upload_response(request):
    """A 413 for an upload whose Content-Length is over the limit, decided from
    the header alone: nothing here touches request.POST or request.FILES."""
    try:
        length = int(request.META.get("CONTENT_LENGTH") or 0)
    except ValueError:
        return None  # Django reads a body with a malformed length as empty.
    if length <= max_upload_request_size():
        return None
    message = gettext("This upload is %(size)s; the largest video you can upload is %(limit)s.") % {
        "size": filesizeformat(length),
        "limit": filesizeformat(max_upload_size()),
    }
    accept = request.headers.get("Accept", "")
    if "application/json" in accept or request.headers.get("x-requested-with") == "XMLHttpRequest":
        return JsonResponse(
            {"success": False, "error_code": "file_too_large", "error_message": message}, status=413
        )
    html = render_to_string("private_video/videos/upload_too_large.html", {"message": message}, request=request)
    return HttpResponse(html, status=413)


def refuse_oversize_upload(view):
    """Wrap an upload view so an oversize POST is refused before its body is
    read. Django's CSRF middleware would read (and spool to disk) the whole
    multipart body to find the token, so this view is exempt from the
    middleware and runs the same CSRF check itself, after the size check."""
    protected = csrf_protect(view)

    @wraps(view)
    def wrapper(request, *args, **kwargs):
        if request.method == "POST":
            refusal = oversize_upload_response(request)
            if refusal is not None:
                return refusal
        return protected(request, *args, **kwargs)

    return csrf_exempt(wrapper)


# --- listing ---------------------------------------------------------------------


def collections_user_may_see(request):
    """The collection filter offers only collections the user has videos rights on."""
    policy = policy_registry.get_by_type(Video)
    return policy.collections_user_has_any_permission_for(request.user, ["add", "change"])


class VideoFilterSet(WagtailFilterSet):
    collection = django_filters.ModelChoiceFilter(
        queryset=collections_user_may_see, label=_("Collection")
    )
    tag = django_filters.CharFilter(field_name="tags__name", label=_("Tag"), distinct=True)

    class Meta:
        model = Video
        fields = ["collection", "tag"]


class TagsColumn(Column):
    cell_template_name = "private_video/videos/tags_cell.html"

    def get_value(self, instance):
        return [tag.name for tag in instance.tags.all()]


class VideoIndexView(CsvFormulaGuardMixin, generic.IndexView):
    """The listing, its search, filters and CSV/XLSX export: the videos the
    user may change (in collections with "change", or their own uploads where
    they may add), as Wagtail's documents index. No CSV cell starts a formula
    (a title or file name is anyone's text: private_video.spreadsheets)."""

    any_permission_required = ["add", "change", "delete"]

    def search_queryset(self, queryset):
        # The search fields reach across captions and tags: a video with two
        # matching tracks is still listed once.
        if not self.is_searching:
            return queryset
        matching = super().search_queryset(Video.objects.all()).values("pk")
        return queryset.filter(pk__in=matching)

    @cached_property
    def header_more_buttons(self):
        # The resumable uploads still under way, which their owner or an admin may cancel.
        from wagtail.admin.widgets.button import Button

        return super().header_more_buttons + [
            Button(_("Uploads in progress"), url=reverse("private_video:uploads"), icon_name="upload", priority=50)
        ]

    def get_base_queryset(self):
        queryset = (
            videos_user_may(self.request.user, "change", "delete")
            .select_related("collection")
            .prefetch_related("tags")
        )
        # Apps above the library add what their columns read (transcoding: the jobs).
        for fn in hooks.get_hooks("construct_video_listing_queryset"):
            queryset = fn(queryset, self.request)
        return queryset


class VideoEditView(generic.EditView):
    """The edit form, with the panels other apps add above it (transcoding:
    processing status, renditions and re-run) through the
    ``insert_video_edit_panels`` hook: ``fn(request, video)`` returns HTML or None."""

    template_name = "private_video/videos/edit.html"

    def get_queryset(self):
        return videos_user_may(self.request.user, "change")

    def get_context_data(self, **kwargs):
        context = super().get_context_data(**kwargs)
        panels = (fn(self.request, self.object) for fn in hooks.get_hooks("insert_video_edit_panels"))
        context["video_edit_panels"] = [panel for panel in panels if panel]
        # Captions, chapters and poster: one query each for the tracks, whatever their number.
        context["video_captions"] = list(self.object.captions.all())
        context["video_chapters"] = list(self.object.chapters.all())
        return context


class VideoDeleteView(generic.DeleteView):
    def get_queryset(self):
        return videos_user_may(self.request.user, "delete")


class VideoUsageView(UsageView):
    def get_base_object_queryset(self):
        return videos_user_may(self.request.user, "change")


class VideoHistoryView(HistoryView):
    def get_base_object_queryset(self):
        return videos_user_may(self.request.user, "change")


class VideoUploadView(generic.CreateView):
    """Drag and drop one or many files; each one is posted on its own (with
    its own progress bar) and answered with JSON. Without JavaScript the
    same URL takes a plain form post."""

    template_name = "private_video/videos/upload.html"

    def get_context_data(self, **kwargs):
        context = super().get_context_data(**kwargs)
        context["max_upload_size"] = max_upload_size()
        # Resumable uploads (tus or S3 multipart): the backend and endpoints for the page's script.
        from ..uploads.admin_views import upload_page_context

        context.update(upload_page_context())
        return context

    def json_error_response(self, error_code, error_message):
        response = super().json_error_response(error_code, error_message)
        if getattr(self, "form", None) is not None and self.form.errors:
            payload = json.loads(response.content)
            payload["errors"] = {
                field: [str(message) for message in messages]
                for field, messages in self.form.errors.items()
            }
            payload["error_message"] = " ".join(
                message for messages in payload["errors"].values() for message in messages
            )
            response.content = json.dumps(payload)
        return response

    def get_success_json(self):
        result = super().get_success_json()
        result["title"] = self.object.title
        result["duration"] = self.object.duration_display
        return result


class VideoViewSet(ModelViewSet):
    model = Video
    icon = "media"
    menu_label = _("Videos")
    menu_order = 310
    add_to_admin_menu = True
    url_prefix = "videos"
    name = "private_video"
    add_view_class = VideoUploadView
    index_view_class = VideoIndexView
    edit_view_class = VideoEditView
    delete_view_class = VideoDeleteView
    usage_view_class = VideoUsageView
    history_view_class = VideoHistoryView
    copy_view_enabled = False
    inspect_view_enabled = False
    form_fields = ["title", "file", "collection", "tags"]
    filterset_class = VideoFilterSet
    search_fields = ["title", "original_filename", "tags__name", "captions__text"]
    search_backend_name = None
    list_per_page = 30
    ordering = ["-created_at"]
    list_display = [
        TitleColumn("title", label=_("Title"), url_name="private_video:edit", sort_key="title"),
        Column("duration_display", label=_("Duration"), sort_key="duration"),
        Column("filesize_display", label=_("Size"), sort_key="file_size"),
        Column("collection", label=_("Collection"), accessor="collection.name"),
        TagsColumn("tags", label=_("Tags")),
        DateColumn("created_at", label=_("Uploaded"), sort_key="created_at"),
    ]
    list_export = ["title", "original_filename", "duration", "file_size", "collection", "created_at"]

    def get_form_class(self, for_update=False):
        return VideoForm

    @property
    def add_view(self):
        return refuse_oversize_upload(super().add_view)

    @property
    def edit_view(self):
        # The replace-file POST is an upload too.
        return refuse_oversize_upload(super().edit_view)

    def get_urlpatterns(self):
        from django.urls import path

        from . import tracks
        from ..uploads import urls as upload_urls

        return super().get_urlpatterns() + upload_urls.urlpatterns() + [
            path("edit/<int:pk>/captions/new/", tracks.caption_add, name="caption_add"),
            path("edit/<int:pk>/captions/<int:caption_id>/", tracks.caption_edit, name="caption_edit"),
            path("edit/<int:pk>/captions/<int:caption_id>/delete/", tracks.caption_delete, name="caption_delete"),
            path("edit/<int:pk>/chapters/", tracks.chapters_edit, name="chapters"),
            path("edit/<int:pk>/poster/", tracks.poster_edit, name="poster"),
            path("edit/<int:pk>/poster/image/", tracks.poster_file, name="poster_file"),
        ]

    def get_index_view_kwargs(self, **kwargs):
        # Columns other apps add (transcoding: status) through the
        # ``register_video_listing_columns`` hook, before "Uploaded".
        kwargs = super().get_index_view_kwargs(**kwargs)
        extra = [column for fn in hooks.get_hooks("register_video_listing_columns") for column in fn()]
        if extra:
            columns = list(kwargs["list_display"])
            kwargs["list_display"] = columns[:-1] + extra + columns[-1:]
        return kwargs


video_viewset = VideoViewSet()

