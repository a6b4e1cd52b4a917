"""Check an estimate by training from scratch: the kept subset against random subsets of the same size.

::

    from backend.verify import verify_selection
    res = verify_selection(run, "kept.csv", model="probe", seeds=3)   # or model="cnn"
    res.sentence            # measured vs predicted, and whether the prediction held

``curate verify --workdir W --selection kept.csv [--model probe|cnn] [--seeds N]``.
"""

from .core import VerifyResult, read_selection, verify_selection

__all__ = ["VerifyResult", "read_selection", "verify_selection"]
