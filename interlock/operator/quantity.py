"""Kubernetes resource quantities in the API server's canonical form (``cpu: 4`` -> ``"4"``, ``1024Mi`` -> ``"1Gi"``,
``0.5`` -> ``"500m"``).

The API server stores every quantity in canonical form, so a manifest that writes ``1024Mi`` reads back ``1Gi``.
The builders write quantities already canonical: what the operator applies is then what it reads back, and a
resync finds nothing to change. The rules are those of apimachinery's ``resource.Quantity`` (``CanonicalizeBytes``):

- the suffix family of the input is kept: binary (``Ki``..``Ei``), decimal SI (``n``, ``u``, ``m``, none, ``k``..``E``)
  or decimal exponent (``e3``);
- a decimal value is written as an integer mantissa times the largest power of 1000 (or ``e``-multiple of 3) that
  keeps it an integer: ``1500`` stays ``1500``, ``2000`` is ``2k``, ``0.5`` is ``500m``;
- a binary value strictly between -1024 and 1024, or one that is not a whole number, is written in decimal SI;
  otherwise as an integer times the largest power of 1024: ``1536Mi`` stays, ``1024Mi`` is ``1Gi``;
- precision finer than nano (10^-9) is rounded up.
"""

from __future__ import annotations

import math
import re
from fractions import Fraction

__all__ = ["QuantityError", "canonical_quantity", "parse_quantity"]

_PATTERN = re.compile(r"^([+-]?(?:\d+\.?\d*|\.\d+))(Ki|Mi|Gi|Ti|Pi|Ei|[eE][+-]?\d+|n|u|m|k|M|G|T|P|E)?$")
_BINARY = {"Ki": 1, "Mi": 2, "Gi": 3, "Ti": 4, "Pi": 5, "Ei": 6}
_DECIMAL = {"n": -9, "u": -6, "m": -3, "": 0, "k": 3, "M": 6, "G": 9, "T": 12, "P": 15, "E": 18}
_DECIMAL_SUFFIX = {exp: suffix for suffix, exp in _DECIMAL.items()}
_BINARY_SUFFIX = {power: suffix for suffix, power in _BINARY.items()}
_NANO = Fraction(1, 10**9)


class QuantityError(ValueError):
    """Not a Kubernetes quantity."""


def parse_quantity(value: str | int | float) -> tuple[Fraction, str]:
    """The exact value and the format (``binary``, ``decimal`` or ``exponent``) of a quantity."""
    if isinstance(value, bool):
        raise QuantityError(f"not a quantity: {value!r}")
    text = repr(value) if isinstance(value, float) else str(value)  # as JSON writes it: 1e-05 is exponent form
    match = _PATTERN.fullmatch(text.strip())
    if match is None:
        raise QuantityError(f"quantities must match the regular expression of the Kubernetes API: {value!r}")
    number, suffix = Fraction(match.group(1)), match.group(2) or ""
    if suffix in _BINARY:
        return number * 1024 ** _BINARY[suffix], "binary"
    if suffix[:1] in ("e", "E"):
        return number * Fraction(10) ** int(suffix[1:]), "exponent"
    return number * Fraction(10) ** _DECIMAL[suffix], "decimal"


def _round_up_to_nano(value: Fraction) -> Fraction:
    scaled = value / _NANO
    return Fraction(math.ceil(scaled)) * _NANO if scaled.denominator != 1 else value


def _decimal(value: Fraction, *, exponent_form: bool) -> str:
    # value is a whole number of nanos: mantissa * 10^exp with exp a multiple of 3, mantissa an integer.
    exp = -9
    mantissa = int(value / _NANO)
    while mantissa % 1000 == 0 and exp < 18:
        mantissa //= 1000
        exp += 3
    if exponent_form:
        return f"{mantissa}e{exp}" if exp else str(mantissa)
    return f"{mantissa}{_DECIMAL_SUFFIX[exp]}"


def canonical_quantity(value: str | int | float) -> str:
    """The canonical text of a quantity, as the API server stores and returns it."""
    number, fmt = parse_quantity(value)
    if number == 0:
        return "0"
    number = _round_up_to_nano(number)
    if fmt == "binary" and (-1024 < number < 1024 or number.denominator != 1):
        fmt = "decimal"
    if fmt == "binary":
        mantissa, power = int(number), 0
        while mantissa % 1024 == 0 and power < 6:
            mantissa //= 1024
            power += 1
        return f"{mantissa}{_BINARY_SUFFIX[power]}" if power else str(mantissa)
    return _decimal(number, exponent_form=fmt == "exponent")
