"""The one exception the API raises for bad input."""


class InputError(ValueError):
    """Bad input from the user: the message is one sentence saying what was expected."""
