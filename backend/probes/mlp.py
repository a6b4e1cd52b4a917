"""One-hidden-layer MLP probes (ReLU) on prefixes of row orderings, trained together by Adam.

Fixed iterations: every probe takes ``steps`` steps of ``batch`` examples
drawn (with replacement) from its own rows.
"""

from __future__ import annotations

import math
from collections.abc import Callable

import numpy as np

MLP_DEFAULTS = {"hidden": 256, "steps": 400, "batch": 256, "lr": 2e-3, "weight_decay": 1e-4}


class MLPProbes:
    """Batched MLP probes; the same constructor as :class:`backend.probes.LinearProbes`.

    After :meth:`fit`, ``params = (w1 [P, D, H], b1 [P, 1, H], w2 [P, H, C], b2 [P, 1, C])``.
    """

    def __init__(
        self,
        x,
        y,
        n_classes: int,
        orderings: dict,
        probes: list[tuple[str, int]],
        settings: dict | None = None,
        seed: int = 0,
    ):
        import torch

        self.torch = torch
        self.x, self.y = x, y
        self.C = max(int(n_classes), 2)
        self.s = {**MLP_DEFAULTS, **(settings or {})}
        names = list(orderings)
        n0 = max(len(p) for p in orderings.values())
        self.orderings, self.probes = orderings, list(probes)
        self.perm = torch.stack([orderings[k][:n0] for k in names])  # [O, n0]
        self.which = torch.tensor([names.index(o) for o, _ in probes], device=x.device)
        self.n_keep = torch.tensor([n for _, n in probes], device=x.device)
        self.P = len(probes)
        self.gen = torch.Generator(device=x.device).manual_seed(int(seed) + 1)
        self.params: tuple | None = None

    def kept_rows(self, probe: int):
        """Indices into ``x`` of the rows probe ``probe`` samples from."""
        name, n = self.probes[probe]
        return self.orderings[name][:n]

    def fit(
        self, progress: Callable[[float], None] | None = None, *, on_step: Callable[[int, tuple], None] | None = None
    ):
        """Train; ``on_step(step, params)`` after every step (``step = 1..steps``) reads the live weights."""
        torch = self.torch
        P, D, H, C = self.P, self.x.shape[1], int(self.s["hidden"]), self.C
        dev, dt = self.x.device, self.x.dtype
        w1 = (torch.randn(P, D, H, generator=self.gen, device=dev, dtype=dt) / math.sqrt(D)).requires_grad_()
        b1 = torch.zeros(P, 1, H, device=dev, dtype=dt, requires_grad=True)
        w2 = (torch.randn(P, H, C, generator=self.gen, device=dev, dtype=dt) / math.sqrt(H)).requires_grad_()
        b2 = torch.zeros(P, 1, C, device=dev, dtype=dt, requires_grad=True)
        self.params = (w1, b1, w2, b2)
        opt = torch.optim.AdamW([w1, b1, w2, b2], lr=float(self.s["lr"]), weight_decay=float(self.s["weight_decay"]))
        B = int(self.s["batch"])
        for step in range(int(self.s["steps"])):
            if progress is not None and step % 20 == 19:
                progress(step / int(self.s["steps"]))
            r = (torch.rand(P, B, generator=self.gen, device=dev) * self.n_keep.view(-1, 1)).long()
            rows = self.perm[self.which.view(-1, 1), r]
            xb, yb = self.x[rows], self.y[rows]
            h = torch.relu(torch.baddbmm(b1, xb, w1))
            z = torch.baddbmm(b2, h, w2)
            loss = torch.nn.functional.cross_entropy(z.reshape(P * B, C), yb.reshape(-1), reduction="sum") / B
            opt.zero_grad(set_to_none=True)
            loss.backward()
            opt.step()
            if on_step is not None:
                on_step(step + 1, self.params)
        return np.full(P, int(self.s["steps"])), np.ones(P, bool)

    def logits(self, x, params=None, *, chunk: int = 8):
        """Logits [P, len(x), C] of every probe on ``x`` (default: the fitted weights), without gradients."""
        torch = self.torch
        params = self.params if params is None else params
        if params is None:
            raise RuntimeError("MLPProbes.logits before fit")
        w1, b1, w2, b2 = params
        out = []
        with torch.no_grad():
            for p0 in range(0, w1.shape[0], chunk):
                h = torch.relu(torch.einsum("nd,pdh->pnh", x, w1[p0 : p0 + chunk]) + b1[p0 : p0 + chunk])
                out.append(torch.baddbmm(b2[p0 : p0 + chunk], h, w2[p0 : p0 + chunk]))
        return torch.cat(out)

    def fit_evaluate(self, x_hold, y_hold, progress=None):
        """Fit, then ``(held-out error per probe, steps, converged = all True)``."""
        steps, conv = self.fit(progress)
        wrong = self.logits(x_hold).argmax(2) != y_hold.view(1, -1)
        self.holdout_wrong = wrong.cpu().numpy()  # per probe and held-out example (see LinearProbes)
        err = wrong.float().mean(1)
        return err.cpu().numpy().astype(np.float64), steps, conv
