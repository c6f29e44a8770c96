"""The video library in the Wagtail admin: listing, upload, edit, delete, usage."""

import json

import django_filters
from django.urls import path
from wagtail.admin.filters import WagtailFilterSet
from wagtail.admin.ui.tables import Column, DateColumn, TitleColumn
from wagtail.admin.views import generic
from wagtail.admin.viewsets.model import ModelViewSet
from wagtail.models import Collection

from transcoding.views import processing_context, processing_status, rerun_transcode

from ..forms import VideoForm
from ..models import Video


class VideoFilterSet(WagtailFilterSet):
    collection = django_filters.ModelChoiceFilter(
        queryset=Collection.objects.all(), label="Collection"
    )
    tag = django_filters.CharFilter(field_name="tags__name", label="Tag", distinct=True)

    class Meta:
        model = Video
        fields = ["collection", "tag"]


class TagsColumn(Column):
    cell_template_name = "cms/videos/tags_cell.html"

    def get_value(self, instance):
        return [tag.name for tag in instance.tags.all()]


class StatusColumn(Column):
    cell_template_name = "cms/videos/status_cell.html"

    class Media:
        js = ["transcoding/js/processing-status.js"]

    def get_value(self, instance):
        return instance.status


class VideoIndexView(generic.IndexView):
    def get_base_queryset(self):
        return (
            super()
            .get_base_queryset()
            .select_related("collection")
            .prefetch_related("tags", "transcode_jobs")
        )


class VideoEditView(generic.EditView):
    """The edit form, with processing status, renditions and re-run above it."""

    template_name = "cms/videos/edit.html"

    def get_context_data(self, **kwargs):
        context = super().get_context_data(**kwargs)
        context["processing"] = processing_context(self.request, self.object)
        return context


class VideoUploadView(generic.CreateView):
    """Drag and drop one or many files; each one is posted on its own (with
    its own progress bar) and answered with JSON. Without JavaScript the
    same URL takes a plain form post."""

    template_name = "cms/videos/upload.html"

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
    menu_label = "Videos"
    menu_order = 310
    add_to_admin_menu = True
    url_prefix = "videos"
    name = "cms_videos"
    add_view_class = VideoUploadView
    index_view_class = VideoIndexView
    edit_view_class = VideoEditView
    copy_view_enabled = False
    inspect_view_enabled = False
    form_fields = ["title", "file", "collection", "tags"]
    filterset_class = VideoFilterSet
    search_fields = ["title", "original_filename", "tags__name"]
    search_backend_name = None
    list_per_page = 30
    ordering = ["-created_at"]
    list_display = [
        TitleColumn("title", label="Title", url_name="cms_videos:edit", sort_key="title"),
        Column("duration_display", label="Duration", sort_key="duration"),
        Column("filesize_display", label="Size", sort_key="file_size"),
        Column("collection", label="Collection", accessor="collection.name"),
        TagsColumn("tags", label="Tags"),
        StatusColumn("status", label="Status"),
        DateColumn("created_at", label="Uploaded", sort_key="created_at"),
    ]
    list_export = ["title", "original_filename", "duration", "file_size", "collection", "created_at"]

    def get_form_class(self, for_update=False):
        return VideoForm

    def get_urlpatterns(self):
        return super().get_urlpatterns() + [
            path("<int:pk>/rerun/", rerun_transcode, name="rerun_transcode"),
            path("<int:pk>/processing/", processing_status, name="processing_status"),
        ]


video_viewset = VideoViewSet()

