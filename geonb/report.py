"""What a notebook step returns: a title, tables and saved figures, shown inline."""
from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

import pandas as pd


@dataclass
class Report:
    title: str
    text: str = ""
    tables: dict[str, pd.DataFrame] = field(default_factory=dict)
    figures: list[Path] = field(default_factory=list)

    def table_text(self, decimals: int = 3) -> str:
        """Tables as rounded plain text: what nbval compares between runs."""
        parts = [f"{name}\n{table.round(decimals).to_string()}" for name, table in self.tables.items()]
        return "\n\n".join(parts) if parts else "(no tables)"

    def _ipython_display_(self):
        from IPython.display import Image, Markdown, display

        display(Markdown(f"### {self.title}\n\n{self.text}"))
        for name, table in self.tables.items():
            display(Markdown(f"**{name}**"), table.round(4))
        for path in self.figures:
            display(Image(filename=str(path)))
