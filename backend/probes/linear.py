"""Multinomial logistic-regression probes on prefixes of row orderings, trained together by a batched L-BFGS.

A probe is ``(ordering name, n)``: it trains on the first ``n`` rows of that
ordering.  The scaling grid's kept sets are prefixes of one ordering per
strategy, so the rows are sorted once per ordering and split into blocks at
the prefix lengths (:class:`PrefixBlocks`); each block is multiplied by the
weights of every probe that contains it in one matrix product.  The work is
exactly the sum of the kept sizes (no masked rows), in a few large GEMMs.

Objective (scikit-learn's ``C`` convention, bias not penalised): the mean
cross-entropy over the probe's rows plus ``1 / (2 C n) * |W|^2``.  Optimiser:
per-probe two-loop recursion, per-probe Armijo backtracking, at most
``max_iter`` full-batch iterations (one iteration = one epoch over the rows),
each probe stopping once its largest gradient entry is below ``gtol``.
"""

from __future__ import annotations

from collections.abc import Callable

import numpy as np

from .runtime import gemm_dtype

LINEAR_DEFAULTS = {"C": 1.0, "max_iter": 30, "gtol": 1e-5, "history": 10, "precision": "auto"}
MAX_BACKTRACK = 8  # line-search trials per iteration; a probe with no acceptable step stops (converged to float32)


class PrefixBlocks:
    """Prefix structure of the probes: per ordering, row blocks and the probes that use each block.

    ``x`` [N, D] and ``y`` [N] are torch tensors; ``orderings`` maps a name to
    a permutation (or any index tensor) into them; ``probes`` is a list of
    ``(ordering name, n_rows)``.  The rows are gathered (and cast to
    ``gemm_dtype``) once.
    """

    def __init__(self, x, y, orderings: dict, probes: list[tuple[str, int]], gemm_dtype=None):
        import torch

        self.n_probes = len(probes)
        dev = x.device
        self.n_kept = torch.tensor([n for _, n in probes], dtype=x.dtype, device=dev)
        self.parts = []  # (x_sorted, y_sorted, [(r0, r1, probe index tensor)])
        self.max_block = 1  # largest rows x users of a block
        for name, perm in orderings.items():
            mine = [(i, n) for i, (o, n) in enumerate(probes) if o == name]
            if not mine:
                continue
            n_max = max(n for _, n in mine)
            rows = perm[:n_max]
            xs, ys = x[rows].to(gemm_dtype or x.dtype).contiguous(), y[rows].contiguous()
            bounds = sorted({n for _, n in mine})
            blocks, r0 = [], 0
            for r1 in bounds:
                users = [i for i, n in mine if n >= r1]
                blocks.append((r0, r1, torch.tensor(users, dtype=torch.long, device=dev)))
                self.max_block = max(self.max_block, (r1 - r0) * len(users))
                r0 = r1
            self.parts.append((xs, ys, blocks))


class LinearProbes:
    """Multinomial logistic regression probes trained together by a batched L-BFGS.

    ``x`` [N, D] float32 torch tensor (features with a bias column, see
    :func:`backend.probes.probe_features`; the last column is not penalised),
    ``y`` [N] class indices, ``orderings`` {name: index tensor into x},
    ``probes`` [(ordering name, n_rows)], ``settings``: :data:`LINEAR_DEFAULTS`
    overridden by the caller.  After :meth:`fit`, ``w`` is [P, C, D].
    ``seed`` is accepted for the common probe interface (L-BFGS from zero
    weights is deterministic).
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
        self.s = {**LINEAR_DEFAULTS, **(settings or {})}
        self.gemm_dtype = gemm_dtype(self.s.get("precision", "auto"), x.device)
        self.b = PrefixBlocks(x, y, orderings, probes, self.gemm_dtype)
        self.orderings, self.probes = orderings, list(probes)
        self.C = max(int(n_classes), 2)
        self.D = x.shape[1]
        self.lam = 1.0 / (float(self.s["C"]) * self.b.n_kept)  # per probe, mean-loss units
        self.pen = torch.ones(1, self.D, dtype=x.dtype, device=x.device)
        self.pen[0, -1] = 0.0  # the bias is not penalised
        self.dtype, self.device = x.dtype, x.device
        self.w = None
        self._m1 = None
        self._buf32 = self._buf16 = None

    def kept_rows(self, probe: int):
        """Indices into ``x`` of the rows probe ``probe`` trains on."""
        name, n = self.probes[probe]
        return self.orderings[name][:n]

    def _minus_one(self, U, m):
        t = self._m1
        if t is None or t.shape[1] < U or t.shape[2] < m:
            t = self._m1 = self.torch.full((1, max(U, 1), max(m, 1)), -1.0, dtype=self.dtype, device=self.device)
        return t[:, :U, :m]

    def loss_grad(self, w, active):
        """Mean loss + penalty and its gradient for the ``active`` probes (others: 0).

        ``w`` is [P, C, D].  Logits are computed transposed, [C, U, m] for U
        probes on m rows, so the soft-max over classes is a handful of
        element-wise passes over contiguous memory.
        """
        torch = self.torch
        P, C, D = w.shape
        loss = torch.zeros(P, dtype=w.dtype, device=w.device)
        grad = torch.zeros_like(w)
        mixed = self.gemm_dtype != w.dtype
        if self._buf32 is None:
            size = C * self.b.max_block
            self._buf32 = torch.empty(size, dtype=w.dtype, device=w.device)
            self._buf16 = torch.empty(size, dtype=self.gemm_dtype, device=w.device) if mixed else None
        for xs, ys, blocks in self.b.parts:
            for r0, r1, users in blocks:
                u = users[active[users]]
                U = len(u)
                if U == 0:
                    continue
                xb, yb = xs[r0:r1], ys[r0:r1]
                m = r1 - r0
                wt = w[u].transpose(0, 1).reshape(C * U, D).to(xb.dtype)
                # preallocated buffers: fresh multi-MB tensors every call cost page faults
                z = self._buf32[: C * U * m].view(C, U * m)
                if mixed:
                    zl = self._buf16[: C * U * m].view(C * U, m)
                    torch.matmul(wt, xb.T, out=zl)
                    z.copy_(zl.view(C, U * m))
                else:
                    torch.matmul(wt, xb.T, out=z.view(C * U, m))
                z.sub_(z.amax(0))
                idx = yb.view(1, 1, m).expand(1, U, m)
                zy = z.view(C, U, m).gather(0, idx)
                z.exp_()
                tot = z.sum(0)
                z.div_(tot)  # soft-max
                loss.index_add_(0, u, (tot.log_() - zy.view(U * m)).view(U, m).sum(1))
                z.view(C, U, m).scatter_add_(0, idx, self._minus_one(U, m))
                if mixed:
                    zl.view(C, U * m).copy_(z)
                    g = (zl @ xb).to(w.dtype)
                else:
                    g = z.view(C * U, m) @ xb
                g = g.view(C, U, D).transpose(0, 1)
                grad.index_add_(0, u, g)
        n = self.b.n_kept
        loss = loss / n
        grad = grad / n.view(-1, 1, 1)
        wp = w * self.pen
        loss = loss + 0.5 * self.lam * (wp * wp).sum((1, 2))
        grad = grad + self.lam.view(-1, 1, 1) * wp
        a = active.to(w.dtype)
        return loss * a, grad * a.view(-1, 1, 1)

    def fit(
        self,
        progress: Callable[[float], None] | None = None,
        *,
        on_iteration: Callable[[int, object], None] | None = None,
    ):
        """Train from zero weights; returns ``(iterations per probe, converged per probe)`` as numpy arrays.

        ``progress(fraction)`` is called every 5 iterations.  ``on_iteration(it,
        w)`` is called with the [P, C, D] weights at iteration 0 (the zero
        initialisation) and after every iteration ``it = 1, 2, ...``: read
        per-example outputs there, e.g. ``probes.logits(x[probes.kept_rows(p)], w)``
        (a probe that has stopped keeps its weights).
        """
        torch = self.torch
        P, D, C = self.b.n_probes, self.D, self.C
        m_hist = int(self.s["history"])
        w = torch.zeros(P, C, D, dtype=self.dtype, device=self.device)
        if on_iteration is not None:
            on_iteration(0, w)
        active = torch.ones(P, dtype=torch.bool, device=self.device)
        f, g = self.loss_grad(w, active)
        S = torch.zeros(m_hist, P, C, D, dtype=self.dtype, device=self.device)
        Y = torch.zeros_like(S)
        rho = torch.zeros(m_hist, P, dtype=self.dtype, device=self.device)
        gamma = torch.ones(P, dtype=self.dtype, device=self.device)
        iters = torch.zeros(P, dtype=torch.long, device=self.device)
        n_hist = 0
        head = 0
        gtol = float(self.s["gtol"])
        active = g.abs().amax((1, 2)) > gtol

        def dot(a, b):
            return (a * b).sum((-2, -1))

        for it in range(int(self.s["max_iter"])):
            if not bool(active.any()):
                break
            # two-loop recursion, per probe
            q = g.clone()
            alphas = []
            for j in range(n_hist):
                i = (head - 1 - j) % m_hist
                a_i = rho[i] * dot(S[i], q)
                q -= a_i.view(-1, 1, 1) * Y[i]
                alphas.append((i, a_i))
            r = q * gamma.view(-1, 1, 1)
            for i, a_i in reversed(alphas):
                b_i = rho[i] * dot(Y[i], r)
                r += S[i] * (a_i - b_i).view(-1, 1, 1)
            d = -r
            gd = dot(g, d)
            bad = gd >= 0  # not a descent direction: fall back to steepest descent
            if bool(bad.any()):
                d[bad] = -g[bad]
                gd = torch.where(bad, dot(g, d), gd)
            t = torch.ones(P, dtype=self.dtype, device=self.device)
            if it == 0:
                t = torch.clamp(1.0 / g.abs().sum((1, 2)).clamp_min(1e-12), max=1.0)
            # per-probe Armijo backtracking
            f_new = f.clone()
            g_new = g.clone()
            todo = active.clone()
            for _ in range(MAX_BACKTRACK):
                fn, gn = self.loss_grad(w + t.view(-1, 1, 1) * d, todo)
                f_new = torch.where(todo, fn, f_new)
                g_new = torch.where(todo.view(-1, 1, 1), gn, g_new)
                ok = f_new <= f + 1e-4 * t * gd
                todo = todo & ~ok
                if not bool(todo.any()):
                    break
                # quadratic interpolation, kept within [0.1 t, 0.5 t]
                denom = 2.0 * (f_new - f - gd * t)
                t_q = torch.where(denom > 0, -gd * t * t / denom.clamp_min(1e-30), 0.5 * t)
                t = torch.where(todo, torch.minimum(torch.maximum(t_q, 0.1 * t), 0.5 * t), t)
            step_ok = active & ~todo
            s = t.view(-1, 1, 1) * d * step_ok.view(-1, 1, 1).to(d.dtype)
            yv = (g_new - g) * step_ok.view(-1, 1, 1).to(d.dtype)
            w = w + s
            f = torch.where(step_ok, f_new, f)
            g = torch.where(step_ok.view(-1, 1, 1), g_new, g)
            sy = dot(s, yv)
            good = step_ok & (sy > 1e-10)
            S[head] = s
            Y[head] = yv
            rho[head] = torch.where(good, 1.0 / sy.clamp_min(1e-30), torch.zeros_like(sy))
            yy = dot(yv, yv)
            gamma = torch.where(good, sy / yy.clamp_min(1e-30), gamma)
            head = (head + 1) % m_hist
            n_hist = min(n_hist + 1, m_hist)
            iters += active.long()
            if progress is not None and it % 5 == 4:
                progress((it + 1) / int(self.s["max_iter"]))
            if on_iteration is not None:
                on_iteration(it + 1, w)
            # converged, or stuck (no acceptable step even after backtracking)
            active = active & step_ok & (g.abs().amax((1, 2)) > gtol)
        self.w = w
        converged = g.abs().amax((1, 2)) <= gtol
        return iters.cpu().numpy(), converged.cpu().numpy()

    def logits(self, x, w=None, *, chunk: int = 16):
        """Logits [P, len(x), C] of every probe on ``x`` (default weights: the fitted ``w``)."""
        w = self.w if w is None else w
        return self.torch.cat(
            [self.torch.einsum("nd,pcd->pnc", x, w[p0 : p0 + chunk]) for p0 in range(0, w.shape[0], chunk)]
        )

    def predict(self, x):
        """Predicted class [P, len(x)] of every probe."""
        return self.logits(x).argmax(2)

    def fit_evaluate(self, x_hold, y_hold, progress=None):
        """Fit, then ``(held-out error per probe, iterations, converged)``; ``y_hold == -1`` counts as wrong."""
        iters, conv = self.fit(progress)
        err, wrong = [], []
        for p0 in range(0, self.b.n_probes, 16):
            z = self.torch.einsum("nd,pcd->pnc", x_hold, self.w[p0 : p0 + 16])
            w = z.argmax(2) != y_hold.view(1, -1)
            wrong.append(w.cpu().numpy())
            err.append(w.float().mean(1))
        # which held-out examples each probe gets wrong: the paired comparison of two settings reads it
        self.holdout_wrong = np.concatenate(wrong)
        return self.torch.cat(err).cpu().numpy().astype(np.float64), iters, conv
