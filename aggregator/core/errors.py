"""Domain errors: raised by services, turned into 4xx bodies by the API layer and
into messages by the admin and management commands."""

from dataclasses import dataclass


@dataclass(frozen=True)
class Problem:
    code: str
    message: str
    field: str | None = None

    def as_dict(self) -> dict:
        return {"field": self.field, "code": self.code, "message": self.message}


class DomainError(Exception):
    """A request the domain refuses. `status` is the HTTP status it maps to."""

    status = 409

    def __init__(self, problems: list[Problem] | Problem, *, status: int | None = None):
        self.problems = [problems] if isinstance(problems, Problem) else list(problems)
        if status is not None:
            self.status = status
        super().__init__("; ".join(p.message for p in self.problems))

    @property
    def code(self) -> str:
        return self.problems[0].code


class InvalidTransition(DomainError):
    status = 409


class NotEligible(DomainError):
    status = 422
