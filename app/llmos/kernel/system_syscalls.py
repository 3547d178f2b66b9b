"""System syscalls: the clock, a calculator, the model list and the process list.

=====================  ==================  ==============================================
permission             tool                does
=====================  ==================  ==============================================
``clock``              ``clock``           the local date, time and time zone
``calculator``         ``calculator``      evaluates arithmetic (no names but math's)
``models.list``        ``list_models``     installed models and their capabilities
``processes.list``     ``list_processes``  running processes and their context RAM
=====================  ==================  ==============================================
"""

from __future__ import annotations

import ast
import math
import operator
import time
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

from llmos.kernel.syscall_table import TEXT, Syscall, SyscallError

if TYPE_CHECKING:
    from llmos.kernel.process import Process
    from llmos.kernel.syscalls import Syscalls

EXPRESSION_CHARS = 300
MAX_EXPONENT = 1000
MAX_MAGNITUDE = 1e300

_BINARY: dict[type, Callable[[Any, Any], Any]] = {
    ast.Add: operator.add,
    ast.Sub: operator.sub,
    ast.Mult: operator.mul,
    ast.Div: operator.truediv,
    ast.FloorDiv: operator.floordiv,
    ast.Mod: operator.mod,
    ast.Pow: operator.pow,
}
_UNARY: dict[type, Callable[[Any], Any]] = {ast.UAdd: operator.pos, ast.USub: operator.neg}
_FUNCTIONS: dict[str, Callable[..., Any]] = {
    "sqrt": math.sqrt, "exp": math.exp, "log": math.log, "log10": math.log10,
    "sin": math.sin, "cos": math.cos, "tan": math.tan, "floor": math.floor,
    "ceil": math.ceil, "round": round, "abs": abs, "min": min, "max": max,
}  # fmt: skip
_CONSTANTS = {"pi": math.pi, "e": math.e}


def calculate(expression: str) -> int | float:
    """The value of an arithmetic expression: numbers, + - * / // % **, parentheses, and
    math's common functions and constants. Nothing else is evaluated.

    Raises:
        SyscallError: the expression is not arithmetic, or its value is out of range.
    """
    if len(expression) > EXPRESSION_CHARS:
        raise SyscallError(f"An expression may be at most {EXPRESSION_CHARS} characters.")
    try:
        tree = ast.parse(expression.replace("^", "**"), mode="eval")
    except SyntaxError:
        raise SyscallError(f"'{expression}' is not an arithmetic expression.") from None
    try:
        value = _evaluate(tree.body)
    except (ArithmeticError, ValueError, TypeError) as error:
        raise SyscallError(f"'{expression}' cannot be evaluated ({error}).") from None
    if isinstance(value, bool) or not isinstance(value, int | float):
        raise SyscallError(f"'{expression}' is not a number.")
    if abs(value) > MAX_MAGNITUDE:
        raise SyscallError(f"The value of '{expression}' is too large.")
    return value


def _evaluate(node: ast.expr) -> Any:
    if isinstance(node, ast.Constant) and isinstance(node.value, int | float):
        return node.value
    if isinstance(node, ast.Name) and node.id in _CONSTANTS:
        return _CONSTANTS[node.id]
    if isinstance(node, ast.UnaryOp) and type(node.op) in _UNARY:
        return _UNARY[type(node.op)](_evaluate(node.operand))
    if isinstance(node, ast.BinOp) and type(node.op) in _BINARY:
        left, right = _evaluate(node.left), _evaluate(node.right)
        if isinstance(node.op, ast.Pow) and abs(right) > MAX_EXPONENT:
            raise ValueError(f"exponents above {MAX_EXPONENT} are not computed")
        value = _BINARY[type(node.op)](left, right)
        if isinstance(value, int) and value.bit_length() > 1000:
            raise ValueError("the number grew too large")
        return value
    if (
        isinstance(node, ast.Call)
        and isinstance(node.func, ast.Name)
        and node.func.id in _FUNCTIONS
        and not node.keywords
    ):
        return _FUNCTIONS[node.func.id](*(_evaluate(arg) for arg in node.args))
    raise ValueError(f"'{ast.unparse(node)}' is not arithmetic")


async def _clock(calls: Syscalls, process: Process, args: dict[str, Any]) -> str:
    return time.strftime("%A %Y-%m-%d %H:%M:%S %Z (UTC%z)")


async def _calculator(calls: Syscalls, process: Process, args: dict[str, Any]) -> str:
    expression = str(args["expression"])
    value = calculate(expression)
    if isinstance(value, float) and value.is_integer() and abs(value) < 1e15:
        value = int(value)
    return f"{expression} = {value}"


async def _list_models(calls: Syscalls, process: Process, args: dict[str, Any]) -> str:
    models = await calls.kernel.driver.list_models()
    if not models:
        return "No models are installed."
    lines = []
    for info in models:
        context = f", context {info.context_length}" if info.context_length else ""
        lines.append(f"{info.name}: {', '.join(sorted(info.capabilities)) or '?'}{context}")
    return "\n".join(lines)


async def _list_processes(calls: Syscalls, process: Process, args: dict[str, Any]) -> str:
    lines = []
    for other in calls.kernel.processes:
        if not other.alive:
            continue
        used = other.usage.used if other.usage else 0
        me = " (you)" if other is process else ""
        lines.append(
            f"pid {other.pid}{me}: {other.app.name}, {other.state.value}, "
            f"context RAM {used} of {other.budget} tokens, model {other.model}"
        )
    return "\n".join(lines)


SYSTEM_SYSCALLS = (
    Syscall("clock", "clock", "The current local date and time.", {}, (), _clock),
    Syscall(
        "calculator",
        "calculator",
        "Evaluate arithmetic, e.g. (17 * 3) / 4 or sqrt(2).",
        {"expression": TEXT},
        ("expression",),
        _calculator,
    ),
    Syscall("list_models", "models.list", "The installed models.", {}, (), _list_models),
    Syscall("list_processes", "processes.list", "The running processes.", {}, (), _list_processes),
)
