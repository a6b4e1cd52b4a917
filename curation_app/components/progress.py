"""A :class:`backend.Reporter` that draws the pipeline's stages in the app."""

from __future__ import annotations

import time

from backend import Reporter


class StreamlitReporter(Reporter):
    """One line per stage inside an ``st.status`` box, a progress bar for the running stage.

    Cached stages say so and are not run again.  Updates are throttled (at most
    ~10 per second) so a fast stage does not flood the browser.
    """

    def __init__(self, box):
        self.box = box
        self._bar = None
        self._name = ""
        self._last = 0.0
        self.stages: list[tuple[str, bool]] = []

    def stage(self, name, *, cached=False, detail=""):
        self.end_stage()
        self._name = name
        self.stages.append((name, cached))
        if cached:
            self.box.write(f":material/check_circle: **{name}**: cached, skipped" + (f" ({detail})" if detail else ""))
        else:
            self.box.update(label=f"Running: {name}...")
            self.box.write(f":material/pending: **{name}**" + (f": {detail}" if detail else ""))
            self._bar = self.box.progress(0.0, text=f"{name}: starting")

    def update(self, done, total):
        if self._bar is None:
            self._bar = self.box.progress(0.0)
        now = time.monotonic()
        if now - self._last < 0.1 and done < total:
            return
        self._last = now
        frac = min(1.0, done / total) if total else 0.0
        self._bar.progress(frac, text=f"{self._name}: {done:,} / {total:,}")

    def end_stage(self):
        if self._bar is not None:
            self._bar.progress(1.0, text=f"{self._name}: done")
            self._bar = None

    def info(self, message):
        self.box.write(message)
