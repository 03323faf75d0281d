"""The exceptions convcheck raises on purpose.

The CLI maps `InputError` to exit code 2 with its message as the one line on stderr,
so every message must name the file (or argument), say what is wrong and what to do.
"""


class InputError(ValueError):
    """Bad usage or bad input: a file, an array or an option convcheck cannot use.

    The message is complete on its own: it names the file or argument, what is wrong
    with it and what to do about it. It never needs a traceback to be understood.
    """


class BackendError(RuntimeError):
    """A backend could not run: its framework is missing or its call raised.

    Carries the backend's public name so reports can say which row failed.
    """

    def __init__(self, backend: str, reason: str):
        super().__init__(f"{backend}: {reason}")
        self.backend = backend
        self.reason = reason


class MissingDependency(RuntimeError):
    """An optional dependency is not installed (a model format's loader, a framework).

    The CLI maps it to exit code 3 with its message, which ends with the `pip install`
    line that brings the missing extra.
    """

    def __init__(self, what: str, extra: str, missing: str):
        super().__init__(f"{what} needs {missing}, which is not installed here: "
                         f"pip install 'convcheck[{extra}]'")
        self.extra = extra
        self.missing = missing
