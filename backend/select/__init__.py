"""Keep-fraction strategies and balances (registered plug-ins) and export of the kept subset."""

from .export import FORMATS, export_tree, render_selection, write_selection
from .subset import BALANCES, STRATEGIES, Ranking, Selection, keep_count_for, select_subset

__all__ = [
    "BALANCES",
    "FORMATS",
    "STRATEGIES",
    "Ranking",
    "Selection",
    "export_tree",
    "keep_count_for",
    "render_selection",
    "select_subset",
    "write_selection",
]
