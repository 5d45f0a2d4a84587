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


class AwaitingLabels(Exception):
    """A run reached labels that people have not given yet (labeler=human): the pending
    comparisons are in `queue`, answers go to `labels`; the CLI says how to serve the page and
    exits 3, and the same command continues once they are in."""

    EXIT = 3

    def __init__(self, queue: object, labels: object, pending: int, added: int, host: str = "127.0.0.1",
                 port: int = 8765) -> None:
        self.queue, self.labels, self.pending, self.added, self.host, self.port = queue, labels, pending, added, host, port
        super().__init__(f"{pending} items (comparisons or ratings) need labels from people ({added} new in {queue}); serve them with "
                         f"`harness-label serve {queue} {labels} --port {port}` (http://{host}:{port}/), then run "
                         "the same command again")
