"""Errors of the unlearners package. Each message is one line meant for a person."""

from __future__ import annotations


def first_line(err: BaseException, limit: int | None = None) -> str:
    """The first line of an exception's message, or its type's name when the message is empty; with `limit`, cut
    to at most that many characters (ending in "...")."""
    text = str(err).strip()
    line = text.splitlines()[0].strip() if text else type(err).__name__
    return line if limit is None or len(line) <= limit else line[: limit - 3] + "..."


class UnlearnError(ValueError):
    """Bad input to an unlearning run: unknown method or hyperparameter, empty forget set, missing retain set, ..."""


class NonFiniteLossError(UnlearnError):
    """The loss (or the parameters) became NaN or infinite; the run stopped before saving a bad state."""

    def __init__(self, message: str, step: int = 0):
        super().__init__(message)
        self.step = step
