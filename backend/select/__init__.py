"""Keep-fraction strategies and export of the kept subset."""

from .subset import BALANCES, FORMATS, STRATEGIES, Selection, export_tree, select_subset, write_selection

__all__ = ["BALANCES", "FORMATS", "STRATEGIES", "Selection", "select_subset", "write_selection", "export_tree"]
