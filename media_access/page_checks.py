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
from wagtail.models import Page

from private_video.page_forms import videos_held_by, videos_on_page
from private_video.permissions import video_ids_user_may_not

from .models import ViewerGrant

GRANTS = "viewer_grants"
NOT_ALLOWED = _(
    "You may not allow downloads: that needs permission to edit every video on this page."
)
COPY_NOT_ALLOWED = _(
    "You may not copy this page: its viewers may download a video you may not edit."
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


def _not_changeable(user, ids):
    return video_ids_user_may_not(user, "change", ids)


def _new_videos_out_of_reach(user, page, ids):
    """Videos among ``ids`` the user may not change and that the page does
    not hold yet (live or in its latest revision): a download grant kept as
    it is would reach them for the first time."""
    out_of_reach = _not_changeable(user, ids)
    stored = Page.objects.filter(pk=page.pk).first() if out_of_reach and page is not None and page.pk else None
    if stored is not None:
        out_of_reach -= videos_on_page(stored)
    return out_of_reach


def refuse_download_grants_in_revert(user, page, restored):
    """``check_video_page_revert``: the admin API's revert restores an old
    revision's grants without the page form. An old download grant, since
    narrowed or removed, must not come back for an editor who could not
    make it now, nor reach a video the page does not hold now."""
    grants = getattr(restored, GRANTS, None)
    ids = videos_held_by(restored)
    if grants is None or not _not_changeable(user, ids):
        return None
    new_videos = _new_videos_out_of_reach(user, page, ids)
    for grant in grants.all():
        if grant.can_download and (new_videos or _widens(
            grant.pk, grant.can_download, grant.user_id, grant.group_id, grant.expires_at, page=page
        )):
            return NOT_ALLOWED
    return None


def refuse_download_grants_in_copy(user, pages):
    """``check_video_page_copy``: a copy (or alias, or translation copy)
    makes every download grant of the pages copied anew; like a new grant
    made in the form, it needs change permission on that page's videos."""
    for page in pages:
        grants = getattr(page.specific, GRANTS, None)
        if grants is None or not grants.filter(can_download=True).exists():
            continue
        if _not_changeable(user, videos_on_page(page)):
            return COPY_NOT_ALLOWED
    return None


def refuse_download_grants_without_change(page_form, videos):
    formset = getattr(page_form, "formsets", {}).get(GRANTS)
    if formset is None or formset.model is not ViewerGrant:
        return
    user = page_form.for_user
    ids = {video.pk for video in videos}
    if not _not_changeable(user, ids):
        return
    # A download grant kept as it is stays only while it reaches no video
    # out of the user's reach that the page did not hold before.
    new_videos = _new_videos_out_of_reach(user, page_form.instance, ids)
    formset.is_valid()  # cleans the grant forms
    for form in formset.forms:
        cleaned = getattr(form, "cleaned_data", None)
        if not cleaned or (formset.can_delete and formset._should_delete_form(form)):
            continue
        if cleaned.get("can_download") and (new_videos or _form_widens(form, cleaned)):
            form.add_error("can_download", NOT_ALLOWED)
