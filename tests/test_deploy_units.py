"""The systemd units and env example in deploy/ run commands that exist."""

import configparser
import shlex
import shutil
import subprocess

from django.core.management import get_commands

from .stack import REPO

UNITS = sorted((REPO / "deploy" / "systemd").glob("*.service"))
TIMERS = sorted((REPO / "deploy" / "systemd").glob("*.timer"))


def read_unit(path):
    parser = configparser.ConfigParser(strict=False, interpolation=None)
    parser.optionxform = str
    parser.read_string(path.read_text())
    return parser


def test_units_exist_and_run_known_commands():
    assert {u.name for u in UNITS} == {
        "privatevideo-web.service", "privatevideo-tasks.service", "privatevideo-transcoder@.service",
        "privatevideo-publish-scheduled.service", "privatevideo-housekeeping.service"}
    commands = get_commands()
    for unit in UNITS:
        service = read_unit(unit)["Service"]
        assert service["EnvironmentFile"] == "/etc/privatevideo/env"
        # Unprivileged, and what they write is for the service and nginx's group only.
        assert service["User"] == "privatevideo" and service["Group"] == "www-data", unit.name
        assert service["UMask"] == "0027", unit.name
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


def test_a_timer_runs_publish_scheduled_every_minute():
    # Pages past their expire_at leave the page tree (and go-live pages go
    # live) without anyone running the command by hand.
    assert [t.name for t in TIMERS] == ["privatevideo-housekeeping.timer", "privatevideo-publish-scheduled.timer"]
    timer = read_unit(TIMERS[1])
    target = timer["Timer"]["Unit"]
    assert timer["Install"]["WantedBy"] == "timers.target"
    assert timer["Timer"]["OnCalendar"] == "minutely"
    if shutil.which("systemd-analyze"):
        normalised = subprocess.run(["systemd-analyze", "calendar", timer["Timer"]["OnCalendar"]],
                                    capture_output=True, text=True, check=True).stdout
        assert "Normalized form: *-*-* *:*:00" in normalised
    service = read_unit(REPO / "deploy" / "systemd" / target)["Service"]
    assert service["Type"] == "oneshot"
    argv = shlex.split(service["ExecStart"])
    assert argv[:3] == ["/srv/privatevideo/.venv/bin/python", "manage.py", "publish_scheduled"]
    assert "publish_scheduled" in get_commands()
    assert "Install" not in read_unit(REPO / "deploy" / "systemd" / target)  # started by the timer only


def test_a_timer_expires_unfinished_uploads_and_old_analytics_every_hour():
    # Staged upload bytes and watch analytics past their retention go without
    # anyone running the commands by hand.
    timer = read_unit(REPO / "deploy" / "systemd" / "privatevideo-housekeeping.timer")
    assert timer["Install"]["WantedBy"] == "timers.target"
    assert timer["Timer"]["OnCalendar"] == "hourly"
    target = timer["Timer"]["Unit"]
    unit = read_unit(REPO / "deploy" / "systemd" / target)
    service = unit["Service"]
    assert service["Type"] == "oneshot"
    # One command runs every step (so one failing does not skip the others,
    # tests/test_analytics_limits.py); the parser above keeps only the last of
    # repeated keys, so read every Exec line.
    lines = (REPO / "deploy" / "systemd" / target).read_text().splitlines()
    commands = [shlex.split(line.split("=", 1)[1]) for line in lines if line.startswith("Exec")]
    assert commands == [["/srv/privatevideo/.venv/bin/python", "manage.py", "video_housekeeping"]]
    assert "video_housekeeping" in get_commands()
    from media_access.management.commands.video_housekeeping import STEPS

    assert STEPS == ("expire_uploads", "delete_watch_analytics", "delete_playback_log")
    assert set(STEPS) <= set(get_commands())
    assert "Install" not in unit  # started by the timer only
