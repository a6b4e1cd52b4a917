"""curation-studio backend: headless data pruning (Sorscher et al. 2022).

The public API, used alike by the ``curate`` CLI and the Streamlit app::

    from backend import run_pipeline, load_run, select_subset, write_selection

    run = run_pipeline("demo", "work/")              # embeddings, k-means, scores, map
    sel = select_subset(run, keep=0.7, strategy="hard", metric="ssl_prototype")
    write_selection(sel, "kept.csv")                 # + kept.csv.manifest.json

Vocabulary: N examples, D embedding dimensions, K clusters, C classes.  Every
difficulty score is "higher = harder"; keep-hard keeps the highest scores.
"""

from .config import PipelineConfig  # noqa: E402
from .embed import ENCODERS  # noqa: E402
from .errors import CurateError  # noqa: E402
from .pipeline import find_run_dir, run_pipeline  # noqa: E402
from .progress import Reporter, TqdmReporter  # noqa: E402
from .projection import MAP_METHODS  # noqa: E402
from .run import Run  # noqa: E402
from .scores import METRICS  # noqa: E402
from .select import (  # noqa: E402  # noqa: E402
    BALANCES,
    FORMATS,
    STRATEGIES,
    Ranking,
    Selection,
    export_tree,
    keep_count_for,
    render_selection,
    select_subset,
    write_selection,
)
from .sources import TORCHVISION_SETS  # noqa: E402
from .version import __version__  # noqa: E402


def load_run(path) -> Run:
    """Load a finished run from a run folder or a workdir (its latest run)."""
    return Run(find_run_dir(path))


__all__ = [
    "__version__",
    "CurateError",
    "PipelineConfig",
    "run_pipeline",
    "load_run",
    "Run",
    "select_subset",
    "write_selection",
    "export_tree",
    "Selection",
    "Ranking",
    "keep_count_for",
    "render_selection",
    "Reporter",
    "TqdmReporter",
    "METRICS",
    "ENCODERS",
    "MAP_METHODS",
    "TORCHVISION_SETS",
    "STRATEGIES",
    "BALANCES",
    "FORMATS",
]
