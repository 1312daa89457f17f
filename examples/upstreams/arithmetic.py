"""Safe arithmetic for the `toolbox` example: parse with `ast`, walk a closed set of nodes.

Written by hand rather than with `eval` because the expression comes from a model or a user:
only numbers, + - * / // % **, parentheses and unary signs are accepted, and integer results
are capped in size so `9**9**9` cannot exhaust memory or CPU.
"""

from __future__ import annotations

import ast
import math
from collections.abc import Callable

MAX_EXPRESSION_LENGTH = 500
MAX_INT_BITS = 4096
MAX_EXPONENT = 10_000

Number = int | float

_BINARY: dict[type[ast.operator], Callable[[Number, Number], Number]] = {
    ast.Add: lambda a, b: a + b,
    ast.Sub: lambda a, b: a - b,
    ast.Mult: lambda a, b: a * b,
    ast.Div: lambda a, b: a / b,
    ast.FloorDiv: lambda a, b: a // b,
    ast.Mod: lambda a, b: a % b,
    ast.Pow: lambda a, b: a**b,
}
_UNARY: dict[type[ast.unaryop], Callable[[Number], Number]] = {ast.USub: lambda a: -a, ast.UAdd: lambda a: +a}


class ExpressionError(ValueError):
    """The expression is not allowed or cannot be evaluated; the message says why."""


def evaluate(expression: str) -> Number:
    """Evaluate an arithmetic expression.

    Raises:
        ExpressionError: For syntax outside the allowed set, division by zero, overflow, or a
            result too large to compute safely.
    """
    if len(expression) > MAX_EXPRESSION_LENGTH:
        raise ExpressionError(f"expression is longer than {MAX_EXPRESSION_LENGTH} characters")
    try:
        tree = ast.parse(expression.strip(), mode="eval")
    except SyntaxError as exc:
        raise ExpressionError(f"not a valid expression: {exc.msg}") from None
    return _check(_eval(tree.body))


def _eval(node: ast.expr) -> Number:
    # bool is an int subclass, but `True + 1` is not arithmetic anyone should rely on.
    if isinstance(node, ast.Constant) and isinstance(node.value, int | float) and not isinstance(node.value, bool):
        return _check(node.value)
    if isinstance(node, ast.UnaryOp) and type(node.op) in _UNARY:
        return _UNARY[type(node.op)](_eval(node.operand))
    if isinstance(node, ast.BinOp) and type(node.op) in _BINARY:
        left, right = _eval(node.left), _eval(node.right)
        if isinstance(node.op, ast.Pow):
            _guard_power(left, right)
        try:
            return _check(_BINARY[type(node.op)](left, right))
        except ZeroDivisionError:
            raise ExpressionError("division by zero") from None
        except OverflowError:
            raise ExpressionError("result is too large") from None
    raise ExpressionError(f"{type(node).__name__} is not allowed; use numbers, + - * / // % ** and parentheses")


def _guard_power(base: Number, exponent: Number) -> None:
    """Refuse powers whose result would be enormous before computing them."""
    if abs(exponent) > MAX_EXPONENT:
        raise ExpressionError(f"exponent is larger than {MAX_EXPONENT}")
    if isinstance(base, int) and isinstance(exponent, int) and abs(base) > 1 and exponent > 0:
        if exponent * math.log2(abs(base)) > MAX_INT_BITS:
            raise ExpressionError("result is too large")
    if base == 0 and exponent < 0:
        raise ExpressionError("division by zero")
    if base < 0 and isinstance(exponent, float) and not exponent.is_integer():
        raise ExpressionError("fractional power of a negative number")


def _check(value: Number) -> Number:
    if isinstance(value, int) and value.bit_length() > MAX_INT_BITS:
        raise ExpressionError("result is too large")
    if isinstance(value, float) and not math.isfinite(value):
        raise ExpressionError("result is not a finite number")
    return value
