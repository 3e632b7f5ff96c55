"""One condition of a rule's `params:` or `facts:` and the way values compare.

    ">= 10000"  "< 1000"  "== USD"  "!= EUR"  "in [USD, EUR]"  USD  10000  [USD, EUR]

A bare value means `==`, a YAML list means `in`. Values compare as numbers when both sides
read as numbers (Decimal amounts included: `12500.50 > 10000`), otherwise as text, ignoring
case. A condition on a parameter or fact the request does not have never matches.
"""

from __future__ import annotations

import re
from decimal import Decimal, InvalidOperation
from enum import Enum
from typing import Any

from pydantic import BaseModel, ConfigDict

OPERATORS = ("==", "!=", "<=", ">=", "<", ">", "in")
_COMPARISON = re.compile(r"^\s*(==|!=|<=|>=|<|>)\s*(.*?)\s*$", re.DOTALL)
_IN = re.compile(r"^\s*in\s*\[(.*)\]\s*$", re.DOTALL | re.IGNORECASE)
# Something that looks like an operator but is none of ours: `=> 5`, `=< 5`, `~= 5`, `= 5`.
_OPERATOR_LIKE = re.compile(r"^\s*([<>=!~]+)")
_NUMBER = re.compile(r"^[+-]?(\d+(\.\d*)?|\.\d+)([eE][+-]?\d+)?$")


class Condition(BaseModel):
    """`op` applied to the request's value (left) and `operands` (right; one unless `in`)."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    op: str
    operands: tuple[str, ...]

    def __str__(self) -> str:
        if self.op == "in":
            return f"in [{', '.join(self.operands)}]"
        return f"{self.op} {self.operands[0]}"

    def matches(self, value: object) -> bool:
        if value is None:
            return False
        left = text_of(value)
        if self.op == "in":
            return any(compare(left, "==", right) for right in self.operands)
        return compare(left, self.op, self.operands[0])


def text_of(value: object) -> str:
    """A parameter's value as the text it would be typed as (`true`, `12500.50`, `USD`)."""
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, Enum):
        return text_of(value.value)
    if isinstance(value, list | tuple | set | frozenset):
        return ",".join(text_of(v) for v in value)
    return str(value)


def number_of(text: str) -> Decimal | None:
    if not _NUMBER.match(text.strip()):
        return None
    try:
        number = Decimal(text.strip())
    except InvalidOperation:
        return None
    return number if number.is_finite() else None


ORDERING = frozenset({"<", "<=", ">", ">="})


def compare(left: str, op: str, right: str) -> bool:
    """Numbers compare as numbers. An ordering needs two numbers: `"$50000" < "1000"` as text
    would hold, and a rule such as `amount: "< 1000"` must never match what is not a number."""
    a, b = number_of(left), number_of(right)
    if a is not None and b is not None:
        return _apply(a, op, b)
    if op in ORDERING:
        return False
    return _apply(left.strip().casefold(), op, right.strip().casefold())


def _apply(a: Any, op: str, b: Any) -> bool:
    if op == "==":
        return bool(a == b)
    if op == "!=":
        return bool(a != b)
    if op == "<":
        return bool(a < b)
    if op == "<=":
        return bool(a <= b)
    if op == ">":
        return bool(a > b)
    if op == ">=":
        return bool(a >= b)
    raise ValueError(f"unknown operator {op!r}")


def _operand(value: object) -> str:
    if isinstance(value, dict):
        raise ValueError("a condition is a value, a comparison such as `>= 10000`, or a list")
    if value is None:
        raise ValueError("a condition needs a value")
    text = text_of(value).strip()
    if not text:
        raise ValueError("a condition needs a value")
    return text


def parse_condition(value: object) -> object:
    """YAML's value for one parameter into a Condition; a ValueError names what is wrong."""
    if isinstance(value, Condition):
        return value
    if isinstance(value, list | tuple):
        if not value:
            raise ValueError("an empty list matches nothing")
        return Condition(op="in", operands=tuple(_operand(v) for v in value))
    if not isinstance(value, str):
        return Condition(op="==", operands=(_operand(value),))
    found = _IN.match(value)
    if found:
        items = [item.strip().strip("'\"") for item in found.group(1).split(",")]
        if not any(items) or not all(items):
            raise ValueError(f"{value!r}: `in [a, b]` needs values separated by commas")
        return Condition(op="in", operands=tuple(items))
    if re.match(r"^\s*in\b", value, re.IGNORECASE):
        raise ValueError(f"{value!r}: write `in [a, b]`, with the values in square brackets")
    found = _COMPARISON.match(value)
    if found and not _OPERATOR_LIKE.match(value[value.index(found.group(1)) + len(found.group(1)):]):
        operand = found.group(2)
        if not operand:
            raise ValueError(f"{value!r}: `{found.group(1)}` needs a value after it")
        return Condition(op=found.group(1), operands=(operand,))
    odd = _OPERATOR_LIKE.match(value)
    if odd:
        raise ValueError(f"{value!r}: `{odd.group(1)}` is not an operator "
                         "(use ==, !=, <, <=, >, >= or in [a, b])")
    return Condition(op="==", operands=(_operand(value),))
