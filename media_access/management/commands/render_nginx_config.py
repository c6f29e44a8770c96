import os
from pathlib import Path

from django.core.management.base import BaseCommand, CommandError

from media_access.conf import setting
from media_access.nginx import default_runtime_dir, render_nginx_config


class Command(BaseCommand):
    help = "Render the bundled nginx config (media_access/nginx/site.conf.template) from settings."

    def add_arguments(self, parser):
        parser.add_argument("--output", "-o", help="Write here instead of standard output.")
        parser.add_argument("--listen", help="host:port for nginx (default: MEDIA_ACCESS_NGINX_LISTEN).")
        parser.add_argument(
            "--upstream", help="gunicorn's address, host:port or unix:/path (default: MEDIA_ACCESS_NGINX_UPSTREAM)."
        )
        parser.add_argument(
            "--server-name", help="nginx server_name, your host name in production (default: MEDIA_ACCESS_NGINX_SERVER_NAME)."
        )
        parser.add_argument("--tls-certificate", help="PEM certificate chain: serve HTTPS with HTTP/2 on --listen.")
        parser.add_argument("--tls-certificate-key", help="PEM private key for --tls-certificate.")
        parser.add_argument(
            "--http-listen", default="80", help="With TLS: where plain HTTP answers with a redirect to HTTPS."
        )
        parser.add_argument(
            "--runtime-dir",
            help="nginx pid and temp files (default: MEDIA_ACCESS_NGINX_RUNTIME_DIR, else the folder of --output).",
        )
        parser.add_argument(
            "--user",
            help="The user nginx's workers run as when its master is root (default: www-data, "
            "else nginx, else nobody; never root unless given). Ignored with --server-block-only.",
        )
        parser.add_argument(
            "--server-block-only",
            action="store_true",
            help="Only the upstream and server blocks, to include from an existing nginx.conf.",
        )

    def handle(self, *args, **options):
        overrides = {"standalone": not options["server_block_only"]}
        for option in ("listen", "upstream", "server_name", "user"):
            if options[option] is not None:
                overrides[option] = options[option]
        if bool(options["tls_certificate"]) != bool(options["tls_certificate_key"]):
            raise CommandError("--tls-certificate and --tls-certificate-key go together.")
        if options["tls_certificate"]:
            overrides["tls_certificate"] = options["tls_certificate"]
            overrides["tls_certificate_key"] = options["tls_certificate_key"]
            overrides["http_listen"] = options["http_listen"]
        runtime_dir = Path(options["runtime_dir"] or default_runtime_dir(options["output"]))
        overrides["runtime_dir"] = runtime_dir
        config = render_nginx_config(**overrides)
        if options["output"]:
            path = Path(options["output"])
            path.parent.mkdir(parents=True, exist_ok=True)
            # The config holds the token secret: readable by its owner only
            # (nginx's master reads it as root; workers never need it).
            fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
            os.fchmod(fd, 0o600)
            with os.fdopen(fd, "w") as handle:
                handle.write(config)
            if overrides["standalone"]:
                runtime_dir.mkdir(parents=True, exist_ok=True)
                upstream = overrides.get("upstream") or setting("NGINX_UPSTREAM")
                if upstream.startswith("unix:"):
                    # gunicorn creates its socket, not the folder it goes in.
                    Path(upstream[len("unix:"):]).parent.mkdir(parents=True, exist_ok=True)
        else:
            self.stdout.write(config)

