"""Findings of a hostile review of the resumable uploads (issue 13) and the
viewer-bound tokens / remembered player answers (issue 14). Django-level,
fast: no stack, no browser."""

import uuid

import pytest
from django.core.files.storage import storages
from django.test import override_settings

moto = pytest.importorskip("moto")

BUCKET = "review-private"


def _s3_storages(**options):
    from django.conf import settings

    return {
        **settings.STORAGES,
        "private": {
            "BACKEND": "private_video.storage.PrivateS3Storage",
            "OPTIONS": {
                "bucket_name": BUCKET,
                "region_name": "us-east-1",
                "access_key": "review",
                "secret_key": "review-secret",
                "querystring_auth": True,
                "file_overwrite": False,
                "signature_version": "s3v4",
                **options,
            },
        },
    }


@pytest.fixture
def kms_bucket():
    """A private S3 storage (moto, in process) whose objects must be written
    with server-side encryption (AWS_S3_OBJECT_PARAMETERS)."""
    with moto.mock_aws(), override_settings(
        STORAGES=_s3_storages(object_parameters={"ServerSideEncryption": "aws:kms", "SSEKMSKeyId": "alias/videos"})
    ):
        storage = storages["private"]
        storage.connection.meta.client.create_bucket(Bucket=BUCKET)
        yield storage


@pytest.mark.django_db
def test_s3_upload_keeps_the_storages_encryption_when_moved_to_its_final_name(kms_bucket):
    """An S3 multipart upload is created with the storage's object parameters
    (SSE-KMS here), then completion copies the assembled object, inside the
    bucket, to the video's final name. That copy must carry the same
    parameters: a plain CopyObject writes the video's original unencrypted
    (or with the bucket default), whatever the operator required."""
    from private_video.layout import original_name
    from private_video.uploads.completion import _S3Source

    storage = kms_bucket
    client = storage.connection.meta.client
    video_key = uuid.uuid4()
    key = original_name(video_key)
    # As s3_multipart.create starts it: with the storage's object parameters.
    client.put_object(
        Bucket=BUCKET, Key=storage.object_key(key), Body=b"x" * 1024,
        ServerSideEncryption="aws:kms", SSEKMSKeyId="alias/videos",
    )
    assert client.head_object(Bucket=BUCKET, Key=storage.object_key(key))["ServerSideEncryption"] == "aws:kms"

    final = original_name(video_key, ".mp4")
    stored = _S3Source(upload=None, key=key).store(storage, final)

    assert stored == final
    head = client.head_object(Bucket=BUCKET, Key=storage.object_key(final))
    assert head.get("ServerSideEncryption") == "aws:kms"
    assert "alias/videos" in head.get("SSEKMSKeyId", "")
    # The upload's own key is gone.
    assert not storage.exists(key)
