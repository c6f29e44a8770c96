"""The Viewers tab's user field: a username typed in, not a list of accounts.

A ``<select>`` of every user hands the whole user directory to anyone who may
edit a page (and, on a large site, tens of thousands of ``<option>``s to every
grant row). ``UsernameInput`` shows the granted user's username and turns the
typed username back into the user's id for the model field, which checks it
as before: an unknown name is the field's "not a valid choice" error.
"""

from django import forms
from django.contrib.auth import get_user_model


# What an unknown username becomes for the field: never a number, so the
# field cannot take it for a user's id (typing 1, 2, 3... would otherwise
# pick those accounts and show their usernames back).
_UNKNOWN = "?"


class UsernameInput(forms.TextInput):
    def __init__(self, attrs=None):
        super().__init__({"autocomplete": "off", "spellcheck": "false", **(attrs or {})})

    def format_value(self, value):
        """The username for the id the form holds (a stored grant's, or the
        one a typed username found), else the text as it was typed."""
        if value in (None, ""):
            return None
        User = get_user_model()
        if isinstance(value, User):
            return value.get_username()
        if isinstance(value, str) and value.startswith(_UNKNOWN):
            return value[len(_UNKNOWN):]
        if isinstance(value, int) or str(value).isdigit():
            name = User._default_manager.filter(pk=value).values_list(User.USERNAME_FIELD, flat=True).first()
            return name or ""
        return str(value)

    def value_from_datadict(self, data, files, name):
        """The id of the user with the typed username; an unknown name as
        something the field refuses ("not a valid choice"), ids included."""
        typed = (data.get(name) or "").strip()
        if not typed:
            return ""
        User = get_user_model()
        found = User._default_manager.filter(**{User.USERNAME_FIELD: typed}).values_list("pk", flat=True).first()
        return found if found is not None else _UNKNOWN + typed
