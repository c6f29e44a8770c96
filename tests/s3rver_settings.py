"""Settings for a test stack whose bucket is s3rver (the ``s3_server`` fixture).

s3rver 3.7 checks signature version 2 only: it accepts any SigV4 signature
made with a known key id, and its check of a SigV2 *header* is broken (it
leaves the Date out). It does check SigV2 *presigned* URLs exactly: method,
bucket, key and expiry. So this stack stores with SigV4 as production does,
and presigns the URLs media_access hands nginx with SigV2, which s3rver then
verifies; nothing else differs from ``cms.settings.base``.
"""

from cms.settings.base import *  # noqa: F401,F403
from cms.settings.base import STORAGES

STORAGES["private"] = {**STORAGES["private"], "BACKEND": "tests.s3rver_storage.SigV2PresignS3Storage"}
