"""Train from scratch on a kept subset and on random subsets of the same size; compare with the estimate.

1. **The subset**: a file written by ``curate select`` (``.csv``, ``.parquet``,
   ``.json`` with ``example_id``; ``.txt`` of paths or ids), matched to the
   run's pool by id (or path).  Its manifest beside it, when there is one,
   says which setting made it (strategy, balance, metric, keep fraction).
2. **Held-out data, never trained on**: exactly the scaling estimate's
   (:func:`backend.scaling.grid.holdout_split`): the run's test split, or the
   stratified hold-out carved from the pool; kept examples that fall in a
   carved hold-out are left out of training (and counted).
3. **Models**, trained from scratch for every seed: ``probe`` is the
   estimate's own linear probe on the frozen embeddings (same features, same
   budget: the check of the estimate's arithmetic); ``mlp`` is the estimate's
   MLP probe (the probe that shows a gain on the demo, so the one to check it with); ``cnn`` is
   :mod:`backend.probes.cnn` on the images themselves (the check that the
   proxy's conclusion survives a real network).  The kept subset is trained
   once per seed (the seed changes the initialisation and the data order);
   each seed also draws its own random subset of the same size.
4. **The prediction**: the cached scaling estimate of this run that has the
   subset's setting at its keep fraction (at the full initial size); it
   predicted an error for the setting and for a random subset of the same
   size.  The prediction *held* when the measured difference (kept - random)
   is within two standard errors of the predicted one and has the same sign
   or is indistinguishable from zero as predicted; absolute errors of the
   CNN are not expected to match a linear probe's.  The standard error of the
   measured difference is paired: both sides are scored on the same held-out
   examples, so its hold-out part comes only from the examples on which they
   disagree (McNemar's reasoning, as in the scaling estimate), floored by
   nothing looser.  An estimate made with the same probe is preferred as the
   prediction.

Cached as a :class:`backend.store.Stage` under ``<workdir>/verify/<key>/``
(``result.json``; CNN checkpoints per training, so an interrupted check
resumes where it stopped).
"""

from __future__ import annotations

import hashlib
import json
import math
import time
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pandas as pd

from ..errors import CurateError
from ..io import atomic_path, read_json, write_json
from ..progress import Reporter
from ..store import Stage

STAGE = "verify"
VERSION = 2  # 2: per-example held-out mistakes (holdout_wrong.npz), paired standard error; mlp
MODELS = ("probe", "mlp", "cnn")
ESTIMATE_PROBE = {"probe": "linear", "mlp": "mlp"}  # the estimate whose prediction a model checks first
SIGMAS = 2.0


@dataclass
class VerifyResult:
    """What :func:`verify_selection` measured and how it compares with the prediction."""

    model: str
    n_kept: int
    kept_errors: list[float]
    random_errors: list[float]
    predicted: dict | None
    held: bool | None
    sentence: str
    setting: dict
    holdout: dict
    dir: Path
    cached: bool = False
    details: dict = field(default_factory=dict)

    @property
    def kept_mean(self) -> float:
        return float(np.mean(self.kept_errors))

    @property
    def random_mean(self) -> float:
        return float(np.mean(self.random_errors))

    def to_dict(self) -> dict:
        return {
            "model": self.model,
            "n_kept": self.n_kept,
            "kept_errors": self.kept_errors,
            "random_errors": self.random_errors,
            "predicted": self.predicted,
            "held": self.held,
            "sentence": self.sentence,
            "setting": self.setting,
            "holdout": self.holdout,
            "details": self.details,
        }


# ---------------------------------------------------------------------------
# the subset
# ---------------------------------------------------------------------------


def read_selection(run, path: str | Path) -> tuple[np.ndarray, dict, dict]:
    """(pool positions of the kept examples, the manifest's selection params or {}, info) of a selection file."""
    path = Path(path).expanduser()
    if not path.is_file():
        raise CurateError(f"{path} does not exist: pass the file `curate select --out` wrote as --selection")
    suffix = path.suffix.lower()
    try:
        if suffix == ".csv":
            df = pd.read_csv(path, dtype={"example_id": str}, keep_default_na=False)
        elif suffix == ".parquet":
            df = pd.read_parquet(path)
        elif suffix == ".json":
            df = pd.DataFrame(json.loads(path.read_text()))
        elif suffix == ".txt":
            df = pd.DataFrame({"key": [ln.strip() for ln in path.read_text().splitlines() if ln.strip()]})
        else:
            raise CurateError(f"cannot read {path.name}: --selection must end in .csv, .parquet, .json or .txt")
    except (ValueError, OSError) as exc:
        raise CurateError(f"cannot read {path} ({exc}): is it a file written by `curate select`?") from None
    table = run.table
    ids = table["example_id"].astype(str)
    if "example_id" in df.columns:
        keys, by = df["example_id"].astype(str), pd.Series(np.arange(len(ids)), index=ids.to_numpy())
    else:
        keys = df["key"].astype(str)
        lookup = {
            **{p: i for i, p in enumerate(table["path"]) if isinstance(p, str) and p},
            **{e: i for i, e in enumerate(ids)},
        }
        by = pd.Series(lookup)
    found = keys[keys.isin(by.index)]
    if len(found) == 0:
        raise CurateError(
            f"none of the {len(keys)} examples in {path.name} belong to this run: was it selected from another workdir?"
        )
    pos = np.unique(by.loc[found.to_numpy()].to_numpy(np.int64))
    manifest = path.with_name(path.name + ".manifest.json")
    params = {}
    if manifest.exists():
        try:
            params = read_json(manifest).get("selection", {})
        except (ValueError, OSError):
            params = {}
    digest = hashlib.sha256(np.sort(pos).tobytes()).hexdigest()[:16]
    return (
        pos,
        params,
        {"file": str(path), "rows": len(keys), "unmatched": int(len(keys) - len(found)), "subset_key": digest},
    )


# ---------------------------------------------------------------------------
# the prediction
# ---------------------------------------------------------------------------


def find_prediction(run, setting: dict, n_pool: int, *, probe: str | None = None) -> dict | None:
    """The cached scaling estimate's errors for ``setting`` and for random at its keep fraction, or None.

    Among several estimates, one made with ``probe`` wins, then the one with the most seeds.
    """
    f = setting.get("keep_fraction") or (setting.get("keep_count", 0) / max(n_pool, 1))
    strategy, balance = setting.get("strategy"), setting.get("balance", "none")
    metric = setting.get("metric")
    best = None
    for res_file in sorted((run.dir.parent.parent / "scaling").glob("*/result.json")):
        try:
            saved = read_json(res_file)
        except (ValueError, OSError):
            continue
        p = saved.get("params", {})
        if p.get("run_key") != run.key or (strategy != "random" and p.get("metric_name", p.get("metric")) != metric):
            continue
        curves = pd.DataFrame(saved.get("curves", []))
        if curves.empty:
            continue
        if "balance" not in curves:
            curves["balance"] = "none"
        full = curves[np.isclose(curves["initial_fraction"], curves["initial_fraction"].max())]
        fr = np.array(sorted(full["keep_fraction"].unique()))
        near = fr[np.argmin(np.abs(fr - f))] if len(fr) else None
        if near is None or abs(near - f) > 0.011:
            continue
        mine = full[
            (full["strategy"] == strategy) & (full["balance"] == balance) & np.isclose(full["keep_fraction"], near)
        ]
        rnd = full[
            (full["strategy"] == "random") & (full["balance"] == "none") & np.isclose(full["keep_fraction"], near)
        ]
        if mine.empty or rnd.empty:
            continue
        cand = {
            "file": str(res_file),
            "keep_fraction": float(near),
            "probe": p.get("probe"),
            "setting_error": float(mine["error_mean"].iloc[0]),
            "setting_std": float(mine["error_std"].iloc[0]),
            "random_error": float(rnd["error_mean"].iloc[0]),
            "random_std": float(rnd["error_std"].iloc[0]),
            "n_seeds": int(mine["n_seeds"].iloc[0]),
            "holdout_size": int(saved.get("holdout", {}).get("size", 0)),
        }
        rank = (cand["probe"] == probe, cand["n_seeds"])
        if best is None or rank > (best["probe"] == probe, best["n_seeds"]):
            best = cand
    return best


# ---------------------------------------------------------------------------
# training
# ---------------------------------------------------------------------------


def _random_subsets(grid_pos: np.ndarray, n: int, seeds) -> list[np.ndarray]:
    return [np.sort(np.random.default_rng([int(s), 31337]).choice(grid_pos, size=n, replace=False)) for s in seeds]


def _train_probes(
    run,
    kept: np.ndarray,
    randoms: list[np.ndarray],
    grid_pos,
    hold_rows,
    y_pool,
    y_hold,
    n_classes,
    seeds,
    device,
    rep,
    *,
    kind: str = "linear",
) -> tuple[list[float], list[float], np.ndarray, np.ndarray]:
    """The estimate's probes (linear or mlp) on the kept set and on each random subset.

    Returns the held-out errors (kept per seed, random per seed) and the per-example mistakes
    ``[seeds, H]`` of both sides.  A linear probe from zero weights is deterministic: the kept subset
    is trained once and its result stands for every seed; an MLP is trained once per seed.
    """
    import torch

    from ..probes import LinearProbes, MLPProbes, probe_features
    from ..scaling.grid import LINEAR, MLP

    rows = run.table["row"].to_numpy(np.int64)
    x_grid, tf = probe_features(run.embeddings, rows[grid_pos])
    x_hold, _ = probe_features(run.embeddings, hold_rows, tf)
    where = {int(p): i for i, p in enumerate(grid_pos)}
    orderings = {"kept": torch.tensor([where[int(p)] for p in kept], device=device)}
    for i, r in enumerate(randoms):
        orderings[f"random{i}"] = torch.tensor([where[int(p)] for p in r], device=device)
    n_kept_probes = 1 if kind == "linear" else len(seeds)
    probes = [("kept", len(kept))] * n_kept_probes + [(f"random{i}", len(r)) for i, r in enumerate(randoms)]
    rep.stage("verify", detail=f"{len(probes)} {kind} probes from scratch on {len(kept):,} examples each")
    trainer, settings = (LinearProbes, LINEAR) if kind == "linear" else (MLPProbes, MLP)
    tr = trainer(
        torch.from_numpy(x_grid).to(device),
        torch.from_numpy(y_pool[grid_pos]).to(device),
        n_classes,
        orderings,
        probes,
        dict(settings),
        seed=0,
    )
    err, _, _ = tr.fit_evaluate(
        torch.from_numpy(x_hold).to(device),
        torch.from_numpy(y_hold).to(device),
        progress=lambda frac: rep.update(int(100 * frac), 100),
    )
    rep.end_stage()
    wrong = _unpacked(np.asarray(tr.holdout_wrong), len(y_hold))
    kept_wrong = np.repeat(wrong[:1], len(seeds), axis=0) if kind == "linear" else wrong[:n_kept_probes]
    kept_err = [float(err[0])] * len(seeds) if kind == "linear" else [float(e) for e in err[:n_kept_probes]]
    return kept_err, [float(e) for e in err[n_kept_probes:]], kept_wrong, wrong[n_kept_probes:]


def _unpacked(wrong: np.ndarray, n: int) -> np.ndarray:
    """Per-example mistakes as bool ``[P, n]``, whether the probe packed them into bits or not."""
    if wrong.dtype == np.uint8 and wrong.shape[-1] != n:
        return np.unpackbits(wrong, axis=-1)[:, :n].astype(bool)
    return wrong.astype(bool)


def _train_cnns(
    run, kept, randoms, hold_table, y_pool, y_hold, n_classes, seeds, cfg_kwargs, device, stage_dir, rep
) -> tuple[list[float], list[float], np.ndarray, np.ndarray, dict]:
    from ..probes.cnn import CNNConfig, load_images, train_cnn

    needed = np.unique(np.concatenate([kept, *randoms]))
    imgs, ok = load_images(run, needed, reporter=rep)
    index = {int(p): i for i, p in enumerate(needed)}
    hold_imgs, hold_ok = load_images(run, None, table=hold_table, side=imgs.shape[1], reporter=rep)
    bad = int((~ok).sum() + (~hold_ok).sum())
    ev_imgs, ev_y = hold_imgs[hold_ok], y_hold[hold_ok]
    kept_err: list[float] = []
    rnd_err: list[float] = []
    wrong: dict[str, list[np.ndarray]] = {"kept": [], "random": []}
    hist: dict[str, dict] = {}
    for i, s in enumerate(seeds):
        for name, subset, out in (("kept", kept, kept_err), ("random", randoms[i], rnd_err)):
            sel = np.array([index[int(p)] for p in subset])
            sel = sel[ok[sel]]
            cfg = CNNConfig(**{**cfg_kwargs, "seed": int(s)})
            res = train_cnn(
                imgs[sel],
                y_pool[subset][ok[sel]],
                n_classes=n_classes,
                config=cfg,
                eval_images=ev_imgs,
                eval_labels=ev_y,
                device=device,
                checkpoint_dir=stage_dir / f"cnn_{name}_seed{s}",
                reporter=rep,
            )
            assert res.eval_error is not None and res.eval_predictions is not None  # a hold-out was given
            out.append(float(res.eval_error))
            wrong[name].append(np.asarray(res.eval_predictions) != ev_y)
            hist[f"{name}_seed{s}"] = {
                "epochs": res.epochs,
                "steps": res.steps,
                "device": res.device,
                "seconds": round(res.elapsed_s, 1),
                "final_train_error": res.history[-1]["train_error"] if res.history else None,
            }
    return (
        kept_err,
        rnd_err,
        np.stack(wrong["kept"]),
        np.stack(wrong["random"]),
        {"trainings": hist, "unreadable_images": bad},
    )


# ---------------------------------------------------------------------------
# the check
# ---------------------------------------------------------------------------

WRONG_FILE = "holdout_wrong.npz"


def _load_wrong(folder: Path) -> tuple[np.ndarray, np.ndarray] | None:
    """The per-example mistakes a finished check saved, or None (a version-1 result)."""
    try:
        with np.load(folder / WRONG_FILE) as z:
            n = int(z["n"])
            return (
                np.unpackbits(z["kept"], axis=1)[:, :n].astype(bool),
                np.unpackbits(z["random"], axis=1)[:, :n].astype(bool),
            )
    except (OSError, KeyError, ValueError):
        return None


def _mean_sd(v) -> tuple[float, float]:
    v = np.asarray(v, np.float64)
    return float(v.mean()), float(v.std(ddof=1)) if len(v) > 1 else 0.0


def paired_holdout_se(kept_wrong: np.ndarray, random_wrong: np.ndarray) -> float:
    """Standard error, over the held-out examples, of (kept error - random error), seeds averaged.

    Both sides are scored on the same H examples: with delta_i the mean over seeds of
    (wrong_kept - wrong_random) on example i, it is std(delta) / sqrt(H).
    """
    delta = kept_wrong.astype(np.float64).mean(0) - random_wrong.astype(np.float64).mean(0)
    return float(delta.std(ddof=1) / math.sqrt(len(delta))) if len(delta) > 1 else 0.0


def _judge(kept_err, rnd_err, predicted, holdout_size, model, wrong=None) -> tuple[bool | None, str]:
    """``wrong``: (kept, random) per-example mistakes ``[seeds, H]``; without them (a result cached by
    version 1) the hold-out noise is the unpaired binomial bound."""
    km, ks = _mean_sd(kept_err)
    rm, rs = _mean_sd(rnd_err)
    d = np.asarray(kept_err) - np.asarray(rnd_err)
    d_mean = float(d.mean())
    if wrong is not None:
        noise, how = paired_holdout_se(*wrong), "paired over the same held-out examples"
    else:
        noise = math.hypot(
            math.sqrt(max(km * (1 - km), 1e-6) / holdout_size), math.sqrt(max(rm * (1 - rm), 1e-6) / holdout_size)
        )
        how = "unpaired"
    d_se = max(float(d.std(ddof=1) / math.sqrt(len(d))) if len(d) > 1 else 0.0, noise)
    what = {"probe": "linear probe", "mlp": "MLP probe"}.get(model, "small CNN trained on the images")
    note = " (a linear probe from zero weights is deterministic: one training)" if model == "probe" else ""

    def spread(sd: float, n: int) -> str:  # one training has no spread to show: say so instead of "± 0.0"
        return f" ± {100 * sd:.1f}" if n > 1 and sd > 0 else ""

    measured = (
        f"Measured with {'an' if what[0] in 'AEIOU' else 'a'} {what}, from scratch, {len(kept_err)} seed(s): "
        f"the kept subset{note} "
        f"{100 * km:.1f}%{spread(ks, len(kept_err))}, random subsets of the same size {100 * rm:.1f}%"
        f"{spread(rs, len(rnd_err))} held-out error (difference {100 * d_mean:+.1f} ± {100 * d_se:.1f} pp, "
        f"the spread over seeds floored by the hold-out's noise, {how})."
    )
    if predicted is None:
        return None, measured + (
            " No cached scaling estimate covers this setting at this keep fraction, so there "
            "is no prediction to check: run `curate scaling` (or the app's estimate) first."
        )
    p_d = predicted["setting_error"] - predicted["random_error"]
    # the kept subset is one draw of the setting (one k-means, one subset): its spread over the estimate's seeds,
    # not the standard error of their mean; the random side is a mean over seeds on both sides
    p_se = math.hypot(predicted["setting_std"], predicted["random_std"] / math.sqrt(max(predicted["n_seeds"], 1)))
    tol = SIGMAS * math.hypot(d_se, p_se)
    held = abs(d_mean - p_d) <= tol
    same_sign = (p_d > SIGMAS * p_se and d_mean > SIGMAS * d_se) or (p_d < -SIGMAS * p_se and d_mean < -SIGMAS * d_se)
    pred = (
        f"The estimate predicted {100 * predicted['setting_error']:.1f}% for this setting and "
        f"{100 * predicted['random_error']:.1f}% for random at keep {100 * predicted['keep_fraction']:.0f}% "
        f"(difference {100 * p_d:+.1f} pp)."
    )
    if held:
        verdict = (
            f"The prediction held: the measured difference is within {SIGMAS:g} standard errors of the predicted one."
        )
    else:
        verdict = (
            f"The prediction did not hold: the measured difference is {100 * abs(d_mean - p_d):.1f} pp away "
            f"from the predicted one, more than {SIGMAS:g} standard errors ({100 * tol:.1f} pp)"
            + (
                "; its direction did hold (both say this setting is "
                + ("worse" if p_d > 0 else "better")
                + " than random)."
                if same_sign
                else "."
            )
        )
    if model == "cnn" or (predicted.get("probe") and ESTIMATE_PROBE.get(model) != predicted.get("probe")):
        verdict += (
            f" (Absolute errors of this model are not expected to match the {predicted.get('probe') or 'linear'} "
            "probe's; the difference is.)"
        )
    return bool(held), " ".join([measured, pred, verdict])


def verify_selection(
    run,
    selection: str | Path,
    *,
    model: str = "probe",
    seeds: int = 3,
    epochs: int | None = None,
    iterations: int | None = None,
    device: str = "auto",
    reporter: Reporter | None = None,
    force: bool = False,
) -> VerifyResult:
    """Train ``model`` from scratch on the selection and on random subsets of the same size; see the module doc."""
    from ..embed import resolve_device
    from ..scaling.grid import holdout_split

    rep = reporter or Reporter()
    if not hasattr(run, "table"):
        from .. import load_run

        run = load_run(run)
    if model not in MODELS:
        raise CurateError(
            f"unknown --model {model!r}: use probe (the linear probe, seconds), mlp (the MLP probe) "
            "or cnn (trains on the images)"
        )
    if not run.has_labels:
        raise CurateError("verify needs labels to measure held-out error and this run has none")
    if int(seeds) < 1:
        raise CurateError(f"--seeds must be at least 1 (got {seeds})")
    if model == "cnn" and not run.has_images:
        raise CurateError("--model cnn needs the images and this run has only embeddings: use --model probe")
    kept, params, sel_info = read_selection(run, selection)
    seed_list = list(range(int(seeds)))
    cfg_kwargs = {}
    if model == "cnn":
        if iterations:
            cfg_kwargs["iterations"] = int(iterations)
        if epochs:
            cfg_kwargs["epochs"] = int(epochs)
    st = Stage(
        run.dir.parent.parent,
        STAGE,
        VERSION,
        {"run": run.key, "subset": sel_info["subset_key"], "model": model, "seeds": seed_list, "cnn": cfg_kwargs},
    )
    setting = {
        k: params.get(k) for k in ("strategy", "balance", "metric", "keep_fraction", "keep_count") if k in params
    }
    pred = (
        find_prediction(
            run,
            {**setting, "keep_count": params.get("keep_count", len(kept))},
            run.n_examples,
            probe=ESTIMATE_PROBE.get(model),
        )
        if setting.get("strategy")
        else None
    )
    if st.done and not force:
        rep.stage("verify", cached=True, detail=str(st.dir))
        saved = read_json(st.dir / "result.json")
        held, sentence = _judge(
            saved["kept_errors"], saved["random_errors"], pred, saved["holdout"]["size"], model, _load_wrong(st.dir)
        )
        return VerifyResult(
            model=model,
            n_kept=saved["n_kept"],
            kept_errors=saved["kept_errors"],
            random_errors=saved["random_errors"],
            predicted=pred,
            held=held,
            sentence=sentence,
            setting=setting,
            holdout=saved["holdout"],
            dir=st.dir,
            cached=True,
            details=saved.get("details", {}),
        )
    t0 = time.perf_counter()
    dev = resolve_device(device)
    table = run.table
    labels = table["label"].astype(str).to_numpy()
    grid_pos, hold_rows, hold_labels, hold_info = holdout_split(run, labels, rep)
    in_grid = np.isin(kept, grid_pos)
    excluded = int((~in_grid).sum())
    kept = kept[in_grid]
    if len(kept) < 2:
        raise CurateError("fewer than 2 kept examples are outside the hold-out: nothing to train on")
    if len(kept) > len(grid_pos):
        raise CurateError("the selection is larger than the pool outside the hold-out")
    classes = np.unique(labels[grid_pos])
    y_pool = np.searchsorted(classes, labels).astype(np.int64)
    pos = np.minimum(np.searchsorted(classes, hold_labels), len(classes) - 1)
    y_hold = np.where(classes[pos] == hold_labels, pos, -1).astype(np.int64)
    randoms = _random_subsets(grid_pos, len(kept), seed_list)
    d = st.prepare()
    details = {"excluded_in_holdout": excluded, "selection": sel_info}
    if model in ESTIMATE_PROBE:
        kept_err, rnd_err, kept_wrong, rnd_wrong = _train_probes(
            run,
            kept,
            randoms,
            grid_pos,
            hold_rows,
            y_pool,
            y_hold,
            len(classes),
            seed_list,
            dev,
            rep,
            kind=ESTIMATE_PROBE[model],
        )
    else:
        if hold_info["kind"] == "test split":
            hold_table = run.holdout[run.holdout["label"].notna()].reset_index(drop=True)
        else:
            rows_to_pos = pd.Series(np.arange(len(table)), index=table["row"].to_numpy())
            hold_table = table.iloc[rows_to_pos.loc[hold_rows].to_numpy()].reset_index(drop=True)
        kept_err, rnd_err, kept_wrong, rnd_wrong, extra = _train_cnns(
            run, kept, randoms, hold_table, y_pool, y_hold, len(classes), seed_list, cfg_kwargs, dev, d, rep
        )
        details.update(extra)
    details["elapsed_s"] = round(time.perf_counter() - t0, 2)
    details["device"] = dev
    held, sentence = _judge(kept_err, rnd_err, pred, hold_info["size"], model, (kept_wrong, rnd_wrong))
    res = VerifyResult(
        model=model,
        n_kept=len(kept),
        kept_errors=kept_err,
        random_errors=rnd_err,
        predicted=pred,
        held=held,
        sentence=sentence,
        setting=setting,
        holdout=hold_info,
        dir=d,
        details=details,
    )
    with atomic_path(d / WRONG_FILE) as tmp, open(tmp, "wb") as fh:
        np.savez_compressed(
            fh,
            kept=np.packbits(kept_wrong, axis=1),
            random=np.packbits(rnd_wrong, axis=1),
            n=np.int64(kept_wrong.shape[1]),
        )
    write_json(d / "result.json", res.to_dict())
    st.finish(model=model, n_kept=len(kept))
    return res
