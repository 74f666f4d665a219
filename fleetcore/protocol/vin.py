"""Vehicle Identification Number checks (ISO 3779 form, 49 CFR 565.15 check digit)."""

from __future__ import annotations

import re

VIN_RE = re.compile(r"^[A-HJ-NPR-Z0-9]{17}$")  # I, O and Q are never used
_TRANSLIT = {
    **{str(d): d for d in range(10)},
    **dict(zip("ABCDEFGH", range(1, 9), strict=True)),
    **dict(zip("JKLMN", range(1, 6), strict=True)),
    "P": 7,
    "R": 9,
    **dict(zip("STUVWXYZ", range(2, 10), strict=True)),
}
_WEIGHTS = (8, 7, 6, 5, 4, 3, 2, 10, 0, 9, 8, 7, 6, 5, 4, 3, 2)


def check_digit(vin: str) -> str:
    """The check digit (position 9) the rest of the VIN implies."""
    total = sum(_TRANSLIT[c] * w for c, w in zip(vin, _WEIGHTS, strict=True))
    r = total % 11
    return "X" if r == 10 else str(r)


def vin_problem(vin: str) -> str | None:
    """Why `vin` is not a valid VIN, or None."""
    if len(vin) != 17:
        return f"VIN must be 17 characters, got {len(vin)}"
    if not VIN_RE.match(vin):
        return "VIN may only contain digits and capital letters other than I, O and Q"
    expected = check_digit(vin)
    if vin[8] != expected:
        return f"VIN check digit is {vin[8]!r} but should be {expected!r}"
    return None


def with_check_digit(vin16: str) -> str:
    """Complete a VIN whose position 9 is a placeholder (for generating test and demo fleets)."""
    vin = vin16[:8] + "0" + vin16[9:]
    return vin[:8] + check_digit(vin) + vin[9:]
