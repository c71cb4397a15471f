"""The error a user can cause and fix, shared by every command (``ticktide <command>: what (how to fix)``)."""

from __future__ import annotations


class CommandError(Exception):
    """A failure the user caused and can fix: ``what`` went wrong and ``fix`` says how."""

    def __init__(self, what: str, fix: str | None = None, exit_code: int = 2) -> None:
        super().__init__(what)
        self.what, self.fix, self.exit_code = what, fix, exit_code

    def __str__(self) -> str:
        return f"{self.what} ({self.fix})" if self.fix else self.what
