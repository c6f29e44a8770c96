import os

from django import forms
from django.core.files.uploadedfile import UploadedFile
from django.db import transaction
from django.template.defaultfilters import filesizeformat
from django.utils.functional import cached_property
from wagtail.admin.forms import WagtailAdminModelForm
from wagtail.admin.widgets import AdminTagWidget
from wagtail.models import Collection
from wagtail.permissions import policy_registry

from .models import Video
from .validation import max_upload_size, validate_video_upload


def title_from_filename(filename):
    stem = os.path.splitext(os.path.basename(filename or ""))[0]
    return stem.replace("_", " ").strip()[:255] or "Untitled video"


class VideoForm(WagtailAdminModelForm):
    """Upload, edit and replace a video. Used by the library, its upload page
    and the chooser's upload tab, so all three validate the same way."""

    class Meta:
        model = Video
        fields = ["title", "file", "collection", "tags"]
        widgets = {
            "tags": AdminTagWidget,
            "file": forms.FileInput(attrs={"accept": "video/*"}),
        }

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        self.probe_info = None
        self.replaced_file_name = self.instance.file.name if self.instance.pk else None
        # The uploader's file name can be long; only the generated key is stored.
        self.fields["file"].max_length = None
        self.fields["file"].help_text = "Largest upload: %s." % filesizeformat(max_upload_size())
        self.fields["title"].required = False
        if self.instance.pk:
            self.fields["file"].required = False
            self.fields["file"].label = "Replace file"
        self._limit_collections()

    @cached_property
    def permission_policy(self):
        return policy_registry.get_by_type(Video)

    def _limit_collections(self):
        if "collection" not in self.fields:
            return
        if self.for_user is None:
            collections = Collection.objects.all()
        else:
            collections = self.permission_policy.collections_user_has_permission_for(
                self.for_user, "add"
            )
        if self.instance.pk and self.instance.collection_id:
            collections = collections | Collection.objects.filter(pk=self.instance.collection_id)
        self.fields["collection"].queryset = collections
        self.fields["collection"].empty_label = None
        # Uploads from the multi-file page and the chooser may leave it out:
        # clean_collection picks the topmost one the user may add to.
        self.fields["collection"].required = False
        if collections.count() == 1:
            # One choice is no choice: keep it, but don't ask.
            self.fields["collection"].widget = forms.HiddenInput()
            self.fields["collection"].initial = collections.first().pk

    def clean_collection(self):
        collection = self.cleaned_data.get("collection")
        if collection is None and "collection" in self.fields:
            collection = self.fields["collection"].queryset.order_by("path").first()
            if collection is None:
                raise forms.ValidationError("You may not add videos to any collection.")
        return collection

    def clean_file(self):
        uploaded = self.cleaned_data.get("file")
        if isinstance(uploaded, UploadedFile):
            self.probe_info = validate_video_upload(uploaded)
        return uploaded

    def clean(self):
        cleaned = super().clean()
        if not cleaned.get("title"):
            uploaded = cleaned.get("file")
            if isinstance(uploaded, UploadedFile):
                cleaned["title"] = title_from_filename(uploaded.name)
            elif self.instance.pk:
                self.add_error("title", "A title is required.")
        return cleaned

    def save(self, commit=True):
        video = self.instance
        video.title = self.cleaned_data.get("title") or video.title
        uploaded = self.cleaned_data.get("file")
        if isinstance(uploaded, UploadedFile):
            video.original_filename = os.path.basename(uploaded.name)[:255]
            video.file_size = uploaded.size
            video.apply_probe(self.probe_info)
            if self.for_user is not None and not video.uploaded_by_user_id:
                video.uploaded_by_user = self.for_user
        video = super().save(commit=commit)
        old = self.replaced_file_name
        if commit and old and old != video.file.name:
            # The old original goes only once the new one is committed: a
            # failed replace loses nothing.
            storage = video.file.storage
            transaction.on_commit(lambda: storage.delete(old))
        return video
