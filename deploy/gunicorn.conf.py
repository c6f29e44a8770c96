"""gunicorn settings shared by `make run`, the integration tests and systemd.

nginx sits in front and buffers slow clients, so plain sync workers are
enough: a media request costs a worker only as long as the policy check.
"""

import os

_data_dir = os.environ.get("CMS_DATA_DIR", os.path.join(os.path.dirname(__file__), "..", "var"))

wsgi_app = "cms.wsgi:application"
bind = os.environ.get("GUNICORN_BIND", f"unix:{_data_dir}/run/gunicorn.sock")
workers = int(os.environ.get("WEB_CONCURRENCY", "3"))
# Uploads arrive fully buffered by nginx, but ffprobe on a large file and big
# admin pages need more than the 30 s default.
timeout = int(os.environ.get("GUNICORN_TIMEOUT", "300"))
graceful_timeout = 10
accesslog = os.environ.get("GUNICORN_ACCESS_LOG", "-")
# gunicorn 24+ opens a control socket in $HOME by default; several instances
# (tests, staging beside production) would fight over it.
control_socket_disable = True
