"""The error type for bad input: the CLI prints its message as one line and exits non-zero."""


class InputError(ValueError):
    """A config value, file or package that the user must fix; the message says what and how."""
