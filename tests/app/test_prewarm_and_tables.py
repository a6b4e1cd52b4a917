"""The cache warm-up fills the caches the pages read first; the similarity table is escaped and shaded."""

from __future__ import annotations

import numpy as np
import pytest

from curation_app import prewarm, services
from curation_app.components.html_table import similarity_table


def test_warm_fills_the_page_caches_and_runs_once(app_workdir, app_run, monkeypatch):
    monkeypatch.setenv("CURATE_WORKDIR", str(app_workdir))
    run_dir, key = str(app_run.dir), app_run.key
    done = prewarm.warm(run_dir, key)
    # every step that applies to a labelled image run ran (dedup only reads an index on disk: none here yet)
    assert {"run", "imports", "ranking", "images", "scaling", "theory", "dedup"} <= set(done)
    # the values are in the pages' caches: the same objects come back without recomputing
    assert services.load_run(run_dir) is services.load_run(run_dir)
    assert services.load_run(run_dir).__dict__.get("source") is not None  # the images were decoded
    # at most one warm-up per process and run; CURATE_PREWARM=0 switches it off
    monkeypatch.setattr(prewarm, "_started", set())
    th = prewarm.prewarm(run_dir, key)
    assert th is not None
    th.join(timeout=120)
    assert prewarm.prewarm(run_dir, key) is None
    monkeypatch.setattr(prewarm, "_started", set())
    monkeypatch.setenv("CURATE_PREWARM", "0")
    assert prewarm.prewarm(run_dir, key) is None


def test_similarity_table_escapes_names_and_shades_by_similarity():
    sim = np.array([[1.0, 0.9], [0.9, 1.0]])
    out = similarity_table(sim, ["kept <a>", "b&c"], low=0.8)
    assert "<a>" not in out and "kept &lt;a&gt;" in out and "b&amp;c" in out
    assert out.count("<td") == 4 and "0.9000" in out and "1.0000" in out
    # 1.0 gets the strongest shade, 0.9 half of it, below `low` none
    assert "rgba(214,39,40,0.45)" in out
    assert "rgba(214,39,40,0.22)" in out or "rgba(214,39,40,0.23)" in out
    assert "rgba(214,39,40,0.00)" in similarity_table(np.array([[0.5]]), ["x"], low=0.8)
    with pytest.raises(ValueError, match="2 names"):
        similarity_table(np.eye(3), ["a", "b"])


def test_downloads_above_one_mib_that_differ_anywhere_get_their_own_file():
    """Streamlit's media store hashes only samples of a file above 1 MiB: two kept lists that differ outside
    them would share a file id and the button would serve the first one; the tagged MIME type tells them apart."""
    from streamlit.runtime.memory_media_file_storage import MemoryMediaFileStorage

    from curation_app.components.downloads import exact_mime, frame_identity, tagged_mime

    a = b"x" * 3_000_000
    b = a[:300_000] + b"y" + a[300_001:]
    store = MemoryMediaFileStorage("/media")

    def stored(data, mime):
        return store.get_file(store.load_and_get_id(data, mime, "downloadable", "kept.csv")).content

    assert stored(a, "text/csv") == a and stored(b, "text/csv") == a  # the problem: b is served as a
    assert stored(b, exact_mime(b, "text/csv")) == b
    assert exact_mime(b"small", "text/csv") == "text/csv"
    import pandas as pd

    one, two = pd.DataFrame({"id": ["a1", "b2"]}), pd.DataFrame({"id": ["a1", "b3"]})
    assert tagged_mime("text/csv", frame_identity(one, ".csv")) != tagged_mime("text/csv", frame_identity(two, ".csv"))
    assert tagged_mime("text/csv", frame_identity(one, ".csv")) == tagged_mime("text/csv", frame_identity(one, ".csv"))


def test_frame_table_formats_and_escapes():
    import pandas as pd

    from curation_app.components.html_table import frame_table

    out = frame_table(
        pd.DataFrame({"example_id": ["a<b>", "c"], "centroid_sim": [0.12345, float("nan")], "n": [1, 2000]})
    )
    assert "a&lt;b&gt;" in out and "0.123" in out and "2,000" in out and out.count("<tr>") == 3
    assert "nan" not in out
