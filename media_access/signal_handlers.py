"""Viewer grant changes go to the page's history (Wagtail log actions), a
changed page password becomes a new restriction, and every ``video_served``
goes to the playback log.

Grants are page children (modelcluster): publishing saves every grant again,
so only real changes are logged, by comparing with the stored row.

Wagtail remembers a passed password restriction by its id in the session
(``passed_page_view_restrictions``), so changing the password in place would
leave every session that entered the old one inside. Instead, saving a
password restriction with a new password (or turning a restriction into a
password one) inserts it as a new row and deletes the old: the remembered id
names nothing any more, and Wagtail's own page check, the media policy and the
document check all ask for the new password on the next request. The insert
and delete also change the restricted page's decision scope
(``decisions``), so no remembered media decision under it survives. Ids are never reused (AUTOINCREMENT on
SQLite, sequences on PostgreSQL). Change passwords through ``save()`` (the
admin's privacy dialog does); a bulk ``QuerySet.update()`` bypasses this.
"""

from django.core.exceptions import ObjectDoesNotExist
from django.db.models.signals import post_delete, post_save, pre_save
from wagtail.log_actions import log
from wagtail.models import BaseViewRestriction, PageViewRestriction

from .access_log import log_served
from .models import ViewerGrant
from .signals import video_served


def _remember_previous(sender, instance, **kwargs):
    previous = ViewerGrant.objects.filter(pk=instance.pk).first() if instance.pk else None
    instance._previous_audit_data = previous.audit_data() if previous else None


def _log_saved(sender, instance, created, **kwargs):
    previous = getattr(instance, "_previous_audit_data", None)
    current = instance.audit_data()
    if created or previous is None:
        log(instance=instance.page.specific, action="media_access.grant_add", data={"grant": current})
    elif previous != current:
        log(
            instance=instance.page.specific,
            action="media_access.grant_change",
            data={"grant": current, "previous": previous},
        )


def _log_deleted(sender, instance, **kwargs):
    from wagtail.models import Page

    page = Page.objects.filter(pk=instance.page_id).first()
    if page is not None:
        try:
            specific = page.specific
        except ObjectDoesNotExist:
            # The page itself is being deleted (its own row went first); Wagtail logs that.
            return
        log(instance=specific, action="media_access.grant_revoke", data={"grant": instance.audit_data()})


def _new_row_for_a_new_password(sender, instance, raw=False, **kwargs):
    if raw or instance.pk is None or instance.restriction_type != BaseViewRestriction.PASSWORD:
        return
    previous = sender.objects.filter(pk=instance.pk).values("restriction_type", "password").first()
    if previous is None:
        return
    if previous["restriction_type"] == BaseViewRestriction.PASSWORD and previous["password"] == instance.password:
        return
    instance._replaces_restriction_id = instance.pk
    instance.pk = None
    instance._state.adding = True


def _delete_the_replaced_restriction(sender, instance, raw=False, **kwargs):
    replaced = instance.__dict__.pop("_replaces_restriction_id", None)
    if replaced is not None:
        # A queryset delete: not Wagtail's "privacy removed" log entry, the
        # save above already logged the edit. Should this fail, both rows stay
        # and a visitor must pass both: stricter, never looser.
        sender.objects.filter(pk=replaced).delete()


def register_signal_handlers():
    video_served.connect(log_served, dispatch_uid="media_access_playback_log")
    pre_save.connect(
        _new_row_for_a_new_password, sender=PageViewRestriction, dispatch_uid="media_access_password_pre"
    )
    post_save.connect(
        _delete_the_replaced_restriction, sender=PageViewRestriction, dispatch_uid="media_access_password_post"
    )
    pre_save.connect(_remember_previous, sender=ViewerGrant, dispatch_uid="media_access_grant_pre")
    post_save.connect(_log_saved, sender=ViewerGrant, dispatch_uid="media_access_grant_saved")
    post_delete.connect(_log_deleted, sender=ViewerGrant, dispatch_uid="media_access_grant_deleted")
