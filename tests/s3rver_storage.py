"""The production S3 storage, presigning with SigV2 so that s3rver checks the
URLs nginx is handed (tests/s3rver_settings.py says why)."""

from private_video.storage import PrivateS3Storage


def sigv2_for_presigned_urls(signature_version, **kwargs):
    # Presigning asks for "<version>-query"; every other request keeps SigV4.
    return "s3-query" if signature_version == "s3v4-query" else None


class SigV2PresignS3Storage(PrivateS3Storage):
    @property
    def connection(self):
        connection = super().connection
        events = connection.meta.client.meta.events
        events.unregister("choose-signer.s3", sigv2_for_presigned_urls)
        events.register("choose-signer.s3", sigv2_for_presigned_urls)
        return connection
