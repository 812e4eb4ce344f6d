"""Kubernetes resource quantities (k8s.io/apimachinery ``pkg/api/resource``): ``500m``,
``1.5``, ``128Mi``, ``1G``, ``2e3``. Parsed exactly (as Fractions) so that quota sums and
limit comparisons do not round; formatted back the way the API server prints common
values (``500m`` for millis, binary suffixes for whole multiples of 1024, else decimal)."""

from __future__ import annotations

import re
from fractions import Fraction

_SUFFIXES = {
    "": Fraction(1), "m": Fraction(1, 1000), "k": Fraction(10**3), "M": Fraction(10**6),
    "G": Fraction(10**9), "T": Fraction(10**12), "P": Fraction(10**15),
    "E": Fraction(10**18), "Ki": Fraction(2**10), "Mi": Fraction(2**20),
    "Gi": Fraction(2**30), "Ti": Fraction(2**40), "Pi": Fraction(2**50),
    "Ei": Fraction(2**60), "n": Fraction(1, 10**9), "u": Fraction(1, 10**6),
}
_QUANTITY = re.compile(r"^([+-]?[0-9.]+)(e[+-]?[0-9]+|E[+-]?[0-9]+|[A-Za-z]*)$")


class QuantityError(ValueError):
    """Not a quantity (the API server's "quantities must match the regular expression")."""


def parse(value: object) -> Fraction:
    if isinstance(value, bool):
        raise QuantityError(f"invalid quantity {value!r}")
    if isinstance(value, int | float):
        return Fraction(value)
    m = _QUANTITY.match(str(value).strip())
    if not m:
        raise QuantityError(f"quantities must match the regular expression "
                            f"'^([+-]?[0-9.]+)([eEinumkKMGTP]*[-+]?[0-9]*)$': {value!r}")
    number, suffix = m.groups()
    try:
        base = Fraction(number)
    except ValueError as exc:
        raise QuantityError(f"invalid quantity {value!r}") from exc
    if suffix[:1] in ("e", "E") and suffix[1:].lstrip("+-").isdigit():
        return base * Fraction(10) ** int(suffix[1:])
    if suffix not in _SUFFIXES:
        raise QuantityError(f"unable to parse quantity's suffix: {value!r}")
    return base * _SUFFIXES[suffix]


def format_quantity(value: Fraction, binary: bool = False) -> str:
    """``value`` as a quantity string (millis for fractions, Ki/Mi/Gi for memory)."""
    if value.denominator != 1:
        return f"{int(value * 1000)}m"
    n = int(value)
    if binary and n:
        for suffix in ("Ei", "Pi", "Ti", "Gi", "Mi", "Ki"):
            if n % int(_SUFFIXES[suffix]) == 0:
                return f"{n // int(_SUFFIXES[suffix])}{suffix}"
    return str(n)
