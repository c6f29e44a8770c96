from django.core.files.storage import FileSystemStorage, storages


class PrivateFileSystemStorage(FileSystemStorage):
    """Local storage for private media.

    It has no public URL on purpose: viewers reach these files only through
    media_access, which checks the policy and hands the bytes to nginx.
    """

    def __init__(self, location=None, **kwargs):
        kwargs.pop("base_url", None)
        super().__init__(location=location, base_url=None, **kwargs)

    def url(self, name):
        raise NotImplementedError(
            "Private media has no public URL; serve it through media_access."
        )


def private_storage():
    """The storage for video originals and renditions (``STORAGES["private"]``)."""
    return storages["private"]
