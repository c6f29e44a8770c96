"""Reading typed values from environment variables."""

import os
import re

from django.core.exceptions import ImproperlyConfigured

_TRUE = {"1", "true", "yes", "on"}
_FALSE = {"0", "false", "no", "off", ""}
_SIZE_UNITS = {"": 1, "K": 1024, "M": 1024**2, "G": 1024**3, "T": 1024**4}


def parse_bool(text):
    if text.strip().lower() in _TRUE:
        return True
    if text.strip().lower() in _FALSE:
        return False
    raise ValueError(f"{text!r} is not a boolean (use 1/0, true/false)")


def env_bool(name, default):
    value = os.environ.get(name)
    if value is None:
        return default
    try:
        return parse_bool(value)
    except ValueError as exc:
        raise ImproperlyConfigured(f"{name}: {exc}") from None


def env_list(name, default):
    value = os.environ.get(name)
    if value is None:
        return list(default)
    return [item.strip() for item in value.split(",") if item.strip()]


def parse_size(text):
    """'8G' -> 8589934592; plain numbers are bytes."""
    match = re.fullmatch(r"\s*(\d+)\s*([KMGT]?)i?B?\s*", str(text), re.IGNORECASE)
    if not match:
        raise ValueError(f"{text!r} is not a size such as 500M or 8G")
    return int(match.group(1)) * _SIZE_UNITS[match.group(2).upper()]


def env_size(name, default):
    value = os.environ.get(name, default)
    try:
        return parse_size(value)
    except ValueError as exc:
        raise ImproperlyConfigured(f"{name}: {exc}") from None


def env_overrides(parsers):
    """{setting name: parser} -> {name: parsed value} for the variables that are set.

    An absent or empty variable leaves its setting out, so the app's own default (its
    conf.DEFAULTS table, docs/settings.md) applies: the site never writes an
    app's default a second time.
    """
    values = {}
    for name, parse in parsers.items():
        text = os.environ.get(name, "")
        if not text.strip():
            continue
        try:
            values[name] = parse(text)
        except ValueError as exc:
            raise ImproperlyConfigured(f"{name}={text!r}: {exc}") from None
    return values
