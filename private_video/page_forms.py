"""The page editor's form: a page may only choose videos its editor may choose.

The chooser modal lists only videos the user may choose, but a POST can name
any id. ``VideoChoicePageForm`` checks every video the submitted page would
hold, on the server, whatever path saves it (save draft, publish, submit for
moderation, workflow actions, reverting to a revision: all validate this form
in Wagtail's create and edit views). A video the user may not choose gets a
form error on its field or block, and nothing is saved.
"""

from django import forms
from django.db import models
from django.utils.translation import gettext_lazy as _
from modelcluster.models import get_all_child_relations
from wagtail import hooks
from wagtail.admin.forms.pages import WagtailAdminPageForm
from wagtail.blocks import BlockField
from wagtail.fields import StreamField

from .blocks import chosen_videos, video_choice_error
from .permissions import video_permission_policy

NOT_ALLOWED = _("You do not have permission to choose this video.")


def _is_video_model(model):
    from . import get_video_model

    return isinstance(model, type) and issubclass(model, get_video_model())


def _video_form_field(field):
    return isinstance(field, forms.ModelChoiceField) and _is_video_model(field.queryset.model)


def video_ids_held_by(obj):
    """Ids of every video ``obj`` (a page, a revision's page object or one of
    their inline children) holds, in order and once each: foreign keys and
    many-to-many fields to the video model, every video chooser in its
    StreamFields (document order), then its child relations (InlinePanel rows)."""
    found = []
    for field in obj._meta.get_fields():
        if isinstance(field, StreamField):
            found.extend(video.pk for video in chosen_videos(field.stream_block, getattr(obj, field.name)))
        elif isinstance(field, models.ForeignKey) and _is_video_model(field.related_model):
            value = getattr(obj, field.attname)
            if value is not None:
                found.append(value)
        elif field.many_to_many and not field.auto_created and _is_video_model(field.related_model):
            found.extend(video.pk for video in getattr(obj, field.name).all())
    for relation in get_all_child_relations(obj):
        for child in getattr(obj, relation.get_accessor_name()).all():
            found.extend(video_ids_held_by(child))
    return list(dict.fromkeys(found))


def videos_held_by(obj):
    """The same ids as a set."""
    return set(video_ids_held_by(obj))


def videos_on_page(page):
    """Ids of the videos a page holds as stored and in its latest revision
    (what an editor may keep, and what a copy of the page takes along)."""
    specific = page.specific
    found = videos_held_by(specific)
    if specific.latest_revision_id:
        found |= videos_held_by(specific.get_latest_revision_as_object())
    return found


class VideoChoicePageForm(WagtailAdminPageForm):
    """Base form for any page type that holds videos.

    Every video the submitted page chooses (a foreign key or many-to-many
    field to the video model, any video chooser block at any depth of any
    StreamField, and the same in inline child forms) needs the user's
    ``choose`` permission on that video's collection
    (``private_video.permissions.video_permission_policy``). A video already on the page
    (its live content or its latest revision) may be kept without it, so an
    editor without video rights can still edit the page's other fields.
    Without ``for_user`` (a form built outside Wagtail's views) only videos
    already on the page are accepted.

    ``private_video.pages.VideoPageMixin`` sets it on a page type; or pass
    ``base_form_class=VideoChoicePageForm`` to your top-level panel.
    """

    video_not_allowed_message = NOT_ALLOWED

    def clean(self):
        cleaned_data = super().clean()
        # Every video the submitted page holds, for the checks below and the hook.
        self.submitted_videos = set()
        self._check_videos(self, cleaned_data)
        for formset in getattr(self, "formsets", {}).values():
            if not any(_video_form_field(field) for field in formset.form.base_fields.values()):
                continue
            formset.is_valid()  # cleans the child forms, as the form's own is_valid would
            for form in formset.forms:
                if getattr(form, "cleaned_data", None) and not (
                    formset.can_delete and formset._should_delete_form(form)
                ):
                    self._check_videos(form, form.cleaned_data)
        # Apps above the library check what they own on the same form (media_access:
        # a viewer grant that allows downloads needs change permission on the videos).
        for fn in hooks.get_hooks("clean_video_page_form"):
            fn(self, self.submitted_videos)
        return cleaned_data

    def _check_videos(self, form, cleaned_data):
        for name, field in list(form.fields.items()):
            if name not in cleaned_data:
                continue
            value = cleaned_data[name]
            if isinstance(field, BlockField):
                self.submitted_videos.update(chosen_videos(field.block, value))
                error = video_choice_error(field.block, value, self._refuse, self.video_not_allowed_message)
                if error is not None:
                    form.add_error(name, error)
            elif _video_form_field(field):
                videos = value if isinstance(field, forms.ModelMultipleChoiceField) else [value]
                self.submitted_videos.update(video for video in videos if video is not None)
                if any(video is not None and self._refuse(video) for video in videos):
                    form.add_error(name, forms.ValidationError(
                        self.video_not_allowed_message, code="video_not_allowed"))

    def _refuse(self, video):
        user = self.for_user
        if user is not None and video_permission_policy().user_has_permission_for_instance(
            user, "choose", video
        ):
            return False
        return video.pk not in self._videos_already_on_page

    @property
    def _videos_already_on_page(self):
        """Read from the database, not from ``self.instance``: the edit view's
        instance can be an old revision being restored."""
        if "_kept" not in self.__dict__:
            kept = set()
            if self.instance.pk is not None:
                from wagtail.models import Page

                page = Page.objects.filter(pk=self.instance.pk).first()
                if page is not None:
                    kept = videos_on_page(page)
            self.__dict__["_kept"] = kept
        return self.__dict__["_kept"]


def checks_video_choices(page_model):
    """The page type's admin form is a ``VideoChoicePageForm``: every video an
    editor put on such a page was checked against their "choose" permission.
    Wagtail's own page form takes any video id, so media_access serves no
    video from a page type without it (and the check private_video.W001 says so)."""
    if page_model not in _checked_page_types:
        try:
            form_class = page_model.get_edit_handler().get_form_class()
        except Exception:  # noqa: BLE001 - no usable admin form: nothing was checked
            form_class = None
        _checked_page_types[page_model] = isinstance(form_class, type) and issubclass(
            form_class, VideoChoicePageForm
        )
    return _checked_page_types[page_model]


# Page type -> checks_video_choices; page types and their edit handlers are fixed once loaded.
_checked_page_types = {}
