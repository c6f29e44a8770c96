"""Private media in an S3 bucket (``STORAGE=s3``), served by nginx without
ever showing the bucket to a viewer.

After the policy allowed a request, the response builder asks the private
storage how nginx reaches the file (``storage.nginx_source``): a bucket
answers with a URL presigned, by django-storages itself, for the request's
method (GET or HEAD) with a short expiry. The builder answers with an empty
body and::

    X-Accel-Redirect: /_s3/<path of the presigned URL>?<its query>

nginx follows it into an ``internal`` location that proxies to the bucket's
endpoint, which is fixed in the rendered config (``nginx_context``), never
taken from the request. The signed URL lives only between nginx and S3: not
in a header the client sees (nginx consumes X-Accel-Redirect), not in the
access log (it logs the viewer's own request line). Range and If-Range go
to S3, which answers 206 itself; S3's own headers are hidden and ours
(Content-Type from the allow-list, Content-Disposition, Cache-Control) are
the ones the client gets; S3 error bodies become a plain 404 or 502.

HLS rendition files take the same road: nginx checks the ``secure_link``
token, then hands the request to ``views.signed.rendition_file``, which checks
the token again (it must not trust that it was called by nginx), presigns,
and answers with the same X-Accel-Redirect. That costs a small Python
request per segment on S3 (no database query), because nginx cannot sign
for S3 itself.
"""

import ipaddress
import re
from functools import lru_cache
from urllib.parse import urlsplit

from django.core.exceptions import ImproperlyConfigured, SuspiciousFileOperation

from .conf import setting
from .content_types import nginx_content_types

# Keys this project writes (videos/ab/<hex>/...), bucket names, and the
# separators between them. Anything else is refused: nginx hands this path
# to S3 as it is, so it must mean the same decoded and encoded.
_SAFE_PATH = re.compile(r"^/[A-Za-z0-9._~/-]+$")
# What botocore puts in a presigned query (percent-encoded values).
_SAFE_QUERY = re.compile(r"^[A-Za-z0-9._~%=&+-]+$")
_PLAIN_SEGMENT = re.compile(r"^/[A-Za-z0-9_-]+/$")
# What the bundled nginx config needs to know of a bucket storage to proxy to it.
_ENDPOINT_ATTRIBUTES = ("bucket_name", "endpoint_url", "region_name", "addressing_style", "use_ssl")


def valid_accel_prefix(prefix):
    return isinstance(prefix, str) and bool(_PLAIN_SEGMENT.match(prefix))


def accel_prefix():
    prefix = setting("S3_ACCEL_PREFIX")
    if not valid_accel_prefix(prefix):
        raise ImproperlyConfigured(
            "MEDIA_ACCESS_S3_ACCEL_PREFIX must look like '/_s3/' (one plain path segment)."
        )
    return prefix


def url_lifetime():
    """Seconds a presigned URL is valid: only long enough for nginx to use it at once."""
    return int(setting("S3_URL_LIFETIME"))


def accel_redirect_target(storage, url):
    """The X-Accel-Redirect value that makes nginx fetch a presigned ``url``
    of ``storage``'s bucket. The one place it is built."""
    url = urlsplit(url)
    origin = upstream(storage)
    if f"{url.scheme}://{url.netloc}" != origin["origin"]:
        # nginx would send a signature made for one host to another.
        raise ImproperlyConfigured(
            f"The presigned URL's host {url.netloc!r} is not the endpoint nginx was configured "
            f"with ({origin['origin']!r}); re-render the nginx config."
        )
    if not _SAFE_PATH.match(url.path) or "/../" in url.path or "/./" in url.path:
        raise SuspiciousFileOperation(f"Refusing to hand nginx the object path {url.path!r}")
    if not _SAFE_QUERY.match(url.query):
        raise SuspiciousFileOperation("Unexpected characters in a presigned query")
    return accel_prefix() + url.path.lstrip("/") + "?" + url.query


def is_proxyable(storage):
    """A bucket storage nginx can proxy to: it says where its endpoint is."""
    return all(hasattr(storage, name) for name in _ENDPOINT_ATTRIBUTES)


def upstream(storage):
    """Where nginx sends presigned requests: scheme, host and origin of the
    bucket's endpoint as botocore addresses it (path or virtual-hosted style)."""
    return _upstream(
        storage.endpoint_url or None,
        storage.region_name or None,
        storage.addressing_style or None,
        bool(storage.use_ssl),
        storage.bucket_name,
        getattr(storage, "signature_version", None) or "s3v4",
    )


@lru_cache(maxsize=8)
def _upstream(endpoint_url, region_name, addressing_style, use_ssl, bucket_name, signature_version):
    import boto3
    from botocore.config import Config

    # Configured like django-storages' own client, so botocore picks the same
    # host; signed offline with throwaway keys, so rendering the nginx config
    # needs no credentials.
    client = boto3.session.Session().client(
        "s3",
        endpoint_url=endpoint_url,
        region_name=region_name,
        use_ssl=use_ssl,
        aws_access_key_id="render",
        aws_secret_access_key="render",
        config=Config(signature_version=signature_version, s3={"addressing_style": addressing_style}),
    )
    url = urlsplit(client.generate_presigned_url(
        "get_object", Params={"Bucket": bucket_name, "Key": "probe"}, ExpiresIn=60
    ))
    return {
        "scheme": url.scheme,
        "host": url.netloc,
        "hostname": url.hostname,
        "origin": f"{url.scheme}://{url.netloc}",
    }


def nginx_context(storage):
    """What the bundled nginx config needs for the S3 location, given a
    private storage that has no local root nginx could read."""
    if not is_proxyable(storage):
        raise ImproperlyConfigured(
            f"The private storage {type(storage).__name__} has neither a local root (nginx_root()) "
            "nor a bucket endpoint nginx could proxy to."
        )
    target = upstream(storage)
    resolver = ""
    try:
        ipaddress.ip_address(target["hostname"])
    except ValueError:
        # A host name in a proxy_pass with variables is resolved per request.
        resolver = setting("S3_RESOLVER") or _system_resolvers()
        if not resolver:
            raise ImproperlyConfigured(
                "nginx needs a DNS resolver for the S3 endpoint: set MEDIA_ACCESS_S3_RESOLVER."
            )
    return {
        **target,
        "location": accel_prefix(),
        "content_types": nginx_content_types(),
        "resolver": resolver,
        "tls": target["scheme"] == "https",
    }


def _system_resolvers():
    try:
        with open("/etc/resolv.conf") as handle:
            lines = handle.read().splitlines()
    except OSError:
        return ""
    servers = []
    for line in lines:
        parts = line.split()
        if len(parts) >= 2 and parts[0] == "nameserver":
            try:
                address = ipaddress.ip_address(parts[1].split("%")[0])
            except ValueError:
                continue
            servers.append(f"[{address}]" if address.version == 6 else str(address))
    return " ".join(servers)
