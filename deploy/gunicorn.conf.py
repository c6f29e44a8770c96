"""gunicorn settings shared by `make run`, the integration tests and systemd.

nginx sits in front and buffers slow clients, so plain sync workers are
enough: a media request costs a worker only as long as the policy check.
"""

import os

_data_dir = os.environ.get("CMS_DATA_DIR", os.path.join(os.path.dirname(__file__), "..", "var"))

wsgi_app = "cms.wsgi:application"
bind = os.environ.get("GUNICORN_BIND", f"unix:{_data_dir}/run/gunicorn.sock")
workers = int(os.environ.get("WEB_CONCURRENCY", "3"))
# ffprobe on a large file and big admin pages need more than the 30 s default.
# A resumable upload's chunk (streamed from nginx as it arrives, for as long
# as the client's uplink takes) keeps its worker alive: see post_worker_init.
timeout = int(os.environ.get("GUNICORN_TIMEOUT", "300"))
graceful_timeout = 10
accesslog = os.environ.get("GUNICORN_ACCESS_LOG", "-")
# gunicorn 24+ opens a control socket in $HOME by default; several instances
# (tests, staging beside production) would fight over it.
control_socket_disable = True


def post_worker_init(worker):
    """While a tus chunk is received, the worker tells the arbiter it is busy,
    not stuck, once a second (private_video.uploads.staging.set_heartbeat):
    a sync worker is otherwise killed after ``timeout`` seconds of one request.
    Only while the body arrives at staging.HEARTBEAT_MIN_RATE or more: a client
    that trickles or sends nothing is stopped after ``timeout`` as before."""
    from private_video.uploads import staging

    staging.set_heartbeat(worker.notify)
