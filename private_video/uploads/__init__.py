"""Resumable uploads: a tus 1.0 server writing to a private staging folder
(local storage) and S3 multipart uploads straight to the bucket. Both end in
``completion.complete_upload``, which probes the file with the same rules as
the form upload and creates the Video."""
