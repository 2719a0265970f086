"""The error every service raises for an action that cannot be done."""


class ActionError(ValueError):
    """An action that cannot be done; the message says why, for the person who asked."""


class MissingScope(ActionError):
    """A consent that says nothing about what it covers."""
