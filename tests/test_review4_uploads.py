"""Findings of a hostile review (review 4) of the upload rights and the
upload rows deleted with their collection or owner (issue 13): a right lost
while the finished file is checked, a right lost before S3 parts are
assembled, a multipart upload started for a row that could not be saved, and
an upload deleted during a request. Django-level, fast: no stack, no browser
(S3 is moto in process)."""

from pathlib import Path

import pytest
from django.test import override_settings
from django.urls import reverse
from wagtail.models import GroupCollectionPermission

from private_video.models import Upload, Video
from private_video.uploads import completion, s3_multipart, staging, tus

from .test_review_attacks import BUCKET, _s3_storages
from .test_uploads_tus import create, created_upload, editor, library, patch, private_files, signed_in  # noqa: F401

moto = pytest.importorskip("moto")


def take_add_right(editors):
    GroupCollectionPermission.objects.filter(group=editors, permission__codename="add_video").delete()


def upload_losing_its_right_in_the_probe(editor, library, sample_video, monkeypatch):
    """A whole video as one tus upload whose add right is taken away while
    completion probes it: (client, location, upload, bytes)."""
    films, _other, editors = library
    data = Path(sample_video).read_bytes()
    client = signed_in(editor)
    location, upload = created_upload(create(client, len(data), filename="a.mp4", collection=films.pk))
    real_probe = completion.validate_video_upload

    def revoke_then_probe(*args, **kwargs):
        take_add_right(editors)
        return real_probe(*args, **kwargs)

    monkeypatch.setattr(completion, "validate_video_upload", revoke_then_probe)
    return client, location, upload, data


@pytest.fixture(autouse=True)
def staging_folder(settings, tmp_path):
    settings.PRIVATE_VIDEO_UPLOAD_STAGING_DIR = str(tmp_path / "staging")
    return tmp_path / "staging"


@pytest.mark.django_db
def test_a_right_lost_while_the_file_is_probed_makes_no_video(editor, library, sample_video, monkeypatch):
    """The probe (and on S3 a copy of gigabytes) runs after completion's first
    check: the right is checked again in the transaction that makes the Video."""
    client, location, upload, data = upload_losing_its_right_in_the_probe(editor, library, sample_video, monkeypatch)
    files_before = private_files()
    response = patch(client, location, 0, data)
    assert response.status_code == 422, response.content
    assert "no longer add videos" in response.json()["error"]
    upload.refresh_from_db()
    assert upload.state == Upload.State.FAILED and upload.video_id is None
    # Nothing half-saved: no Video row, no original in the private storage, nothing staged.
    assert Video.objects.count() == 0
    assert private_files() == files_before
    assert not staging.path_for(upload.pk).exists()


@pytest.mark.django_db
def test_an_upload_whose_collection_goes_during_a_patch_is_gone_not_a_server_error(editor, library, monkeypatch):
    films, _other, _editors = library
    client = signed_in(editor)
    location, upload = created_upload(create(client, 5000, filename="a.mp4", collection=films.pk))
    real_gone = tus._gone

    def delete_collection_then_check(upload):
        films.delete()  # the upload row goes with it (cascade)
        return real_gone(upload)

    monkeypatch.setattr(tus, "_gone", delete_collection_then_check)
    response = patch(client, location, 0, b"x" * 1000)
    assert response.status_code == 410, response.content
    assert response.json()["error"] == "This upload no longer exists; start it again."
    assert not Upload.objects.filter(pk=upload.pk).exists()


@pytest.mark.django_db
def test_an_upload_deleted_while_its_last_chunk_arrives_is_refused_cleanly(editor, library, sample_video, monkeypatch):
    films, _other, _editors = library
    data = Path(sample_video).read_bytes()
    client = signed_in(editor)
    location, upload = created_upload(create(client, len(data), filename="a.mp4", collection=films.pk))
    real_write = tus._write

    def delete_then_write(*args, **kwargs):
        Upload.objects.filter(pk=upload.pk).delete()
        return real_write(*args, **kwargs)

    monkeypatch.setattr(tus, "_write", delete_then_write)
    files_before = private_files()
    response = patch(client, location, 0, data)
    assert response.status_code == 410, response.content
    assert response.json()["error"] == "This upload no longer exists; start it again."
    assert Video.objects.count() == 0 and private_files() == files_before


@pytest.fixture
def bucket():
    with moto.mock_aws(), override_settings(STORAGES=_s3_storages()):
        from django.core.files.storage import storages

        storage = storages["private"]
        storage.connection.meta.client.create_bucket(Bucket=BUCKET)
        yield storage


def multipart_uploads(storage):
    return storage.connection.meta.client.list_multipart_uploads(Bucket=BUCKET).get("Uploads", [])


def s3_call(client, name, *args, **payload):
    return client.post(reverse(f"private_video:{name}", args=args), payload, content_type="application/json")


@pytest.mark.django_db
def test_s3_completion_after_the_right_is_lost_keeps_the_parts(editor, library, bucket):
    """As a refused tus chunk keeps the bytes before it: the parts stay in the
    bucket, the upload receiving, to be cancelled, expire, or completed once
    the right is back. Before, they were assembled and then thrown away."""
    films, _other, editors = library
    client = signed_in(editor)
    created = s3_call(client, "s3_create", length=1000, filename="a.mp4", collection=films.pk)
    assert created.status_code == 201, created.content
    upload = Upload.objects.get(pk=created.json()["uploadId"])
    s3 = bucket.connection.meta.client
    s3.upload_part(Bucket=BUCKET, Key=upload.s3_key, UploadId=upload.s3_upload_id, PartNumber=1, Body=b"x" * 1000)

    take_add_right(editors)
    refused = s3_call(client, "s3_complete", upload.pk)
    assert refused.status_code == 403, refused.content
    assert "no longer add videos" in refused.json()["error"]
    upload.refresh_from_db()
    assert upload.state == Upload.State.RECEIVING
    parts = s3.list_parts(Bucket=BUCKET, Key=upload.s3_key, UploadId=upload.s3_upload_id)["Parts"]
    assert [(p["PartNumber"], p["Size"]) for p in parts] == [(1, 1000)]
    assert s3.list_objects_v2(Bucket=BUCKET).get("KeyCount", 0) == 0
    assert Video.objects.count() == 0


@pytest.mark.django_db(transaction=True, serialized_rollback=True)
def test_s3_upload_whose_row_cannot_be_saved_leaves_no_multipart_upload(editor, library, bucket, monkeypatch):
    """The collection deleted between the right check and the row's insert:
    the multipart upload S3 just started is aborted, not left for nobody to find."""
    films, _other, _editors = library
    real_parameters = s3_multipart.object_parameters

    def delete_collection_first(*args, **kwargs):
        films.delete()
        return real_parameters(*args, **kwargs)

    monkeypatch.setattr(s3_multipart, "object_parameters", delete_collection_first)
    client = signed_in(editor, raise_request_exception=False)
    created = s3_call(client, "s3_create", length=1000, filename="a.mp4", collection=films.pk)
    assert created.status_code == 500
    assert Upload.objects.count() == 0
    assert multipart_uploads(bucket) == []


@pytest.mark.django_db
def test_s3_parts_are_not_listed_without_the_right(editor, library, bucket):
    """Listing parts keeps an upload from expiring: refused without the right,
    or refused parts could be kept in the bucket (and the collection from
    being deleted) for ever by polling."""
    films, _other, editors = library
    client = signed_in(editor)
    created = s3_call(client, "s3_create", length=1000, filename="a.mp4", collection=films.pk)
    upload = Upload.objects.get(pk=created.json()["uploadId"])
    listed = client.get(reverse("private_video:s3_list_parts", args=[upload.pk]))
    assert listed.status_code == 200, listed.content
    expires_before = Upload.objects.get(pk=upload.pk).expires_at

    take_add_right(editors)
    refused = client.get(reverse("private_video:s3_list_parts", args=[upload.pk]))
    assert refused.status_code == 403 and "no longer add videos" in refused.json()["error"]
    assert "parts" not in refused.json()
    assert Upload.objects.get(pk=upload.pk).expires_at == expires_before


@pytest.mark.django_db
def test_s3_completion_of_an_upload_deleted_meanwhile_is_a_410(editor, library, bucket, monkeypatch):
    films, _other, _editors = library
    client = signed_in(editor)
    created = s3_call(client, "s3_create", length=1000, filename="a.mp4", collection=films.pk)
    upload = Upload.objects.get(pk=created.json()["uploadId"])
    s3 = bucket.connection.meta.client
    s3.upload_part(Bucket=BUCKET, Key=upload.s3_key, UploadId=upload.s3_upload_id, PartNumber=1, Body=b"x" * 1000)
    real_source = completion._source_for

    def delete_then_read(upload, source):
        Upload.objects.filter(pk=upload.pk).delete()  # its owner removed, say
        return real_source(upload, source)

    monkeypatch.setattr(completion, "_source_for", delete_then_read)
    answer = s3_call(client, "s3_complete", upload.pk)
    assert answer.status_code == 410, answer.content
    assert answer.json()["error"] == "This upload no longer exists; start it again."
    assert Video.objects.count() == 0


@pytest.mark.django_db
def test_a_store_that_cannot_delete_the_refused_copy_still_fails_the_upload(
    editor, library, sample_video, monkeypatch, caplog
):
    """The right lost while the file was checked, and the store failing to
    delete the copy it just made: the upload still ends *failed* with the
    reason (not stuck *processing*, where nobody may retry or cancel it), and
    the copy's name is logged for whoever cleans up."""
    from private_video.storage import configured_private_storage

    client, location, upload, data = upload_losing_its_right_in_the_probe(editor, library, sample_video, monkeypatch)
    def unreachable(self, name):
        raise OSError("the store is not answering")

    monkeypatch.setattr(type(configured_private_storage()), "delete", unreachable)
    response = patch(client, location, 0, data)
    assert response.status_code == 422, response.content
    assert "no longer add videos" in response.json()["error"]
    upload.refresh_from_db()
    assert upload.state == Upload.State.FAILED and Video.objects.count() == 0
    assert "could not delete the stored copy 'videos/" in caplog.text
