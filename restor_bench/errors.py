"""Errors meant for people: one line that says what is wrong and where."""


class InputError(Exception):
    """Bad user input (file, field, path, name). The CLI prints it as one line and exits with code 2."""


class GateFailure(Exception):
    """A regression gate did not hold. The CLI prints the reason and exits with code 1."""
