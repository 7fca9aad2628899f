"""Units as data spell them and as readers write them: one place for both (model files compare them,
figures print them)."""
from __future__ import annotations

UNIT_SPELLINGS = {
    "degC": {"degc", "degreec", "degreesc", "degreecelsius", "degreescelsius", "celsius", "degcelsius"},
    "K": {"k", "kelvin", "kelvins", "degk", "degreek", "degreesk"},
    "m": {"m", "meter", "meters", "metre", "metres"},
    "km": {"km", "kilometer", "kilometers", "kilometre", "kilometres"},
}


def canonical_units(units) -> str:
    """One spelling per unit (``UNIT_SPELLINGS``); other units as given, stripped."""
    key = str(units).strip().lower().replace("°", "deg").replace(" ", "").replace("_", "")
    return next((name for name, spellings in UNIT_SPELLINGS.items() if key in spellings), str(units).strip())


def unit_text(units: str) -> str:
    """Units as a reader writes them: any spelling of Celsius → °C, others as given."""
    return "°C" if canonical_units(units) == "degC" else units
