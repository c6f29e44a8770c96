from wagtail.permission_policies.collections import CollectionOwnershipPermissionPolicy
from wagtail.permissions import policy_registry


def video_permission_policy():
    """Collection-based permissions, as for Wagtail's documents: add (and edit
    your own), change any, choose, delete; granted per collection in Groups."""
    from . import get_video_model

    Video = get_video_model()

    return CollectionOwnershipPermissionPolicy(
        Video, auth_model=Video, owner_field_name="uploaded_by_user"
    )


def videos_user_may(user, *actions):
    """The videos ``user`` may act on with any of ``actions``, as a queryset.

    Every admin view looks its id up in here, so a video the user has no
    rights on is a 404, the same answer as an id that does not exist."""
    from . import get_video_model

    Video = get_video_model()

    return policy_registry.get_by_type(Video).instances_user_has_any_permission_for(
        user, list(actions)
    )


def video_ids_user_may_not(user, action, ids):
    """The ids among ``ids`` of videos ``user`` may not ``action`` (all of
    them without a user): one query, none for no ids."""
    ids = set(ids)
    if not ids:
        return set()
    if user is None:
        return ids
    return ids - set(videos_user_may(user, action).filter(pk__in=ids).values_list("pk", flat=True))