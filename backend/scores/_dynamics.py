"""Training dynamics shared by the probe metrics (el2n, grand, forgetting, aum, margin): train once, read five.

:func:`probe_dynamics` trains one linear probe per seed on the frozen
embeddings (:class:`backend.probes.EpochLinearProbes`: mini-batch SGD for
whole epochs over every example of ``ctx.rows``) and records, per seed and
example, what each metric needs (:class:`DynamicsRecorder`).  The result is
kept in ``ctx.shared``, so metrics computed together on one context share one
set of trainings.  The recorder takes plain logits, so any trainer that shows
per-example outputs (e.g. a CNN on the pixels) can feed it.

Options (``ctx.options``; the same for every metric of the family):

``seeds``        trainings averaged over (default 5); seed i uses ``ctx.seed + i``
``epochs``       epochs of training (default 20): forgetting, AUM and the final margin read all of them
``epoch``        the epoch EL2N is read at (default 2: early, as Paul et al. read it at 10% of training)
``grand_epoch``  the epoch GraNd is read at (default 0: at initialisation, as Paul et al.)
``batch``, ``lr``, ``momentum``, ``weight_decay``: the SGD settings (:data:`backend.probes.SGD_DEFAULTS`)
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

from ..errors import CurateError
from .base import ScoreContext

DEFAULTS = {"seeds": 5, "epochs": 20, "epoch": 2, "grand_epoch": 0}
SGD_KEYS = ("batch", "lr", "momentum", "weight_decay")
OPTION_KEYS = (*DEFAULTS, *SGD_KEYS)


class DynamicsRecorder:
    """Per-example statistics of S trainings on the same N examples, accumulated from logits (torch tensors).

    - :meth:`batch`: the logits of a mini-batch as the model saw it during
      training (before the step): forgetting events (Toneva et al. 2019's
      per-presentation accuracy) and the running margin sum (Pleiss et al.
      2020's AUM) come from these.
    - :meth:`outputs`: the logits of all N examples at one epoch (evaluation
      pass): EL2N at the chosen epochs and the final margin.
    """

    def __init__(self, y, n_seeds: int, *, device="cpu"):
        import torch

        self.torch = torch
        self.y = torch.as_tensor(np.asarray(y), dtype=torch.long, device=device)
        S, N = int(n_seeds), len(self.y)
        self.S, self.N = S, N
        self.forgotten = torch.zeros(S, N, dtype=torch.int32, device=device)
        self.learned = torch.zeros(S, N, dtype=torch.bool, device=device)  # correct at some presentation
        self.prev_correct = torch.zeros(S, N, dtype=torch.bool, device=device)
        self.presented = torch.zeros(S, N, dtype=torch.int32, device=device)
        self.margin_sum = torch.zeros(S, N, dtype=torch.float64, device=device)
        self.el2n: dict[int, np.ndarray] = {}
        self.margin: dict[int, np.ndarray] = {}

    def batch(self, epoch: int, rows, logits, *, seed: int | None = None) -> None:
        """``rows`` [S, b] example indices (distinct within a seed), ``logits`` [S, b, C] at ``epoch``.

        With ``seed=i``: ``rows`` [b] and ``logits`` [b, C] of that seed only
        (a trainer that trains the seeds one after another).
        """
        from ..probes import correct_class_margin

        torch = self.torch
        sl = slice(None) if seed is None else slice(int(seed), int(seed) + 1)
        rows = torch.as_tensor(rows, device=self.y.device)
        logits = torch.as_tensor(logits, device=self.y.device)
        if seed is not None:
            rows, logits = rows.view(1, -1), logits.unsqueeze(0)
        m = correct_class_margin(logits.detach().float(), self.y[rows])  # [S, b]
        correct = m > 0
        forgotten, learned, prev = self.forgotten[sl], self.learned[sl], self.prev_correct[sl]
        was = prev.gather(1, rows)
        forgotten.scatter_add_(1, rows, (was & ~correct).to(torch.int32))
        prev.scatter_(1, rows, correct)
        learned.scatter_(1, rows, learned.gather(1, rows) | correct)
        self.presented[sl].scatter_add_(1, rows, torch.ones_like(rows, dtype=torch.int32))
        self.margin_sum[sl].scatter_add_(1, rows, m.double())

    def outputs(self, epoch: int, logits, *, seed: int | None = None) -> None:
        """Logits [S, N, C] of every example at ``epoch`` (or [N, C] of seed ``seed``): EL2N and the margin."""
        from ..probes import correct_class_margin, el2n_from_logits

        z = self.torch.as_tensor(logits, device=self.y.device).detach().float()
        sl = slice(None) if seed is None else slice(int(seed), int(seed) + 1)
        if seed is not None:
            z = z.unsqueeze(0)
        for table, value in ((self.el2n, el2n_from_logits(z, self.y)), (self.margin, correct_class_margin(z, self.y))):
            arr = table.setdefault(int(epoch), np.full((self.S, self.N), np.nan))
            arr[sl] = value.cpu().numpy()

    def result(self, *, x_norm: np.ndarray | None = None, info: dict | None = None) -> Dynamics:
        return Dynamics(
            forgotten=self.forgotten.cpu().numpy(),
            learned=self.learned.cpu().numpy(),
            presented=self.presented.cpu().numpy(),
            margin_sum=self.margin_sum.cpu().numpy(),
            el2n_at=dict(self.el2n),
            margin_at=dict(self.margin),
            x_norm=x_norm,
            info=dict(info or {}),
        )


@dataclass
class Dynamics:
    """What S trainings showed about N examples (arrays [S, N]); the methods give the metrics (higher = harder)."""

    forgotten: np.ndarray
    learned: np.ndarray
    presented: np.ndarray
    margin_sum: np.ndarray
    el2n_at: dict[int, np.ndarray]
    margin_at: dict[int, np.ndarray]
    x_norm: np.ndarray | None = None
    info: dict = field(default_factory=dict)

    def _at(self, table: dict, epoch: int, what: str) -> np.ndarray:
        if epoch not in table:
            raise CurateError(f"{what} at epoch {epoch} was not recorded (recorded: {sorted(table)})")
        return table[epoch]

    def el2n(self, epoch: int) -> np.ndarray:
        """Mean over seeds of ||softmax - onehot(y)||_2 at ``epoch``, in [0, sqrt(2)]."""
        return self._at(self.el2n_at, epoch, "EL2N").mean(0)

    def grand(self, epoch: int) -> np.ndarray:
        """Mean over seeds of the per-example gradient norm of the cross-entropy w.r.t. the linear weights.

        For logits W x the gradient is (softmax - onehot) x^T, whose Frobenius
        norm is ||softmax - onehot|| * ||x||: EL2N times the feature norm.
        """
        if self.x_norm is None:
            raise CurateError("GraNd needs the feature norms of a linear probe")
        return (self._at(self.el2n_at, epoch, "GraNd") * self.x_norm[None, :]).mean(0)

    def forgetting(self) -> np.ndarray:
        """Mean over seeds of the forgetting events; an example never classified correctly counts as many as it
        was presented (Toneva et al.'s "never learned = most forgotten"), in [0, epochs]."""
        per_seed = np.where(self.learned, self.forgotten, self.presented).astype(np.float64)
        return per_seed.mean(0)

    def aum(self) -> np.ndarray:
        """Minus the mean over seeds and epochs of the in-training margin (assigned logit - largest other)."""
        return -(self.margin_sum / np.maximum(self.presented, 1)).mean(0)

    def final_margin(self) -> np.ndarray:
        """Minus the mean over seeds of the margin after the last epoch."""
        return -self._at(self.margin_at, max(self.margin_at), "the margin").mean(0)


def dynamics_options(ctx: ScoreContext) -> dict:
    """The family's options from ``ctx.options``, with defaults, validated (a CurateError names a bad one)."""
    opts = {**DEFAULTS, **{k: ctx.options[k] for k in OPTION_KEYS if ctx.options.get(k) is not None}}
    for k in DEFAULTS:
        try:
            opts[k] = int(opts[k])
        except (TypeError, ValueError):
            raise CurateError(f"option {k}={opts[k]!r} must be a whole number") from None
    if opts["seeds"] < 1:
        raise CurateError(f"--seeds must be at least 1 (got {opts['seeds']})")
    if opts["epochs"] < 1:
        raise CurateError(f"epochs must be at least 1 (got {opts['epochs']})")
    for k in ("epoch", "grand_epoch"):
        if not 0 <= opts[k] <= opts["epochs"]:
            raise CurateError(
                f"--{k.replace('_', '-')} {opts[k]} must be between 0 (initialisation) and the "
                f"number of training epochs ({opts['epochs']})"
            )
    return opts


def class_codes(labels: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """(classes, code of every label)."""
    labels = np.asarray(labels).astype(str)
    classes, codes = np.unique(labels, return_inverse=True)
    return classes, codes.astype(np.int64)


def probe_dynamics(ctx: ScoreContext) -> Dynamics:
    """Train (once per context and options) the linear probes of every seed and record their dynamics."""
    if ctx.labels is None:
        raise CurateError("the training-dynamics metrics need labels and this run has none")
    opts = dynamics_options(ctx)
    key = ("linear", tuple(sorted(opts.items())))
    cache = ctx.shared.setdefault("probe_dynamics", {})
    if key in cache:
        return cache[key]

    import time

    import torch

    from ..probes import EpochLinearProbes, cpu_threads, probe_features

    t0 = time.perf_counter()
    device = ctx.device
    if device == "auto":
        device = "cuda" if torch.cuda.is_available() else "cpu"
    classes, y = class_codes(ctx.labels)
    x, _ = probe_features(ctx.embeddings, np.asarray(ctx.rows))
    x_norm = np.sqrt(np.einsum("nd,nd->n", x, x, dtype=np.float64))
    seeds = [int(ctx.seed) + i for i in range(opts["seeds"])]
    settings = {"epochs": opts["epochs"], **{k: opts[k] for k in SGD_KEYS if k in opts}}
    read_at = {opts["epoch"], opts["grand_epoch"], opts["epochs"]}
    rep = ctx.reporter
    with cpu_threads(device) as threads:
        xt = torch.from_numpy(x).to(device)
        yt = torch.from_numpy(y).to(device)
        probes = EpochLinearProbes(xt, yt, len(classes), seeds=seeds, settings=settings)
        rec = DynamicsRecorder(y, len(seeds), device=device)

        def on_epoch(epoch, w):
            if epoch in read_at:
                rec.outputs(epoch, probes.logits(w=w))

        rep.update(0, opts["epochs"])
        probes.fit(on_batch=rec.batch, on_epoch=on_epoch, progress=rep.update)
    train_acc = float((rec.margin[opts["epochs"]] > 0).mean())
    info = {
        "trainer": "linear probe, mini-batch SGD",
        "seeds": seeds,
        **probes.s,
        "n_classes": len(classes),
        "n_examples": len(y),
        "features": int(x.shape[1]),
        "train_accuracy_final": round(train_acc, 4),
        "cpu_threads": threads,
        "device": device,
        "elapsed_s": round(time.perf_counter() - t0, 3),
    }
    rep.info(
        f"probe dynamics: {len(seeds)} seeds x {opts['epochs']} epochs of SGD on {len(y)} x {x.shape[1]} "
        f"features in {info['elapsed_s']:.1f} s, final training accuracy {train_acc:.1%}"
    )
    out = rec.result(x_norm=x_norm, info=info)
    cache[key] = out
    return out
