"""Monotone target transforms applied before standardization (``data.target_transform``), and ``auto``.

A transform is a record of primitives, one per target, stored with the target scaler in the checkpoint
header (``heads[i]["scaler"]["transforms"]``), so prediction inverts it with no config::

    {"kind": "none"} | {"kind": "log"} | {"kind": "log1p"}
    {"kind": "yeo_johnson", "lambda": float}                       (PowerTransformer(standardize=False))
    {"kind": "quantile", "quantiles": [Q], "references": [Q]}      (QuantileTransformer(output_distribution
                                                                     ="normal"): its fitted grid)

Fitting is scikit-learn's; applying a stored record is the same arithmetic sklearn does (np.interp on the
grid, scipy's Yeo-Johnson, the normal ppf/cdf), on float64 numpy arrays; tests hold it to sklearn's output.
``auto`` scores every candidate on the validation split (``held_out_nll``) and keeps the lowest.
"""

from __future__ import annotations

import logging
import math

import numpy as np

from molgnn.errors import InputFileError, MolgnnError

log = logging.getLogger(__name__)

KINDS = ("none", "log", "log1p", "yeo_johnson", "quantile")
CHOICES = (*KINDS, "auto")
MARGIN = 0.01  # auto: nats per validation value a transform must gain over none
BOUNDS = 1e-7  # sklearn.preprocessing._data.BOUNDS_THRESHOLD: the quantile transform's clip


class TargetDomainError(ValueError):
    """A training target outside a transform's domain: ``index`` into the fitted array, its ``value``."""

    def __init__(self, kind: str, index: int, value: float, need: str):
        super().__init__(f"target {value:g} is not {need}, which data.target_transform={kind} needs")
        self.kind, self.index, self.value, self.need = kind, index, value, need


DOMAIN = {"log": (0.0, "> 0"), "log1p": (-1.0, "> -1")}


def fit(kind: str, y: np.ndarray) -> dict:
    """Fit one target's transform on its training values y float [N] (finite); ``TargetDomainError`` when
    ``log`` / ``log1p`` meets a value <= 0 / <= -1."""
    y = np.asarray(y, dtype=np.float64)
    if kind in DOMAIN:
        low, need = DOMAIN[kind]
        bad = np.flatnonzero(y <= low)
        if bad.size:
            raise TargetDomainError(kind, int(bad[0]), float(y[bad[0]]), need)
        return {"kind": kind}
    if kind == "yeo_johnson":
        from sklearn.preprocessing import PowerTransformer

        pt = PowerTransformer(method="yeo-johnson", standardize=False).fit(y[:, None])
        return {"kind": kind, "lambda": float(pt.lambdas_[0])}
    if kind == "quantile":
        from sklearn.preprocessing import QuantileTransformer

        qt = QuantileTransformer(
            n_quantiles=min(1000, len(y)), output_distribution="normal", random_state=0
        ).fit(y[:, None])
        return {
            "kind": kind,
            "quantiles": qt.quantiles_[:, 0].tolist(),
            "references": qt.references_.tolist(),
        }
    return {"kind": "none"}


def forward(record: dict, y: np.ndarray) -> np.ndarray:
    """t(y) float64, same shape; NaN stays NaN, and so does a value outside the transform's domain."""
    from scipy import stats  # imported when used: keeps start-up short

    y = np.asarray(y, dtype=np.float64)
    kind = record["kind"]
    with np.errstate(all="ignore"):
        if kind == "log":
            return np.where(y > 0, np.log(y), np.nan)
        if kind == "log1p":
            return np.where(y > -1, np.log1p(y), np.nan)
        if kind == "yeo_johnson":
            out = np.full(y.shape, np.nan)
            ok = np.isfinite(y)
            out[ok] = stats.yeojohnson(y[ok], lmbda=record["lambda"])
            return out
        if kind == "quantile":
            q, r = np.asarray(record["quantiles"]), np.asarray(record["references"])
            # sklearn's _transform_col: the mean of the forward and the reversed interpolation (ties)
            p = 0.5 * (np.interp(y, q, r) - np.interp(-y, -q[::-1], -r[::-1]))
            p = np.where(y - BOUNDS < q[0], 0.0, np.where(y + BOUNDS > q[-1], 1.0, p))
            low, high = stats.norm.ppf([BOUNDS - np.spacing(1), 1 - (BOUNDS - np.spacing(1))])
            return np.clip(stats.norm.ppf(p), low, high)
    return y.copy()


def inverse(record: dict, z: np.ndarray) -> np.ndarray:
    """t^-1(z) float64, same shape (a Yeo-Johnson value past the transform's asymptote is clamped to it)."""
    from scipy import stats  # imported when used: keeps start-up short

    z = np.asarray(z, dtype=np.float64)
    kind = record["kind"]
    with np.errstate(all="ignore"):
        if kind == "log":
            return np.exp(z)
        if kind == "log1p":
            return np.expm1(z)
        if kind == "yeo_johnson":
            return _yeo_johnson_inverse(z, record["lambda"])
        if kind == "quantile":
            q, r = np.asarray(record["quantiles"]), np.asarray(record["references"])
            p = stats.norm.cdf(z)
            return np.where(p - BOUNDS < 0, q[0], np.where(p + BOUNDS > 1, q[-1], np.interp(p, r, q)))
    return z.copy()


def _yeo_johnson_inverse(z: np.ndarray, lam: float) -> np.ndarray:
    """sklearn's PowerTransformer._yeo_johnson_inverse_transform, with the power's base kept > 0."""
    out = np.full(z.shape, np.nan)
    pos, neg = z >= 0, z < 0
    tiny = 1e-12
    if abs(lam) < np.spacing(1.0):
        out[pos] = np.expm1(z[pos])
    else:
        out[pos] = np.maximum(z[pos] * lam + 1, tiny) ** (1 / lam) - 1
    if abs(lam - 2) > np.spacing(1.0):
        out[neg] = 1 - np.maximum(-(2 - lam) * z[neg] + 1, tiny) ** (1 / (2 - lam))
    else:
        out[neg] = -np.expm1(-z[neg])
    return out


def log_jacobian(record: dict, y: np.ndarray) -> np.ndarray:
    """log |d t(y) / dy| float64 [N] (-inf where the transform's density is 0, e.g. outside a quantile grid)."""
    y = np.asarray(y, dtype=np.float64)
    kind = record["kind"]
    with np.errstate(all="ignore"):
        if kind == "log":
            return np.where(y > 0, -np.log(y), -np.inf)
        if kind == "log1p":
            return np.where(y > -1, -np.log1p(y), -np.inf)
        if kind == "yeo_johnson":
            return (record["lambda"] - 1) * np.sign(y) * np.log1p(np.abs(y))
        if kind == "quantile":
            return _quantile_log_jacobian(record, y)
    return np.zeros(y.shape)


def _quantile_log_jacobian(record: dict, y: np.ndarray) -> np.ndarray:
    """t = ppf(F(y)): log F'(y) - log pdf(t(y)), with F' the m-spacing density estimate (Vasicek 1976)
    over a window of probability width ~ 1/sqrt(N) around F(y), widened until it spans two distinct values.
    The derivative of the interpolated grid itself is no density: measured values repeat (a validation value
    equal to a training one) and near-equal ones give a near-vertical segment, an unbounded log F'."""
    from scipy import stats  # imported when used: keeps start-up short

    q, r = np.asarray(record["quantiles"]), np.asarray(record["references"])
    p = 0.5 * (np.interp(y, q, r) - np.interp(-y, -q[::-1], -r[::-1]))
    half = np.full(y.shape, 0.5 / math.sqrt(len(q)))
    density = np.zeros(y.shape)
    todo = np.ones(y.shape, dtype=bool)
    while todo.any():
        lo, hi = np.clip(p - half, 0, 1), np.clip(p + half, 0, 1)
        width = np.interp(hi, r, q) - np.interp(lo, r, q)
        done = todo & (width > 0)
        density[done] = (hi - lo)[done] / width[done]
        todo &= ~done & (half < 1)
        half = half * 2
    inside = (y >= q[0]) & (y <= q[-1]) & (density > 0)
    with np.errstate(divide="ignore"):
        log_f = np.where(inside, np.log(np.where(inside, density, 1.0)), -np.inf)
    return log_f - stats.norm.logpdf(forward(record, y))


def held_out_nll(record: dict, y_train: np.ndarray, y_valid: np.ndarray) -> float:
    """Mean negative log-likelihood of y_valid [M] in original units under "t(y) ~ Normal(mean, sd) with
    mean, sd of t(y_train)": the Box-Cox likelihood criterion (Box & Cox 1964: the Gaussian likelihood of
    the transformed values plus the log-Jacobian of the transform) evaluated on held-out data. Infinite when
    a validation value is outside the transform's domain or support."""
    from scipy import stats  # imported when used: keeps start-up short

    t_train, t_valid = forward(record, y_train), forward(record, y_valid)
    mean, sd = float(np.mean(t_train)), float(np.std(t_train))
    jac = log_jacobian(record, y_valid)
    if not (np.all(np.isfinite(t_valid)) and np.all(np.isfinite(jac)) and sd > 0):
        return math.inf
    log_pdf = stats.norm.logpdf(t_valid, loc=mean, scale=sd) + jac
    return float(-np.mean(log_pdf))


def auto(y_train: np.ndarray, y_valid: np.ndarray) -> tuple[dict, dict[str, float]]:
    """Choose one target's transform: every candidate (none; log if all training values > 0; log1p if all
    > -1; yeo_johnson; quantile) fitted on y_train [N], scored with ``held_out_nll`` on y_valid [M]. The
    lowest score wins if it beats ``none`` by at least ``MARGIN`` nats per validation value (a Yeo-Johnson
    fitted to Gaussian data, lambda ~ 1, must not win on noise); ties go to the earlier, simpler candidate.
    Returns (record, {candidate: score})."""
    records, scores = {}, {}
    for kind in KINDS:
        try:
            records[kind] = fit(kind, y_train)
        except TargetDomainError:
            continue
        scores[kind] = held_out_nll(records[kind], y_train, y_valid) if len(y_valid) else math.inf
    best = min(scores, key=lambda k: (scores[k], KINDS.index(k)))
    if not math.isfinite(scores[best]) or scores[best] > scores["none"] - MARGIN:
        best = "none"
    return records[best], scores


def resolve_kinds(setting, target_cols: list[str]) -> list[str]:
    """``data.target_transform`` (one name for every target, or a list with one per target; None = none)
    -> a kind per target; anything else is a ``MolgnnError`` naming the key."""
    names = ["none" if setting is None else setting] if isinstance(setting, str | None) else list(setting)
    names = ["none" if n is None else str(n) for n in names]
    if len(names) == 1:
        names = names * len(target_cols)
    bad = [n for n in names if n not in CHOICES]
    if bad or len(names) != len(target_cols):
        raise MolgnnError(
            f"data.target_transform={setting!r}: give one of {', '.join(CHOICES)}, or a list of them with one "
            f"per target ({len(target_cols)}: {', '.join(target_cols)})"
        )
    return names


def fit_target_transforms(
    targets: np.ndarray, train: list[int], valid: list[int], kinds: list[str], path, columns: list[str]
) -> tuple[list[dict], list[dict[str, float]]]:
    """Fit each target's transform on the training rows of targets float [R, T] (NaN = missing); ``auto``
    chooses on the validation rows. Returns (records [T], auto scores [T] ({} where not auto)). A training
    value outside log / log1p's domain is an ``InputFileError`` naming the file, row, column and key."""
    records, scores = [], []
    for j, (kind, col) in enumerate(zip(kinds, columns)):
        rows = np.asarray(train)[~np.isnan(targets[train, j])]
        y_train = targets[rows, j]
        y_valid = targets[valid, j]
        y_valid = y_valid[~np.isnan(y_valid)]
        if kind == "auto":
            record, score = auto(y_train, y_valid)
            log.info(
                "%s: data.target_transform=auto chose %s for %r (validation NLL: %s)",
                path,
                record["kind"],
                col,
                ", ".join(f"{k} {v:.4g}" for k, v in score.items()),
            )
            records.append(record)
            scores.append(score)
            continue
        try:
            records.append(fit(kind, y_train))
            scores.append({})
        except TargetDomainError as exc:
            r = int(rows[exc.index])
            raise InputFileError(
                f"{path}: row {r} (line {r + 2}), column {col!r}: training target {exc.value:g} is not "
                f"{exc.need}, which data.target_transform={kind} needs (try log1p, yeo_johnson or auto)"
            ) from None
    return records, scores


def report(records: list[dict] | None, scores: list[dict[str, float]], columns: list[str]) -> dict:
    """metrics.json entries: ``target_transform`` {column: kind} and, for ``auto``, ``target_transform_scores``
    {column: {candidate: validation NLL (None = infinite)}}."""
    if records is None:
        return {}
    out: dict = {"target_transform": {c: r["kind"] for c, r in zip(columns, records)}}
    chosen = {
        c: {k: (v if math.isfinite(v) else None) for k, v in s.items()} for c, s in zip(columns, scores) if s
    }
    if chosen:
        out["target_transform_scores"] = chosen
    return out
