"""The `toolbox` example upstream: stateless utilities served over streamable HTTP.

Run `python examples/upstreams/toolbox_server.py --host 127.0.0.1 --port 8931`; `--port 0` picks a
free port. The first stdout line is `toolbox listening on http://HOST:PORT/mcp`.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import sys
from datetime import datetime
from pathlib import Path
from typing import Annotated, Literal, TypedDict
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from mcp.server.mcpserver import MCPServer
from mcp.server.mcpserver.exceptions import ToolError
from pydantic import Field

if __package__ in (None, ""):  # run as a script: make the `examples` package importable
    sys.path.insert(0, str(Path(__file__).resolve().parents[2]))

from examples.upstreams import units  # noqa: E402
from examples.upstreams.arithmetic import ExpressionError, Number, evaluate  # noqa: E402
from examples.upstreams.http_listener import serve  # noqa: E402

Expression = Annotated[
    str, Field(min_length=1, max_length=500, description="Arithmetic such as '(2 + 3) * -4 ** 2 // 7 % 5'.")
]
UnitName = Annotated[str, Field(description="Unit symbol or name, e.g. 'km', 'mile', 'lb', 'C', 'fahrenheit'.")]
TimezoneName = Annotated[str, Field(max_length=64, description="IANA time zone such as 'Europe/Paris'.")]


class Calculation(TypedDict):
    """The evaluated expression and its value."""

    expression: str
    result: Number


class Conversion(TypedDict):
    """A value converted between two units of the same dimension."""

    value: float
    from_unit: str
    to_unit: str
    result: float


class Digest(TypedDict):
    """The hex digest of a text's UTF-8 bytes."""

    algorithm: str
    hexdigest: str


class Clock(TypedDict):
    """The current time in one time zone."""

    timezone: str
    iso: str
    unix: float


def build_server() -> MCPServer:
    """The `toolbox` MCP server."""
    instructions = "Arithmetic, unit conversion, hashing and clocks."
    server = MCPServer("toolbox", version="1.0.0", instructions=instructions, log_level="WARNING")

    @server.tool()
    def calculate(expression: Expression) -> Calculation:
        """Evaluate an arithmetic expression: numbers, + - * / // % **, parentheses and unary minus."""
        try:
            return Calculation(expression=expression, result=evaluate(expression))
        except ExpressionError as exc:
            raise ToolError(str(exc)) from exc

    @server.tool()
    def convert_units(value: float, from_unit: UnitName, to_unit: UnitName) -> Conversion:
        """Convert a length, mass or temperature; see the toolbox://units resource for the units."""
        try:
            source, target = units.find_unit(from_unit), units.find_unit(to_unit)
            result = units.convert(value, source, target)
        except units.UnitError as exc:
            raise ToolError(str(exc)) from exc
        return Conversion(value=value, from_unit=source.symbol, to_unit=target.symbol, result=result)

    @server.tool()
    def hash_text(text: str, algorithm: Literal["sha256", "sha1", "md5"] = "sha256") -> Digest:
        """Hash a text's UTF-8 bytes and return the hex digest."""
        # md5 and sha1 are offered for checksums and legacy identifiers, not for security.
        digest = hashlib.new(algorithm, text.encode(), usedforsecurity=False).hexdigest()
        return Digest(algorithm=algorithm, hexdigest=digest)

    @server.tool()
    def now(timezone: TimezoneName = "UTC") -> Clock:
        """The current date and time in an IANA time zone."""
        try:
            zone = ZoneInfo(timezone)
        except (ZoneInfoNotFoundError, ValueError) as exc:
            raise ToolError(f"unknown time zone {timezone!r}") from exc
        moment = datetime.now(zone)
        return Clock(timezone=timezone, iso=moment.isoformat(), unix=moment.timestamp())

    @server.resource("toolbox://units", name="units", mime_type="application/json")
    def supported_units() -> str:
        """The units convert_units accepts, grouped by dimension."""
        return json.dumps(units.catalog())

    @server.prompt()
    def explain_calculation(expression: Expression) -> str:
        """Ask the model to explain, step by step, how an arithmetic expression is evaluated."""
        try:
            outcome = f"It evaluates to {evaluate(expression)!r}."
        except ExpressionError as exc:
            outcome = f"Evaluating it fails: {exc}."
        return (
            f"Explain step by step how the expression `{expression}` is evaluated, "
            f"following Python's operator precedence. {outcome}"
        )

    return server


def main(argv: list[str] | None = None) -> None:
    """Serve the toolbox over streamable HTTP."""
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=8931, help="0 picks a free port")
    args = parser.parse_args(argv)
    # Passing the bind host keeps the SDK's DNS-rebinding protection on for loopback hosts.
    app = build_server().streamable_http_app(host=args.host)
    serve(app, name="toolbox", host=args.host, port=args.port)


if __name__ == "__main__":
    main()
