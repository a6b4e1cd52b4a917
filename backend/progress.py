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
    """Terminal progress bars on stderr, one per stage.

    When ``$CURATE_PROGRESS_FILE`` names a file, the same events are also appended to it as JSON
    lines (stage, done/total, rate, ETA: :mod:`backend.jobs.events`), for the app's background jobs;
    what the terminal shows does not change.
    """

    def __init__(self, stream=None):
        from .jobs.events import progress_file_from_env

        self.stream = stream or sys.stderr
        self._bar = None
        self._name = ""
        self._events = progress_file_from_env()

    def stage(self, name, *, cached=False, detail=""):
        self._begin(name, "stage", cached, detail)

    def substage(self, name, *, cached=False, detail=""):
        self._begin(name, "substage", cached, detail)

    def _begin(self, name, kind, cached, detail):
        self._close_bar()
        if self._events is not None:
            self._events.stage(name, kind=kind, cached=cached, detail=detail)
        self._name = name
        if cached:
            print(f"[{name}] cached: reusing {detail}".rstrip(), file=self.stream)
        elif detail:
            print(f"[{name}] {detail}", file=self.stream)

    def update(self, done, total):
        from tqdm import tqdm

        if self._events is not None:
            self._events.update(done, total)
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
        self._close_bar()
        if self._events is not None:
            self._events.end_stage()

    def _close_bar(self):
        if self._bar is not None:
            self._bar.close()
            self._bar = None

    def info(self, message):
        self._close_bar()  # a message ends the bar on the terminal, not the stage
        if self._events is not None:
            self._events.info(message)
        print(message, file=self.stream)
