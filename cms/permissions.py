from wagtail.permission_policies.collections import CollectionOwnershipPermissionPolicy


def video_permission_policy():
    """Collection-based permissions, as for Wagtail's documents: add (and edit
    your own), change any, choose, delete; granted per collection in Groups."""
    from .models import Video

    return CollectionOwnershipPermissionPolicy(
        Video, auth_model=Video, owner_field_name="uploaded_by_user"
    )
