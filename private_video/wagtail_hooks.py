from django.urls import reverse
from django.utils.translation import gettext_lazy as _
from django.utils.translation import ngettext
from wagtail import hooks
from wagtail.admin.forms.collections import collection_member_permission_formset_factory

from . import get_video_model, page_actions, video_model_problem

# The model is looked up inside each hook, not here: with PRIVATE_VIDEO_MODEL
# naming no video model, importing this module (and loading the admin's URLs)
# must not fail; the system check private_video.E004 reports it and the
# library registers nothing.


@hooks.register("register_admin_viewset")
def register_video_viewsets():
    if video_model_problem():
        return []
    from .views.chooser import video_chooser_viewset
    from .views.videos import video_viewset

    return [video_viewset, video_chooser_viewset]


def register_video_permissions_panel():
    return collection_member_permission_formset_factory(
        get_video_model(),
        [
            ("add_video", _("Add"), _("Upload videos and edit the ones you uploaded")),
            ("change_video", _("Edit"), _("Edit and delete any video")),
            ("choose_video", _("Choose"), _("Select videos in choosers")),
        ],
        "private_video/permissions/video_permissions_formset.html",
    )


if video_model_problem() is None:
    # Wagtail appends whatever this hook returns, so it is registered only for a real model.
    hooks.register("register_group_permission_panel", register_video_permissions_panel)


@hooks.register("describe_collection_contents")
def describe_collection_videos(collection):
    if video_model_problem():
        return None
    count = get_video_model().objects.filter(collection=collection).count()
    if count:
        return {
            "count": count,
            "count_text": ngettext("%(count)s video", "%(count)s videos", count)
            % {"count": count},
            "url": reverse("private_video:index") + f"?collection={collection.pk}",
        }


@hooks.register("describe_collection_contents")
def describe_collection_uploads(collection):
    """Uploads still arriving or being checked keep their collection: Wagtail
    refuses to delete a collection that has contents, and these would
    otherwise go with it mid-way."""
    from .uploads.models import Upload

    count = Upload.objects.filter(
        collection=collection, state__in=[Upload.State.RECEIVING, Upload.State.PROCESSING]
    ).count()
    if count:
        return {
            "count": count,
            "count_text": ngettext("%(count)s upload in progress", "%(count)s uploads in progress", count)
            % {"count": count},
            "url": reverse("private_video:uploads"),
        }


# Copying a page, or the admin API restoring a revision, chooses its videos again.
hooks.register("before_copy_page", page_actions.before_copy_page)
hooks.register("construct_admin_api", page_actions.guard_admin_api)


@hooks.register("register_log_actions")
def register_track_log_actions(actions):
    # Captions, chapters and the poster change on the video: its history shows them.
    actions.register_action("private_video.caption_add", _("Add captions"), _("Added a caption track"))
    actions.register_action("private_video.caption_change", _("Change captions"), _("Changed a caption track"))
    actions.register_action("private_video.caption_delete", _("Delete captions"), _("Deleted a caption track"))
    actions.register_action("private_video.chapters_change", _("Change chapters"), _("Changed the chapters"))
    actions.register_action("private_video.poster_change", _("Change poster"), _("Changed the poster"))
    actions.register_action("private_video.poster_clear", _("Clear poster"), _("Went back to the automatic poster"))
