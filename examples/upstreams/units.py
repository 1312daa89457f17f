"""Unit conversion tables for the `toolbox` example: length, mass and temperature.

Length and mass convert through one base unit by a factor; temperature is affine, so it converts
through kelvin with an offset.
"""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class Unit:
    """A unit as `base = value * factor + offset`, where base is metre, kilogram or kelvin."""

    symbol: str
    name: str
    dimension: str
    factor: float
    offset: float = 0.0


_UNITS = (
    Unit("mm", "millimetre", "length", 0.001),
    Unit("cm", "centimetre", "length", 0.01),
    Unit("m", "metre", "length", 1.0),
    Unit("km", "kilometre", "length", 1000.0),
    Unit("in", "inch", "length", 0.0254),
    Unit("ft", "foot", "length", 0.3048),
    Unit("yd", "yard", "length", 0.9144),
    Unit("mi", "mile", "length", 1609.344),
    Unit("mg", "milligram", "mass", 1e-6),
    Unit("g", "gram", "mass", 0.001),
    Unit("kg", "kilogram", "mass", 1.0),
    Unit("t", "tonne", "mass", 1000.0),
    Unit("oz", "ounce", "mass", 0.028349523125),
    Unit("lb", "pound", "mass", 0.45359237),
    Unit("K", "kelvin", "temperature", 1.0),
    Unit("C", "celsius", "temperature", 1.0, 273.15),
    Unit("F", "fahrenheit", "temperature", 5 / 9, 273.15 - 32 * 5 / 9),
)

# Symbols and names are matched case-insensitively; no two units share a folded spelling.
_LOOKUP = {spelling.casefold(): unit for unit in _UNITS for spelling in (unit.symbol, unit.name)}


class UnitError(ValueError):
    """A unit is unknown, or the two units measure different things."""


def find_unit(spelling: str) -> Unit:
    """Look a unit up by symbol or name, ignoring case.

    Raises:
        UnitError: If no unit is spelled that way.
    """
    unit = _LOOKUP.get(spelling.strip().casefold())
    if unit is None:
        raise UnitError(f"unknown unit {spelling!r}; supported: {', '.join(u.symbol for u in _UNITS)}")
    return unit


def convert(value: float, source: Unit, target: Unit) -> float:
    """Convert `value` from `source` to `target` units.

    Raises:
        UnitError: If the units have different dimensions.
    """
    if source.dimension != target.dimension:
        raise UnitError(f"cannot convert {source.dimension} ({source.symbol}) to {target.dimension} ({target.symbol})")
    base = value * source.factor + source.offset
    # 12 significant digits drop binary-float noise such as 100 C -> 211.99999999999997 F.
    return float(f"{(base - target.offset) / target.factor:.12g}")


def catalog() -> dict[str, list[dict[str, str]]]:
    """The supported units grouped by dimension, as a JSON-ready document."""
    grouped: dict[str, list[dict[str, str]]] = {}
    for unit in _UNITS:
        grouped.setdefault(unit.dimension, []).append({"symbol": unit.symbol, "name": unit.name})
    return grouped
