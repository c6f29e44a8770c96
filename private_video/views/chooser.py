"""The video chooser modal (search, pick, or upload in its second tab).

It lists, finds and returns only videos in collections where the user has
"choose" permission (as Wagtail's document chooser), narrowed further by any
`construct_video_chooser_queryset` hook; its upload tab puts a video only in a
collection where the user may both add and choose. The chosen views (one id,
or several) look a video up among the same videos, the hook applied: a video
the hook hides cannot be chosen by posting its id either (Wagtail's own
chosen views skip the hook)."""

from django.http import Http404
from django.utils.functional import cached_property
from django.utils.translation import gettext_lazy as _
from django.views.generic.base import View
from wagtail import hooks
from wagtail.admin.forms.choosers import BaseFilterForm, CollectionFilterMixin, SearchFilterMixin
from wagtail.admin.ui.tables import Column
from wagtail.admin.views.generic import chooser as chooser_views
from wagtail.admin.viewsets.chooser import ChooserViewSet
from wagtail.permissions import policy_registry

from ..forms import VideoForm
from .. import get_video_model
from ..permissions import videos_user_may
from .videos import refuse_oversize_upload

Video = get_video_model()

# A video uploaded from the chooser is chosen at once, so its collection must
# allow both.
CHOOSER_UPLOAD_NEEDS = ("add", "choose")


class VideoFilterForm(CollectionFilterMixin, SearchFilterMixin, BaseFilterForm):
    pass


class VideoCreationFormMixin(chooser_views.CreationFormMixin):
    def can_create(self):
        policy = policy_registry.get_by_type(Video)
        collections = None
        for action in CHOOSER_UPLOAD_NEEDS:
            allowed = policy.collections_user_has_permission_for(self.request.user, action)
            collections = allowed if collections is None else collections & allowed
        return collections.exists()

    def get_creation_form_kwargs(self):
        kwargs = super().get_creation_form_kwargs()
        kwargs["for_user"] = self.request.user
        kwargs["upload_needs"] = CHOOSER_UPLOAD_NEEDS
        if self.request.method in ("POST", "PUT"):
            kwargs["instance"] = Video(uploaded_by_user=self.request.user)
        return kwargs


CHOOSER_QUERYSET_HOOK = "construct_video_chooser_queryset"


def choosable_videos(request):
    """The videos ``request.user`` may pick in the chooser: those in
    collections where they have "choose", narrowed by every
    ``construct_video_chooser_queryset`` hook (``fn(queryset, request)``),
    as the listing and search narrow them."""
    queryset = videos_user_may(request.user, "choose")
    for fn in hooks.get_hooks(CHOOSER_QUERYSET_HOOK):
        queryset = fn(queryset, request)
    return queryset


class BaseVideoChooseView(chooser_views.BaseChooseView):
    # Wagtail's BaseChooseView runs the hook on this view's object list.
    construct_queryset_hook_name = CHOOSER_QUERYSET_HOOK

    def get_object_list(self):
        return videos_user_may(self.request.user, "choose").select_related("collection")

    @cached_property
    def collections(self):
        policy = policy_registry.get_by_type(Video)
        collections = policy.collections_user_has_permission_for(self.request.user, "choose")
        return collections if len(collections) > 1 else None

    def get_filter_form(self):
        return VideoFilterForm(self.request.GET, collections=self.collections)

    def filter_object_list(self, objects):
        # Wagtail hands url_filter_parameters to .filter() as they come: a
        # junk collection id matches nothing rather than raising.
        collection_id = self.request.GET.get("collection_id")
        if collection_id is not None and not _is_id(collection_id):
            return objects.none()
        return super().filter_object_list(objects)

    @property
    def columns(self):
        columns = super().columns
        if self.collections:
            columns.append(Column("collection", label=_("Collection"), accessor="collection.name"))
        return columns


class VideoChooseView(chooser_views.ChooseViewMixin, VideoCreationFormMixin, BaseVideoChooseView):
    pass


class VideoChooseResultsView(
    chooser_views.ChooseResultsViewMixin, VideoCreationFormMixin, BaseVideoChooseView
):
    pass


class VideoChosenView(chooser_views.ChosenView):
    def get_object(self, pk):
        if not _is_id(pk):
            raise Http404
        # The first match: a hook's join may list a video twice.
        video = choosable_videos(self.request).filter(pk=pk).first()
        if video is None:
            raise Http404
        return video


def _is_id(value):
    """A primary key the database can hold (a bigint): digits only, at most 18
    of them. Anything else matches nothing rather than raising in the ORM."""
    value = str(value)
    return value.isascii() and value.isdigit() and len(value) <= 18


class VideoChosenMultipleView(chooser_views.ChosenMultipleView):
    def get_objects(self, pks):
        pks = [pk for pk in pks if _is_id(pk)]
        # Each video once, whatever join a hook adds.
        return Video.objects.filter(pk__in=choosable_videos(self.request).filter(pk__in=pks).values("pk"))


class VideoChooserCreateView(chooser_views.CreateViewMixin, VideoCreationFormMixin,
                             chooser_views.ChosenResponseMixin, View):
    pass


class VideoChooserViewSet(ChooserViewSet):
    model = Video
    icon = "media"
    choose_one_text = _("Choose a video")
    choose_another_text = _("Choose another video")
    edit_item_text = _("Edit this video")
    create_action_label = _("Upload")
    creation_tab_label = _("Upload")
    creation_form_class = VideoForm
    url_filter_parameters = ["collection_id"]
    per_page = 12
    choose_view_class = VideoChooseView
    choose_results_view_class = VideoChooseResultsView
    chosen_view_class = VideoChosenView
    chosen_multiple_view_class = VideoChosenMultipleView
    create_view_class = VideoChooserCreateView

    @property
    def create_view(self):
        return refuse_oversize_upload(super().create_view)


video_chooser_viewset = VideoChooserViewSet("private_video_chooser", url_prefix="videos/chooser")
