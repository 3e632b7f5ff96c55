"""The policy's branch of the error tree (core/errors.py draws the whole tree)."""

from __future__ import annotations

from dataclasses import dataclass

from slack_approvals.core.errors import ApprovalsError


class PolicyError(ApprovalsError):
    """Base of the errors the policy raises."""


@dataclass(frozen=True)
class Problem:
    """One thing wrong with a policy document, at a line of its text (0: the whole file)."""

    line: int
    message: str

    def at(self, path: str) -> str:
        return f"{path}:{self.line}: {self.message}"


class PolicyInvalid(PolicyError, ValueError):
    """The document does not validate; `problems` holds each one with its line."""

    def __init__(self, origin: str, problems: list[Problem]) -> None:
        self.origin = origin
        self.problems = problems
        super().__init__("; ".join(p.at(origin) for p in problems))

    def lines(self) -> list[str]:
        return [p.at(self.origin) for p in self.problems]


class ApproversLocked(PolicyError, ValueError):
    """The policy says `lock: true`: a caller named approvers, which only the policy may do."""

    def __init__(self, named: list[str]) -> None:
        self.named = named
        super().__init__(f"the approval policy decides who approves (lock: true); "
                         f"approvers named by the caller are refused: {', '.join(named)}")
