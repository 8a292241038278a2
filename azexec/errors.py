"""Every exception azexec raises, each mapped to one exit status at the CLI boundary."""

from __future__ import annotations


class AzexecError(Exception):
    """Raised when azexec cannot do its job; exits 125, like env(1)'s own failures."""

    exit_code = 125

    def __init__(self, message: str, hint: str | None = None) -> None:
        super().__init__(message)
        self.message = message
        self.hint = hint

    def __str__(self) -> str:
        return f"{self.message}; {self.hint}" if self.hint else self.message


class UsageError(AzexecError):
    """Raised when the options contradict each other in a way click cannot see (exit 2)."""

    exit_code = 2


class MisplacedToken(UsageError):
    """Raised when a token is typed where a value of another kind belongs (an option's value, COMMAND): exit 2,
    as any mistake in how azexec was called."""


class TokenSourceError(AzexecError):
    """Raised when a source cannot be read or does not hold a usable credential."""


class TokenRejected(AzexecError):
    """Raised when the token fails a format or claim check."""


class PartFailed(AzexecError):
    """Raised when a resident part cannot start, or fails while COMMAND runs (COMMAND is stopped)."""


class AzLoginError(PartFailed):
    """Raised when az cannot be found, or az login fails (COMMAND does not run)."""


class LaunchError(AzexecError):
    """Raised when COMMAND cannot be started."""


class CommandNotFound(LaunchError):
    """Raised when COMMAND is not on PATH (exit 127)."""

    exit_code = 127


class CommandNotExecutable(LaunchError):
    """Raised when COMMAND exists but cannot be executed (exit 126)."""

    exit_code = 126


class Refused(Exception):
    """Raised when the identity server cannot serve a request; answered with STATUS and the one-line reason."""

    def __init__(self, message: str, status: int = 400) -> None:
        super().__init__(message)
        self.message = message
        self.status = status

    def __str__(self) -> str:
        return self.message


class Terminated(BaseException):  # a BaseException, like KeyboardInterrupt, which it mirrors
    """Raised when a signal tells azexec to stop; azexec cleans up, then dies of SIGNUM."""

    def __init__(self, signum: int) -> None:
        super().__init__(signum)
        self.signum = signum
