"""The one error type of the privacy core."""


class ExpansionError(ValueError):
    """The prompt cannot be expanded safely; the message says what to change."""
