"""Linear probes trained by mini-batch SGD for whole epochs, one per seed, with per-example outputs.

The training-dynamics metrics (EL2N, forgetting, AUM, margin; Paul et al.
2021, Toneva et al. 2019, Pleiss et al. 2020) read a model's outputs on its
*own training examples* while it trains, epoch by epoch.  This trainer gives
them that for a multinomial logistic regression on frozen embeddings:

- S probes (one per seed: its own initialisation and its own shuffle every
  epoch) train together on all N rows, each step one [S, B, D] x [S, D, C]
  batched product;
- ``on_batch(epoch, rows, logits)`` sees the logits of every mini-batch
  *before* the update (what Toneva et al. record for forgetting events and
  Pleiss et al. for the margin);
- ``on_epoch(epoch, w)`` sees the weights at initialisation (epoch 0) and
  after every epoch; ``record_epochs=`` keeps the logits of all N training
  examples at those epochs.

Initialisation: uniform in +-1/sqrt(D), torch.nn.Linear's default (so the
gradient "near initialisation" is not the degenerate one of zero weights).
Plain SGD with momentum; the gradient is written out (softmax - onehot) x, so
no autograd graph is built.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence

SGD_DEFAULTS = {"epochs": 20, "batch": 256, "lr": 0.02, "momentum": 0.9, "weight_decay": 5e-4}


class EpochLinearProbes:
    """S multinomial logistic-regression probes, one per seed, trained by mini-batch SGD on all rows of ``x``.

    ``x`` [N, D] float32 torch tensor (features; a bias column, if any, is
    the last one and gets no weight decay), ``y`` [N] class indices in
    [0, n_classes).  ``settings``: :data:`SGD_DEFAULTS` overridden by the
    caller.  After :meth:`fit`, ``w`` is [S, C, D].
    """

    def __init__(self, x, y, n_classes: int, *, seeds: Sequence[int], settings: dict | None = None):
        import torch

        self.torch = torch
        self.x, self.y = x, y
        self.N, self.D = x.shape
        self.C = max(int(n_classes), 2)
        self.seeds = [int(s) for s in seeds]
        self.S = len(self.seeds)
        self.s = {**SGD_DEFAULTS, **(settings or {})}
        self.gens = [torch.Generator(device="cpu").manual_seed(20240 + s) for s in self.seeds]
        bound = 1.0 / math.sqrt(self.D)
        w0 = [(torch.rand(self.C, self.D, generator=g) * 2 - 1) * bound for g in self.gens]
        self.w = torch.stack(w0).to(device=x.device, dtype=x.dtype)
        self.decay = torch.ones(1, 1, self.D, dtype=x.dtype, device=x.device)
        self.decay[..., -1] = 0.0  # no weight decay on the bias column

    def _perms(self):
        torch = self.torch
        return torch.stack([torch.randperm(self.N, generator=g) for g in self.gens]).to(self.x.device)

    def logits(self, x=None, w=None, *, chunk: int = 65536):
        """Logits [S, len(x), C] of every probe (default: the training rows and the current weights)."""
        torch = self.torch
        x = self.x if x is None else x
        w = self.w if w is None else w
        out = torch.empty(w.shape[0], len(x), w.shape[1], dtype=w.dtype, device=w.device)
        for s in range(0, len(x), chunk):
            out[:, s : s + chunk] = torch.einsum("nd,scd->snc", x[s : s + chunk], w)
        return out

    def fit(
        self,
        *,
        on_batch: Callable | None = None,
        on_epoch: Callable | None = None,
        record_epochs: Sequence[int] = (),
        progress: Callable[[int, int], None] | None = None,
    ) -> dict:
        """Train for ``settings["epochs"]`` epochs; returns {epoch: logits [S, N, C]} for ``record_epochs``.

        ``on_batch(epoch, rows [S, B], logits [S, B, C])`` for every mini-batch
        (epochs count from 1), before the step; ``on_epoch(epoch, w)`` at
        epoch 0 (initialisation) and after every epoch (``w`` is updated in
        place afterwards: clone what you keep); ``progress(done, total)``
        after every epoch.
        """
        torch = self.torch
        E, B = int(self.s["epochs"]), int(self.s["batch"])
        lr, mu, wd = float(self.s["lr"]), float(self.s["momentum"]), float(self.s["weight_decay"])
        record = {int(e) for e in record_epochs}
        kept: dict[int, object] = {}
        x, y, w = self.x, self.y, self.w
        v = torch.zeros_like(w)
        ar = torch.arange(self.S, device=x.device).view(-1, 1)

        def at_epoch(e):
            if on_epoch is not None:
                on_epoch(e, w)
            if e in record:
                kept[e] = self.logits(w=w)

        at_epoch(0)
        for epoch in range(1, E + 1):
            perm = self._perms()
            for r0 in range(0, self.N, B):
                rows = perm[:, r0 : r0 + B]  # [S, b]
                b = rows.shape[1]
                xb = x[rows]  # [S, b, D]
                z = torch.bmm(xb, w.transpose(1, 2))  # [S, b, C]
                if on_batch is not None:
                    on_batch(epoch, rows, z)
                p = torch.softmax(z, -1)
                p[ar, torch.arange(b, device=x.device).view(1, -1), y[rows]] -= 1.0
                g = torch.bmm(p.transpose(1, 2), xb).div_(b)  # [S, C, D]: mean CE gradient
                g.add_(w * self.decay, alpha=wd)
                v.mul_(mu).add_(g)
                w.sub_(v, alpha=lr)
            at_epoch(epoch)
            if progress is not None:
                progress(epoch, E)
        self.w = w
        return kept
