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


try:
    from storages.backends.s3 import S3Storage
    from storages.utils import clean_name
except ImportError:  # boto3 missing: STORAGE=s3 then fails loudly when the storage is built.
    S3Storage = None

if S3Storage is not None:

    class PrivateS3Storage(S3Storage):
        """A private bucket for video originals and renditions (``STORAGE=s3``).

        Like the local storage it hands out no URL: a presigned URL given to a
        browser would outlive the policy decision and could be shared.
        ``media_access.s3`` presigns per request for nginx alone.
        """

        def url(self, name, parameters=None, expire=None, http_method=None):
            raise NotImplementedError(
                "Private media has no public URL; serve it through media_access."
            )

        def object_key(self, name):
            """The bucket key of a stored name (``AWS_LOCATION`` prefix included)."""
            return self._normalize_name(clean_name(name))
