"""What a notebook step returns: a title, tables and saved figures, shown inline."""
from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

import pandas as pd


def readable(table: pd.DataFrame, decimals: int) -> pd.DataFrame:
    """``table`` rounded, with its count rows (labelled "n …", in columns of scores) printed as integers:
    a count is never "1181.0"."""
    out = table.round(decimals)
    counts = [row for row in out.index if str(row) == "n" or str(row).startswith("n ")]
    if counts and all(out.loc[counts].map(lambda v: float(v).is_integer()).all()):
        shown = out.map(lambda v: v if isinstance(v, str) else "NaN" if pd.isna(v) else f"{v:.{decimals}f}")
        shown.loc[counts] = out.loc[counts].map(lambda v: f"{int(v)}")  # text, so the columns keep their digits
        out = shown
    return out


@dataclass
class Report:
    title: str
    text: str = ""
    tables: dict[str, pd.DataFrame] = field(default_factory=dict)
    figures: list[Path] = field(default_factory=list)

    def table_text(self, decimals: int = 3) -> str:
        """Tables as rounded plain text: what nbval compares between runs."""
        parts = [f"{name}\n{readable(table, decimals).to_string()}" for name, table in self.tables.items()]
        return "\n\n".join(parts) if parts else "(no tables)"

    def numbers(self) -> dict[str, float | int | None]:
        """Every cell of every table as ``{"table | row | column": value}`` (None for NaN; counts stay
        integers): a reference run's numbers, kept to compare later runs with (``compare``)."""
        out = {}
        for name, table in self.tables.items():
            for column, values in table.items():  # column by column: iterrows would make counts floats
                cast = int if pd.api.types.is_integer_dtype(values) else float
                for row, value in values.items():
                    row = " / ".join(map(str, row)) if isinstance(row, tuple) else str(row)
                    out[f"{name} | {row} | {column}"] = None if pd.isna(value) else cast(value)
        return out

    def compare(self, reference: dict[str, float | int | None], atol: float, rtol: float) -> str:
        """Say whether every number equals ``reference`` (``numbers()`` of an earlier run) — counts
        exactly, other numbers within ``|value − ref| ≤ atol + rtol·|ref|`` — naming each one that does
        not. A tolerance well above the last-digit spread of a seeded run across library releases and
        far below a real change: the printed text fails an nbval comparison exactly when a number moved."""
        ours = self.numbers()
        problems = [f"{key}: missing (reference {ref})" for key, ref in reference.items() if key not in ours]
        problems += [f"{key}: {value} is new (not in the reference)" for key, value in ours.items() if key not in reference]
        for key in reference.keys() & ours.keys():
            ref, value = reference[key], ours[key]
            if (ref is None) != (value is None) or (isinstance(ref, int) and value != ref):
                problems.append(f"{key}: {value} where the reference has {ref}")
            elif isinstance(ref, float) and abs(value - ref) > atol + rtol * abs(ref):
                problems.append(f"{key}: {value:.4g} vs reference {ref:.4g} (beyond ±{atol + rtol * abs(ref):.3g})")
        head = f"{len(reference)} numbers vs the reference (counts exact, others within {atol} + {rtol:.0%}):"
        return "\n".join([head, *sorted(problems)] if problems else [f"{head} all within"])

    def _ipython_display_(self):
        from IPython.display import Image, Markdown, display

        display(Markdown(f"### {self.title}\n\n{self.text}"))
        for name, table in self.tables.items():
            display(Markdown(f"**{name}**"), readable(table, 4))
        for path in self.figures:
            display(Image(filename=str(path)))
