"""One owner per setting: every setting the three apps read has a default in
its app's conf.DEFAULTS and a row in docs/settings.md, and every environment
variable the demo site reads has a row there too.

The reads are found by parsing the apps' source (no import-time tricks): calls
of an app's conf ``setting("NAME")``, ``getattr(settings, "NAME", ...)`` and
``settings.NAME`` on django.conf.settings. Django's, Wagtail's and the task
libraries' own settings are allowed by name below; anything else an app reads
must be its own, in its table, documented.
"""

import ast
import importlib
import re
from dataclasses import dataclass
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parent.parent
DOC = REPO / "docs" / "settings.md"

# app package -> the prefix of its Django settings (docs/install.md, i10 interfaces)
APPS = {
    "private_video": "PRIVATE_VIDEO_",
    "transcoding": "TRANSCODING_",
    "media_access": "MEDIA_ACCESS_",
}

# Settings that belong to Django, Wagtail or the task/storage libraries: the
# apps may read them directly; they are documented by their owners.
OTHERS_SETTINGS = {
    "AUTH_USER_MODEL",
    "CSRF_HEADER_NAME",
    "DATA_UPLOAD_MAX_MEMORY_SIZE",
    "DATABASES",
    "DEBUG",
    "INSTALLED_APPS",
    "LANGUAGE_CODE",
    "LANGUAGES",
    "LOGIN_URL",
    "MEDIA_ROOT",
    "MEDIA_URL",
    "ROOT_URLCONF",
    "RQ_QUEUES",
    "SECRET_KEY",
    "SESSION_COOKIE_NAME",
    "SESSION_ENGINE",
    "STATIC_ROOT",
    "STATIC_URL",
    "STORAGES",
    "TASKS",
    "TIME_ZONE",
    "USE_TZ",
}
OTHERS_PREFIXES = ("FILE_UPLOAD_", "WAGTAIL")


def is_others(name):
    return name in OTHERS_SETTINGS or name.startswith(OTHERS_PREFIXES)


@dataclass(frozen=True)
class Read:
    name: str  # the Django setting's full name, or None when not a literal
    where: str  # path:line
    via_conf: bool  # through the app's conf.setting()


def conf_module(app):
    return importlib.import_module(f"{app}.conf")


def defaults_by_app():
    """{app: {full setting name: default}}"""
    tables = {}
    for app, prefix in APPS.items():
        conf = conf_module(app)
        assert getattr(conf, "PREFIX", prefix) == prefix, f"{app}.conf.PREFIX is not {prefix!r}"
        tables[app] = {prefix + key: value for key, value in conf.DEFAULTS.items()}
    return tables


def _absolute(path, node):
    """The absolute module an ImportFrom in the file at ``path`` names."""
    if not node.level:
        return node.module or ""
    # `from . import x` in a/b/c.py is package a.b; in a/b/__init__.py too.
    package = list(path.relative_to(REPO).parent.parts)
    package = package[: len(package) - (node.level - 1)]
    return ".".join(package + ([node.module] if node.module else []))


def _literal(node):
    return node.value if isinstance(node, ast.Constant) and isinstance(node.value, str) else None


def scan(path):
    """The settings one source file reads."""
    app = path.relative_to(REPO).parts[0]
    tree = ast.parse(path.read_text(), filename=str(path))
    setting_funcs = {}  # local name -> app whose conf.setting it is
    conf_modules = {}  # local name -> app whose conf module it is
    settings_names = set()  # local names of django.conf.settings
    for node in ast.walk(tree):
        if isinstance(node, ast.ImportFrom):
            source = _absolute(path, node)
            for alias in node.names:
                local = alias.asname or alias.name
                if source == "django.conf" and alias.name == "settings":
                    settings_names.add(local)
                elif source.endswith(".conf") and source[: -len(".conf")] in APPS and alias.name == "setting":
                    setting_funcs[local] = source[: -len(".conf")]
                elif source in APPS and alias.name == "conf":
                    conf_modules[local] = source
        elif isinstance(node, ast.FunctionDef) and node.name == "setting" and node in tree.body:
            # a module's own setting() helper reads its app's prefix
            setting_funcs.setdefault("setting", app)

    # `for name in ("MEDIA_ROOT", "STATIC_ROOT"): getattr(settings, name)` reads both;
    # so does `for name, check in (("A", a), ("B", b)): setting(name)`.
    loop_names = {}
    for node in ast.walk(tree):
        if not (isinstance(node, (ast.For, ast.comprehension)) and isinstance(node.iter, (ast.Tuple, ast.List))):
            continue
        rows = node.iter.elts
        if isinstance(node.target, ast.Name):
            targets, rows = [(node.target, 0)], [ast.Tuple(elts=[row]) for row in rows]
        elif isinstance(node.target, ast.Tuple):
            targets = [(target, index) for index, target in enumerate(node.target.elts) if isinstance(target, ast.Name)]
        else:
            continue
        for target, index in targets:
            values = [
                _literal(row.elts[index]) if isinstance(row, ast.Tuple) and len(row.elts) > index else None
                for row in rows
            ]
            if values and all(values):
                loop_names.setdefault(target.id, []).extend(values)

    def names(node):
        if _literal(node):
            return [_literal(node)]
        if isinstance(node, ast.Name) and node.id in loop_names:
            return loop_names[node.id]
        return [None]

    where = lambda node: f"{path.relative_to(REPO)}:{node.lineno}"  # noqa: E731
    reads = []
    for node in ast.walk(tree):
        if isinstance(node, ast.Call):
            func = node.func
            owner = None
            if isinstance(func, ast.Name) and func.id in setting_funcs:
                owner = setting_funcs[func.id]
            elif (
                isinstance(func, ast.Attribute)
                and func.attr == "setting"
                and isinstance(func.value, ast.Name)
                and func.value.id in conf_modules
            ):
                owner = conf_modules[func.value.id]
            if owner and node.args:
                for name in names(node.args[0]):
                    reads.append(Read(APPS[owner] + name if name else None, where(node), True))
            elif (
                isinstance(func, ast.Name)
                and func.id in ("getattr", "hasattr")
                and len(node.args) >= 2
                and isinstance(node.args[0], ast.Name)
                and node.args[0].id in settings_names
            ):
                reads.extend(Read(name, where(node), False) for name in names(node.args[1]))
        elif (
            isinstance(node, ast.Attribute)
            and isinstance(node.value, ast.Name)
            and node.value.id in settings_names
            and node.attr.isupper()
        ):
            reads.append(Read(node.attr, where(node), False))
    return reads


def app_sources():
    for app in APPS:
        yield from sorted((REPO / app).rglob("*.py"))


def all_reads():
    return [read for path in app_sources() for read in scan(path)]


def documented():
    """{section: {name: default cell}} from docs/settings.md's tables; the section
    is an app package named in backticks in the heading, or "site"."""
    sections = {}
    section = None
    for line in DOC.read_text().splitlines():
        if line.startswith("#"):
            apps = [app for app in APPS if f"`{app}`" in line]
            section = apps[0] if apps else ("site" if "environment" in line.lower() else None)
            continue
        if section and line.startswith("|"):
            cells = [cell.strip() for cell in line.strip().strip("|").split("|")]
            for name in re.findall(r"`([A-Z][A-Z0-9_]+)`", cells[0]):
                sections.setdefault(section, {})[name] = cells[1] if len(cells) > 1 else ""
    return sections


def _default_spellings(value):
    """How a scalar default may be written in the table's default column."""
    if isinstance(value, bool) or value is None:
        return {f"`{value!r}`"}
    if isinstance(value, (int, float)):
        return {f"`{value!r}`"}
    if isinstance(value, str):
        return {f"`{value}`", f'`"{value}"`', f"`{value!r}`"} if value else {'`""`', "`''`"}
    return None  # dicts, lists, objects: described in words


def test_every_setting_the_apps_read_has_a_default_and_a_row():
    tables = defaults_by_app()
    doc = documented()
    problems = []
    for app, table in tables.items():
        for name in table:
            if name not in doc.get(app, {}):
                problems.append(f"{name}: in {app}.conf.DEFAULTS but not in docs/settings.md's `{app}` table")
    known = {name: app for app, table in tables.items() for name in table}
    for read in all_reads():
        if read.name is None or is_others(read.name):
            continue
        if read.name not in known:
            problems.append(f"{read.name} (read at {read.where}): in no app's conf.DEFAULTS")
        elif read.name not in doc.get(known[read.name], {}):
            problems.append(f"{read.name} (read at {read.where}): not in docs/settings.md")
    assert not problems, "\n".join(sorted(set(problems)))


def test_every_defaults_entry_is_read_somewhere():
    """A documented setting that no code reads would be a promise nothing keeps."""
    read = {read.name for read in all_reads()}
    unread = sorted(name for table in defaults_by_app().values() for name in table if name not in read)
    assert not unread, f"in a conf.DEFAULTS table but read by no code: {unread}"


def test_app_settings_are_read_through_their_conf_module():
    """No second default beside the table: outside conf.py an app's own
    settings are read only with setting("NAME"), never getattr(settings, ...)."""
    problems = []
    for path in app_sources():
        if path.name == "conf.py":
            continue
        for read in scan(path):
            if read.name is None:
                problems.append(f"{read.where}: a setting read whose name is not a literal")
            elif not read.via_conf and read.name.startswith(tuple(APPS.values())):
                problems.append(f"{read.where}: {read.name} read beside conf.setting()")
    assert not problems, "\n".join(problems)


def test_docs_name_only_real_settings_with_their_defaults():
    tables = defaults_by_app()
    doc = documented()
    problems = []
    for app, table in tables.items():
        for name, cell in doc.get(app, {}).items():
            if name not in table:
                problems.append(f"docs/settings.md's `{app}` table names {name}, which {app}.conf.DEFAULTS lacks")
                continue
            spellings = _default_spellings(table[name])
            if spellings and not any(spelling in cell for spelling in spellings):
                problems.append(f"{name}: documented default {cell!r}, the table says {table[name]!r}")
    assert not problems, "\n".join(problems)


# -- the demo site's environment variables -------------------------------------

SITE_SOURCES = [REPO / "cms" / "settings" / "base.py", REPO / "deploy" / "gunicorn.conf.py"]
ENV_READERS = {"env_bool", "env_list", "env_size"}


def site_environment_reads():
    """Variables the demo site's settings and gunicorn config read: os.environ
    lookups, the env_* helpers, dj_database_url's env= and env_overrides' keys."""
    names = set()
    for path in SITE_SOURCES:
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, ast.Call):
                func = node.func
                func_name = func.attr if isinstance(func, ast.Attribute) else getattr(func, "id", None)
                is_environ_get = (
                    isinstance(func, ast.Attribute)
                    and func.attr == "get"
                    and isinstance(func.value, ast.Attribute)
                    and func.value.attr == "environ"
                )
                if (is_environ_get or func_name in ENV_READERS) and node.args and _literal(node.args[0]):
                    names.add(_literal(node.args[0]))
                for keyword in node.keywords:
                    if keyword.arg == "env" and _literal(keyword.value):
                        names.add(_literal(keyword.value))
                if func_name == "env_overrides" and node.args and isinstance(node.args[0], ast.Dict):
                    names.update(_literal(key) for key in node.args[0].keys)
            elif (
                isinstance(node, ast.Subscript)
                and isinstance(node.ctx, ast.Load)
                and isinstance(node.value, ast.Attribute)
                and node.value.attr == "environ"
                and _literal(node.slice)
            ):
                names.add(_literal(node.slice))
    return names


def make_variables():
    text = (REPO / "Makefile").read_text()
    return set(re.findall(r"^(?:export\s+)?([A-Z][A-Z0-9_]*)\s*\?=", text, re.MULTILINE))


def test_every_environment_variable_of_the_demo_site_is_documented():
    read = site_environment_reads()
    assert {"SECRET_KEY", "DATABASE_URL", "MEDIA_ACCESS_TOKEN_LIFETIME"} <= read  # the scan sees them
    table = documented().get("site", {})
    missing = sorted(read - set(table))
    assert not missing, f"environment variables read by the demo site, not in docs/settings.md: {missing}"
    bootstrap = (REPO / "cms" / "management" / "commands" / "bootstrap_site.py").read_text()
    stale = sorted(
        name for name in set(table) - read - make_variables() if f'"{name}"' not in bootstrap
    )
    assert not stale, f"docs/settings.md documents variables nothing reads: {stale}"


@pytest.mark.parametrize("app", APPS)
def test_every_defaults_entry_has_a_comment(app):
    """Each DEFAULTS entry says what it is for in a comment, on its line or the one above."""
    path = REPO / app / "conf.py"
    lines = path.read_text().splitlines()
    tree = ast.parse("\n".join(lines))
    table = next(
        node.value
        for node in tree.body
        if isinstance(node, (ast.Assign, ast.AnnAssign))
        and any(
            getattr(target, "id", None) == "DEFAULTS"
            for target in (node.targets if isinstance(node, ast.Assign) else [node.target])
        )
    )
    uncommented = [
        _literal(key)
        for key in table.keys
        if not lines[key.lineno - 2].strip().startswith("#") and "#" not in lines[key.lineno - 1]
    ]
    assert not uncommented, f"{app}.conf.DEFAULTS entries without a comment: {uncommented}"


def _site_settings(tmp_path, **environ):
    """The app settings cms.settings.base defines, in a clean environment plus ``environ``."""
    import json
    import os
    import subprocess
    import sys

    env = {
        name: value
        for name, value in os.environ.items()
        if not name.startswith(tuple(APPS.values())) and name != "DJANGO_SETTINGS_MODULE"
    }
    env.update(CMS_DATA_DIR=str(tmp_path), **environ)
    script = (
        "import json, cms.settings.base as s; "
        f"print(json.dumps({{n: getattr(s, n) for n in dir(s) if n.startswith({tuple(APPS.values())!r})}}))"
    )
    result = subprocess.run(
        [sys.executable, "-c", script], cwd=REPO, env=env, capture_output=True, text=True, timeout=60
    )
    return result.returncode, json.loads(result.stdout) if result.returncode == 0 else result.stderr


# App settings the demo site sets for itself (not an app default written again):
# paths below its data folder. docs/settings.md says so.
SITE_OWN_APP_SETTINGS = {
    "TRANSCODING_LOCK_DIR": "transcoding-locks",
    "MEDIA_ACCESS_NGINX_UPSTREAM": "run/gunicorn.sock",
}


def test_demo_site_writes_no_app_default_and_reads_overrides_from_the_environment(tmp_path):
    tables = defaults_by_app()
    defaults = {name: value for table in tables.values() for name, value in table.items()}
    code, values = _site_settings(tmp_path)
    assert code == 0, values
    # Only what the site needs of its own, none of it an app's default.
    assert set(values) == set(SITE_OWN_APP_SETTINGS)
    for name, value in values.items():
        assert name in defaults and value != defaults[name]
        assert value.endswith(str(tmp_path / SITE_OWN_APP_SETTINGS[name])), (name, value)
    site_section = DOC.read_text().split("## The demo site's environment variables", 1)[1]
    assert all(f"`{name}`" in site_section for name in SITE_OWN_APP_SETTINGS)

    code, overridden = _site_settings(
        tmp_path,
        MEDIA_ACCESS_TOKEN_LIFETIME="77",
        PRIVATE_VIDEO_MAX_UPLOAD_SIZE="1G",
        TRANSCODING_AUTO_ENQUEUE="off",
        MEDIA_ACCESS_SERVE_MODE="django",
        MEDIA_ACCESS_S3_RESOLVER="",  # empty: the default stays
    )
    assert code == 0, overridden
    assert overridden == {
        **values,
        "MEDIA_ACCESS_TOKEN_LIFETIME": 77,
        "PRIVATE_VIDEO_MAX_UPLOAD_SIZE": 1024**3,
        "TRANSCODING_AUTO_ENQUEUE": False,
        "MEDIA_ACCESS_SERVE_MODE": "django",
    }

    code, error = _site_settings(tmp_path, MEDIA_ACCESS_LOG_WINDOW="half an hour")
    assert code != 0 and "ImproperlyConfigured: MEDIA_ACCESS_LOG_WINDOW='half an hour'" in error
