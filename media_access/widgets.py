"""The Viewers tab's user field: a username typed in, not a list of accounts.

A ``<select>`` of every user hands the whole user directory to anyone who may
edit a page (and, on a large site, tens of thousands of ``<option>``s to every
grant row). ``UsernameInput`` shows the granted user's username and turns the
typed username back into the user's id for the model field, which checks it
as before: an unknown name is the field's "not a valid choice" error.
"""

from django import forms
from django.contrib.auth import get_user_model


class UsernameInput(forms.TextInput):
    def __init__(self, attrs=None):
        super().__init__({"autocomplete": "off", "spellcheck": "false", **(attrs or {})})

    def format_value(self, value):
        """The username for a stored id (the form's initial value), else what was typed."""
        if value in (None, ""):
            return None
        User = get_user_model()
        if isinstance(value, User):
            return value.get_username()
        if str(value).isdigit():
            name = User._default_manager.filter(pk=value).values_list(User.USERNAME_FIELD, flat=True).first()
            if name is not None:
                return name
        return str(value)

    def value_from_datadict(self, data, files, name):
        """The id of the user with the typed username; anything else as it was
        typed, for the field to accept (a user's id) or refuse."""
        typed = (data.get(name) or "").strip()
        if not typed:
            return ""
        User = get_user_model()
        found = User._default_manager.filter(**{User.USERNAME_FIELD: typed}).values_list("pk", flat=True).first()
        return found if found is not None else typed
