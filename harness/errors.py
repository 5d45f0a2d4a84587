"""What stops a job short: bad input (the CLI prints its message as one line and exits 2) and
a signal (the run is marked KILLED; exit 128 + the signal's number)."""

import signal


class InputError(ValueError):
    """A config value, file or package that the user must fix; the message says what and how."""


class Stopped(BaseException):
    """The job was stopped by a signal (SIGINT, SIGTERM). A BaseException, like
    KeyboardInterrupt, so that no `except Exception` on the way swallows it."""

    def __init__(self, signum: int) -> None:
        super().__init__(signal.Signals(signum).name)
        self.signum = signum
