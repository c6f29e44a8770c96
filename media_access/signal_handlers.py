"""Viewer grant changes go to the page's history (Wagtail log actions).

Grants are page children (modelcluster): publishing saves every grant again,
so only real changes are logged, by comparing with the stored row.
"""

from django.core.exceptions import ObjectDoesNotExist
from django.db.models.signals import post_delete, post_save, pre_save
from wagtail.log_actions import log

from .models import ViewerGrant


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


def register_signal_handlers():
    pre_save.connect(_remember_previous, sender=ViewerGrant, dispatch_uid="media_access_grant_pre")
    post_save.connect(_log_saved, sender=ViewerGrant, dispatch_uid="media_access_grant_saved")
    post_delete.connect(_log_deleted, sender=ViewerGrant, dispatch_uid="media_access_grant_deleted")
