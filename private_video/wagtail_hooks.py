from django.urls import reverse
from django.utils.translation import ngettext
from wagtail import hooks
from wagtail.admin.forms.collections import collection_member_permission_formset_factory

from . import page_actions
from . import get_video_model
from .views.chooser import video_chooser_viewset
from .views.videos import video_viewset

Video = get_video_model()


@hooks.register("register_admin_viewset")
def register_video_viewsets():
    return [video_viewset, video_chooser_viewset]


@hooks.register("register_group_permission_panel")
def register_video_permissions_panel():
    return collection_member_permission_formset_factory(
        Video,
        [
            ("add_video", "Add", "Upload videos and edit the ones you uploaded"),
            ("change_video", "Edit", "Edit and delete any video"),
            ("choose_video", "Choose", "Select videos in choosers"),
        ],
        "private_video/permissions/video_permissions_formset.html",
    )


@hooks.register("describe_collection_contents")
def describe_collection_videos(collection):
    count = Video.objects.filter(collection=collection).count()
    if count:
        return {
            "count": count,
            "count_text": ngettext("%(count)s video", "%(count)s videos", count)
            % {"count": count},
            "url": reverse("private_video:index") + f"?collection={collection.pk}",
        }


# Copying a page, or the admin API restoring a revision, chooses its videos again.
hooks.register("before_copy_page", page_actions.before_copy_page)
hooks.register("construct_admin_api", page_actions.guard_admin_api)
