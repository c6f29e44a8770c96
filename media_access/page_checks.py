"""Checks on the page form for what media_access owns: viewer grants.

Managing who may watch a page is its editors' job, but a grant that allows
downloads hands out the original file, which the policy otherwise gives only
to users with change permission on the video. So a page editor may add or
widen a download grant (new, switched on, pointed at someone else, or its
expiry pushed back) only with change permission on every video the page
holds; otherwise they could grant themselves what the library refuses them.
A download grant someone allowed made may be kept as it is, or narrowed.

Registered in ``wagtail_hooks`` on ``clean_video_page_form``, the library's
hook in ``private_video.page_forms.VideoChoicePageForm.clean``, and on
``check_video_page_revert`` for the admin API's revert, which restores an old
revision's grants without the form.
"""

from django.utils.translation import gettext_lazy as _

from private_video.page_forms import videos_held_by
from private_video.permissions import video_permission_policy, videos_user_may

from .models import ViewerGrant

GRANTS = "viewer_grants"
NOT_ALLOWED = _(
    "You may not allow downloads: that needs permission to edit every video on this page."
)


def _widens(pk, can_download, user_id, group_id, expires_at, page=None):
    """A grant with these values makes or widens a download grant compared
    with its stored row (of ``page``, when given)."""
    if not can_download:
        return False
    stored = ViewerGrant.objects.filter(pk=pk, **({"page": page} if page else {})).first() if pk else None
    if stored is None or not stored.can_download:
        return True
    if user_id != stored.user_id or group_id != stored.group_id:
        return True
    return stored.expires_at is not None and (expires_at is None or expires_at > stored.expires_at)


def _form_widens(form, cleaned):
    user, group = cleaned.get("user"), cleaned.get("group")
    return _widens(form.instance.pk, cleaned.get("can_download"), user.pk if user else None,
                   group.pk if group else None, cleaned.get("expires_at"))


def _may_change_all(user, videos):
    policy = video_permission_policy()
    return user is not None and all(policy.user_has_permission_for_instance(user, "change", video) for video in videos)


def refuse_download_grants_in_revert(user, page, restored):
    """``check_video_page_revert``: the admin API's revert restores an old
    revision's grants without the page form. An old download grant, since
    narrowed or removed, must not come back for an editor who could not
    make it now."""
    grants = getattr(restored, GRANTS, None)
    ids = videos_held_by(restored)
    if grants is None or videos_user_may(user, "change").filter(pk__in=ids).count() == len(ids):
        return None
    for grant in grants.all():
        if _widens(grant.pk, grant.can_download, grant.user_id, grant.group_id, grant.expires_at, page=page):
            return NOT_ALLOWED
    return None


def refuse_download_grants_without_change(page_form, videos):
    formset = getattr(page_form, "formsets", {}).get(GRANTS)
    if formset is None or formset.model is not ViewerGrant:
        return
    if _may_change_all(page_form.for_user, videos):
        return
    formset.is_valid()  # cleans the grant forms
    for form in formset.forms:
        cleaned = getattr(form, "cleaned_data", None)
        if not cleaned or (formset.can_delete and formset._should_delete_form(form)):
            continue
        if _form_widens(form, cleaned):
            form.add_error("can_download", NOT_ALLOWED)
