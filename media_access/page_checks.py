"""Checks on the page form for what media_access owns: viewer grants.

Managing who may watch a page is its editors' job, but a grant that allows
downloads hands out the original file, which the policy otherwise gives only
to users with change permission on the video. So a page editor may add or
widen a download grant (new, switched on, pointed at someone else, or its
expiry pushed back) only with change permission on every video the page
holds; otherwise they could grant themselves what the library refuses them.
A download grant someone allowed made may be kept as it is, or narrowed.

Registered in ``wagtail_hooks`` on ``clean_video_page_form``, the library's
hook in ``private_video.page_forms.VideoChoicePageForm.clean``.
"""

from django.utils.translation import gettext_lazy as _

from private_video.permissions import video_permission_policy

from .models import ViewerGrant

GRANTS = "viewer_grants"
NOT_ALLOWED = _(
    "You may not allow downloads: that needs permission to edit every video on this page."
)


def _widens(form, cleaned):
    """The form makes or widens a download grant compared with its stored row."""
    if not cleaned.get("can_download"):
        return False
    pk = form.instance.pk
    stored = ViewerGrant.objects.filter(pk=pk).first() if pk else None
    if stored is None or not stored.can_download:
        return True
    user, group = cleaned.get("user"), cleaned.get("group")
    if (user.pk if user else None) != stored.user_id or (group.pk if group else None) != stored.group_id:
        return True
    expires_at = cleaned.get("expires_at")
    return stored.expires_at is not None and (expires_at is None or expires_at > stored.expires_at)


def refuse_download_grants_without_change(page_form, videos):
    formset = getattr(page_form, "formsets", {}).get(GRANTS)
    if formset is None or formset.model is not ViewerGrant:
        return
    user = page_form.for_user
    policy = video_permission_policy()
    if user is not None and all(
        policy.user_has_permission_for_instance(user, "change", video) for video in videos
    ):
        return
    formset.is_valid()  # cleans the grant forms
    for form in formset.forms:
        cleaned = getattr(form, "cleaned_data", None)
        if not cleaned or (formset.can_delete and formset._should_delete_form(form)):
            continue
        if _widens(form, cleaned):
            form.add_error("can_download", NOT_ALLOWED)
