"""Deleting rows past a retention period (the playback log, watch analytics)."""

from datetime import timedelta

from django.utils import timezone


def delete_older(queryset, field, days, now=None):
    """Delete the rows of ``queryset`` whose ``field`` is more than ``days``
    days before ``now``; returns how many."""
    try:
        cutoff = (now or timezone.now()) - timedelta(days=days)
    except OverflowError:  # a retention before year 1 ("keep for ever"): nothing is that old
        return 0
    deleted, _ = queryset.filter(**{f"{field}__lt": cutoff}).delete()
    return deleted
