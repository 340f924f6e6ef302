"""Why a baseline cannot be computed at all (as opposed to a result that carries flags)."""

from aggregator.core.errors import DomainError, Problem


class BaselineError(DomainError):
    """Bad input or parameters: nothing was computed. `problems[0].field` names the key or input."""

    status = 422

    def __init__(self, code: str, message: str, field: str | None = None):
        super().__init__(Problem(code, message, field))
