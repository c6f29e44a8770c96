"""Page actions that put videos on a page without the page form.

Copying a page (or creating an alias of it) makes a new page that holds the
source's videos, and the admin API's page actions (``/admin/api/main/pages/
<id>/action/<name>/``) copy, alias and revert without ever validating
``VideoChoicePageForm``. Each is choosing those videos again, so each needs
"choose" permission on every video the new content would hold, as a save
through the form does: otherwise an editor with page rights only could copy
a members-only page holding a private video into a public part of the tree,
publish the copy, and hand the video to anyone.

Wired in ``private_video.wagtail_hooks``: ``before_copy_page`` for the admin's copy
view (copy and alias) and ``construct_admin_api`` for the API.
"""

from django.contrib import messages
from django.core.exceptions import PermissionDenied
from django.shortcuts import redirect
from django.utils.translation import gettext_lazy as _
from wagtail import hooks

from .page_forms import videos_held_by, videos_on_page
from .permissions import video_ids_user_may_not

NOT_ALLOWED = _("You may not copy this page: it holds a video you may not choose.")
REVERT_NOT_ALLOWED = _("You may not restore this revision: it holds a video you may not choose.")


def videos_of_pages(pages):
    found = set()
    for page in pages:
        found |= videos_on_page(page)
    return found


def unchoosable(user, video_ids, kept=()):
    """The ids among ``video_ids`` that ``user`` may not choose (and that are not in ``kept``)."""
    return video_ids_user_may_not(user, "choose", set(video_ids) - set(kept))


def pages_copied(page, *, recursive=False, with_ancestors=False):
    pages = [page]
    if recursive:
        pages += list(page.get_descendants())
    if with_ancestors:
        pages += list(page.get_ancestors().filter(depth__gt=1))
    return pages


# --- the admin's copy view (copy and alias) ----------------------------------------------


def before_copy_page(request, page):
    """Refuse a copy or alias holding any video the user may not choose; on the
    form (GET) the page itself, on the POST with its subpages if asked."""
    recursive = request.method == "POST" and bool(request.POST.get("copy_subpages"))
    pages = pages_copied(page, recursive=recursive)
    message = NOT_ALLOWED if unchoosable(request.user, videos_of_pages(pages)) else _copy_hooks(request.user, pages)
    if message:
        messages.error(request, message)
        parent = page.get_parent()
        return redirect("wagtailadmin_explore", parent.pk if parent else page.pk)
    return None


# --- the admin API's page actions --------------------------------------------------------


def _guarded(action_class, refused_for):
    class Guarded(action_class):
        def execute(self, instance, data):
            message = refused_for(self.request.user, instance, data)
            if message:
                raise PermissionDenied(message)
            return super().execute(instance, data)

    Guarded.__name__ = Guarded.__qualname__ = f"VideoChoice{action_class.__name__}"
    return Guarded


def _copy_refused(user, page, data):
    pages = pages_copied(page, recursive=data.get("recursive", False),
                         with_ancestors=data.get("copy_parents", False))
    return NOT_ALLOWED if unchoosable(user, videos_of_pages(pages)) else _copy_hooks(user, pages)


def _copy_hooks(user, pages):
    """Apps above the library check what they own in the copied pages
    (media_access: download grants copied anew need change permission)."""
    for fn in hooks.get_hooks(COPY_HOOK):
        message = fn(user, pages)
        if message:
            return message
    return None


# ``fn(user, pages)`` → a refusal message or None, for a copy, alias or
# translation copy of ``pages`` (stored pages), by the admin or its API.
COPY_HOOK = "check_video_page_copy"


def _revert_refused(user, page, data):
    revision = page.revisions.filter(pk=data.get("revision_id")).first()
    if revision is None:
        return None  # Wagtail's own 404
    restored = revision.as_object()
    # As the page form: a video already on the page (live or latest) may stay.
    kept = videos_of_pages([page])
    if unchoosable(user, videos_held_by(restored), kept):
        return REVERT_NOT_ALLOWED
    # Apps above the library check what they own in the restored content, as
    # the page form's ``clean_video_page_form`` hook does (media_access: an
    # old download grant coming back needs change permission on the videos).
    for fn in hooks.get_hooks(REVERT_HOOK):
        message = fn(user, page, restored)
        if message:
            return message
    return None


# ``fn(user, page, restored)`` → a refusal message or None, for an admin API
# revert to ``restored`` (the old revision's page object, never saved).
REVERT_HOOK = "check_video_page_revert"


GUARDS = {
    "copy": _copy_refused,
    "create_alias": _copy_refused,
    "copy_for_translation": _copy_refused,
    "revert_to_page_revision": _revert_refused,
}


def guard_admin_api(router):
    """``construct_admin_api``: the pages endpoint again, with the actions
    that copy or restore content checking the videos it holds."""
    from wagtail.admin.api.views import PagesAdminAPIViewSet

    base = router._endpoints.get("pages", PagesAdminAPIViewSet)
    actions = dict(base.actions)
    for name, refused_for in GUARDS.items():
        if name in actions:
            actions[name] = _guarded(actions[name], refused_for)
    router.register_endpoint("pages", type("VideoChoicePagesAdminAPIViewSet", (base,), {"actions": actions}))
