"""The systemd units and env example in deploy/ run commands that exist."""

import configparser
import shlex

from django.core.management import get_commands

from .stack import REPO

UNITS = sorted((REPO / "deploy" / "systemd").glob("*.service"))


def read_unit(path):
    parser = configparser.ConfigParser(strict=False, interpolation=None)
    parser.optionxform = str
    parser.read_string(path.read_text())
    return parser


def test_units_exist_and_run_known_commands():
    assert {u.name for u in UNITS} == {
        "privatevideo-web.service", "privatevideo-tasks.service", "privatevideo-transcoder@.service"}
    commands = get_commands()
    for unit in UNITS:
        service = read_unit(unit)["Service"]
        assert service["EnvironmentFile"] == "/etc/privatevideo/env"
        argv = shlex.split(service["ExecStart"])
        assert argv[0].startswith("/srv/privatevideo/.venv/bin/"), unit.name
        if argv[1:2] == ["manage.py"]:
            assert argv[2] in commands, (unit.name, argv[2])
        else:
            config = argv[argv.index("--config") + 1]
            assert (REPO / config).is_file(), (unit.name, config)


def test_env_example_names_only_real_settings():
    names = [
        line.split("=", 1)[0]
        for line in (REPO / "deploy" / "systemd" / "privatevideo.env.example").read_text().splitlines()
        if line and not line.startswith("#")
    ]
    sources = "".join(p.read_text() for p in (REPO / "cms" / "settings").glob("*.py"))
    sources += (REPO / "deploy" / "gunicorn.conf.py").read_text()
    for name in names:
        assert f'"{name}"' in sources or name == "DJANGO_SETTINGS_MODULE", name
