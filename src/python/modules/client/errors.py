"""What the clients raise: every failure is a ForgeError whose str() is one line."""

from contextlib import suppress

import httpx
from pydantic import ValidationError

from modules.contract.problem import MEDIA_TYPE, Problem


class ForgeError(Exception):
    """Base of the clients' errors."""


class ApiError(ForgeError):
    """The API answered with an error status. `problem` is its RFC 9457 body (None when the
    answer had none, e.g. from a proxy or the object store)."""

    def __init__(self, status: int, problem: Problem | None, message: str) -> None:
        super().__init__(message)
        self.status = status
        self.problem = problem

    @classmethod
    def from_response(cls, response: httpx.Response) -> "ApiError":
        """From a read response: "404 Not Found: No job ... (request id ...)", with every field
        error of a validation problem on the same line."""
        problem = None
        if response.headers.get("content-type", "").startswith(MEDIA_TYPE):
            with suppress(ValidationError):  # not one after all: the status line must do
                problem = Problem.model_validate_json(response.content)
        phrase = response.reason_phrase or "Error"
        if problem is None:
            return cls(response.status_code, None, f"{response.status_code} {phrase}")
        message = f"{problem.status} {problem.title}"
        if problem.detail:
            message += f": {problem.detail}"
        if problem.errors:
            where = [error.pointer or ".".join(map(str, error.loc)) for error in problem.errors]
            message += (
                " ("
                + "; ".join(
                    f"{place}: {error.msg}"
                    for place, error in zip(where, problem.errors, strict=True)
                )
                + ")"
            )
        if problem.request_id:
            message += f" [request {problem.request_id}]"
        return cls(response.status_code, problem, message)


class InvalidRequest(ForgeError):
    """A request the client refuses to send: it breaks the contract (modules.contract)."""

    @classmethod
    def from_validation(cls, what: str, error: ValidationError) -> "InvalidRequest":
        problems = "; ".join(
            ".".join(map(str, problem["loc"])) + ": " + problem["msg"]
            for problem in error.errors(include_url=False)
        )
        return cls(f"invalid {what}: {problems}")


class ApiUnreachable(ForgeError):
    """No answer: the connection failed, broke or timed out (a stream of events first
    reconnects a few times)."""


class ChecksumMismatch(ForgeError):
    """A downloaded artifact is not the one the API recorded; nothing was left on disk."""

    def __init__(self, name: str, expected: str, actual: str) -> None:
        super().__init__(f"{name}: sha256 {actual} does not match the recorded {expected}")
        self.name, self.expected, self.actual = name, expected, actual
