import os

from django import forms
from django.core.files.uploadedfile import UploadedFile
from django.db import transaction
from django.template.defaultfilters import filesizeformat
from django.utils.functional import cached_property
from django.utils.translation import gettext
from django.utils.translation import gettext_lazy as _
from wagtail.admin.forms import WagtailAdminModelForm
from wagtail.admin.widgets import AdminTagWidget
from wagtail.models import Collection
from wagtail.permissions import policy_registry

from . import get_video_model
from .validation import max_upload_size, validate_video_upload

Video = get_video_model()


def title_from_filename(filename):
    stem = os.path.splitext(os.path.basename(filename or ""))[0]
    return stem.replace("_", " ").strip()[:255] or gettext("Untitled video")


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

    def __init__(self, *args, upload_needs=("add",), **kwargs):
        # upload_needs: the permissions a new video's collection must carry;
        # the chooser's upload tab adds "choose", as its upload is chosen at once.
        self.upload_needs = tuple(upload_needs)
        super().__init__(*args, **kwargs)
        self.probe_info = None
        self.replaced_file_name = self.instance.file.name if self.instance.pk else None
        self.original_collection = self.instance.collection if self.instance.pk else None
        # The uploader's file name can be long; only the generated key is stored.
        self.fields["file"].max_length = None
        self.fields["file"].help_text = _("Largest upload: %(size)s.") % {"size": filesizeformat(max_upload_size())}
        self.fields["title"].required = False
        if self.instance.pk:
            self.fields["file"].required = False
            self.fields["file"].label = _("Replace file")
        self._limit_collections()

    @cached_property
    def permission_policy(self):
        return policy_registry.get_by_type(Video)

    def _user_may_change_in(self, collection):
        """Whether the user may change this video if it were in ``collection``."""
        as_if_there = Video(collection=collection, uploaded_by_user=self.instance.uploaded_by_user)
        return self.permission_policy.user_has_permission_for_instance(
            self.for_user, "change", as_if_there
        )

    def _allowed_collections(self):
        """The collections this form may put the video in, for this user. A new
        video: where the user may add (and choose, from the chooser). An
        existing one: where the user could still change it once there (change
        permission, or add permission on their own upload), so a move needs
        rights on the new collection as well as on the old one."""
        if self.for_user is None:
            return Collection.objects.all()
        policy = self.permission_policy
        if not self.instance.pk:
            collections = Collection.objects.all()
            for action in self.upload_needs:
                collections = collections & policy.collections_user_has_permission_for(
                    self.for_user, action
                )
            return collections
        candidates = policy.collections_user_has_permission_for(self.for_user, "change")
        return Collection.objects.filter(
            pk__in=[c.pk for c in candidates if self._user_may_change_in(c)]
        )

    def _limit_collections(self):
        if "collection" not in self.fields:
            return
        field = self.fields["collection"]
        collections = self._allowed_collections()
        field.queryset = collections
        field.empty_label = None
        if self.instance.pk:
            # Never a silent move: an edit says where the video is to be.
            field.required = True
            field.error_messages["invalid_choice"] = _("You may not move this video to that collection.")
        else:
            # Uploads from the multi-file page and the chooser may leave it out:
            # clean_collection picks the topmost one the user may add to.
            field.required = False
            field.error_messages["invalid_choice"] = _("You may not add videos to that collection.")
        if collections.count() == 1:
            # One choice is no choice: keep it, but don't ask.
            field.widget = forms.HiddenInput()
            if not self.instance.pk:
                field.initial = collections.first().pk

    def clean_collection(self):
        collection = self.cleaned_data.get("collection")
        if collection is None and "collection" in self.fields and not self.instance.pk:
            collection = self.fields["collection"].queryset.order_by("path").first()
            if collection is None:
                raise forms.ValidationError(_("You may not add videos to any collection."))
        return collection

    def clean(self):
        cleaned = super().clean()
        if (
            self.instance.pk
            and self.for_user is not None
            and not self._user_may_change_in(self.original_collection)
        ):
            # The views already answer 404 for such a video; the form holds
            # the line too, whoever uses it.
            raise forms.ValidationError(_("You may not change this video."))
        if not cleaned.get("title"):
            uploaded = cleaned.get("file")
            if isinstance(uploaded, UploadedFile):
                cleaned["title"] = title_from_filename(uploaded.name)
            elif self.instance.pk:
                self.add_error("title", _("A title is required."))
        return cleaned

    def clean_file(self):
        uploaded = self.cleaned_data.get("file")
        if isinstance(uploaded, UploadedFile):
            self.probe_info = validate_video_upload(uploaded)
        return uploaded

    def save(self, commit=True):
        video = self.instance
        video.title = self.cleaned_data.get("title") or video.title
        uploaded = self.cleaned_data.get("file")
        if isinstance(uploaded, UploadedFile):
            video.original_filename = os.path.basename(uploaded.name)[:255]
            video.file_size = uploaded.size
            video.apply_probe(self.probe_info)
            # The uploader owns a new video; replacing an existing video's file
            # changes no ownership (as with Wagtail's documents): an owner gets
            # rights the collection's permissions may not give.
            if self.for_user is not None and video._state.adding and not video.uploaded_by_user_id:
                video.uploaded_by_user = self.for_user
        video = super().save(commit=commit)
        old = self.replaced_file_name
        if commit and old and old != video.file.name:
            # The old original goes only once the new one is committed: a
            # failed replace loses nothing.
            storage = video.file.storage
            transaction.on_commit(lambda: storage.delete(old))
        return video
