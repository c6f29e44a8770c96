"""The private storage: where video originals and renditions live, and how
nginx reaches them.

Neither storage here hands out a URL: a viewer reaches a file only through
media_access, which checks the policy and then asks the storage
``nginx_source(name)``: a local path for nginx's internal ``alias``, or a
short-lived presigned URL for nginx to proxy to. ``nginx_root()`` is the
folder the nginx config's internal location serves from (None on S3).
"""

from dataclasses import dataclass

from django.core.files.storage import FileSystemStorage, Storage, storages

PRIVATE_STORAGE_ALIAS = "private"


@dataclass(frozen=True)
class NginxSource:
    """How nginx reaches one stored file: a local ``path`` or a presigned ``url``."""

    path: str | None = None
    url: str | None = None


_NO_URL = "Private media has no public URL; serve it through media_access."
# The methods a presigned URL may be made for (nginx asks with the viewer's own method).
_SIGNED_METHODS = ("GET", "HEAD")


class PrivateFileSystemStorage(FileSystemStorage):
    """Local storage for private media.

    It has no public URL on purpose: viewers reach these files only through
    media_access, which checks the policy and hands the bytes to nginx.
    """

    def __init__(self, location=None, **kwargs):
        kwargs.pop("base_url", None)
        super().__init__(location=location, base_url=None, **kwargs)

    def url(self, name):
        raise NotImplementedError(_NO_URL)

    def nginx_source(self, name, *, http_method="GET", expire=None):
        """The file's absolute path (under ``nginx_root()``); the same for GET and HEAD."""
        return NginxSource(path=self.path(name))

    def nginx_root(self):
        """The storage's folder: the ``alias`` of nginx's internal location."""
        return self.location


class _PrivateStorageProxy(Storage):
    """``STORAGES["private"]``, looked up on every use rather than when a
    model field is built: importing the models must not fail when the setting
    is missing (the system check private_video.E001 says so instead), and the
    field follows a changed STORAGES (override_settings) as Django's
    ``default_storage`` does. It is a Storage only so FileField accepts it;
    everything else is the configured storage's own."""

    def __getattribute__(self, name):
        return getattr(storages[PRIVATE_STORAGE_ALIAS], name)

    def __setattr__(self, name, value):
        setattr(storages[PRIVATE_STORAGE_ALIAS], name, value)

    def __delattr__(self, name):
        delattr(storages[PRIVATE_STORAGE_ALIAS], name)

    def __repr__(self):
        return "<private storage: STORAGES['private']>"


_private_storage = _PrivateStorageProxy()


def private_storage():
    """The storage for video originals and renditions (``STORAGES["private"]``).
    The callable of the models' FileFields: it returns a stand-in that reads
    the setting on each use, so nothing is looked up at import time."""
    return _private_storage


def configured_private_storage():
    """The configured private storage itself (InvalidStorageError when STORAGES has no "private")."""
    return storages[PRIVATE_STORAGE_ALIAS]


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
        ``nginx_source`` presigns per request, for nginx alone.
        """

        def url(self, name, parameters=None, expire=None, http_method=None):
            raise NotImplementedError(_NO_URL)

        def nginx_source(self, name, *, http_method="GET", expire=None):
            """A presigned URL for ``http_method`` (GET or HEAD; the signature
            covers the method, so a HEAD URL cannot GET), valid for ``expire``
            seconds (default: the storage's ``querystring_expire``). Built by
            django-storages' own ``S3Storage.url``."""
            if http_method not in _SIGNED_METHODS:
                raise ValueError(f"Only GET and HEAD are presigned, not {http_method!r}.")
            if self.custom_domain or not self.querystring_auth:
                # S3Storage.url would answer an unsigned (or CloudFront) URL.
                from django.core.exceptions import ImproperlyConfigured

                raise ImproperlyConfigured(
                    "The private S3 storage needs querystring_auth=True and no custom_domain "
                    "to presign URLs for nginx."
                )
            return NginxSource(url=S3Storage.url(self, name, expire=expire, http_method=http_method))

        def nginx_root(self):
            return None

        def object_key(self, name):
            """The bucket key of a stored name (``AWS_LOCATION`` prefix included)."""
            return self._normalize_name(clean_name(name))
