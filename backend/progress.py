"""Progress reporting shared by the CLI (tqdm), the app (st.progress) and silence."""

from __future__ import annotations

import sys


class Reporter:
    """Receives stage starts, progress counts and messages.  Subclass what you need."""

    def stage(self, name: str, *, cached: bool = False, detail: str = "") -> None:
        """A stage begins (or is skipped because its output is cached)."""

    def substage(self, name: str, *, cached: bool = False, detail: str = "") -> None:
        """A step inside a stage (e.g. one metric of the score stage); progress updates follow it."""

    def update(self, done: int, total: int) -> None:
        """Progress within the current stage."""

    def end_stage(self) -> None:
        """The current stage finished."""

    def info(self, message: str) -> None:
        """A line worth telling the user."""


class TqdmReporter(Reporter):
    """Terminal progress bars on stderr, one per stage."""

    def __init__(self, stream=None):
        self.stream = stream or sys.stderr
        self._bar = None
        self._name = ""

    def stage(self, name, *, cached=False, detail=""):
        self.end_stage()
        self._name = name
        if cached:
            print(f"[{name}] cached: reusing {detail}".rstrip(), file=self.stream)
        elif detail:
            print(f"[{name}] {detail}", file=self.stream)

    def substage(self, name, *, cached=False, detail=""):
        self.stage(name, cached=cached, detail=detail)

    def update(self, done, total):
        from tqdm import tqdm

        if self._bar is None:
            self._bar = tqdm(
                total=total,
                desc=self._name,
                file=self.stream,
                unit="ex",
                dynamic_ncols=True,
                leave=True,
                mininterval=0.5,
            )
        self._bar.total = total
        self._bar.n = done
        self._bar.refresh()

    def end_stage(self):
        if self._bar is not None:
            self._bar.close()
            self._bar = None

    def info(self, message):
        self.end_stage()
        print(message, file=self.stream)
