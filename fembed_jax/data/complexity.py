"""Entropy, fractal and chaos measures over trailing windows, vectorised across all windows.

Each `*_windows` function takes W = (num_windows, n) (row k = the n values ending at one day) and
returns one value per row; `trailing(x, n, fn)` applies it to a daily series (leading NaN rows
of x, e.g. the first return, are skipped) and left-pads with NaN. No Python loop runs over days.
"""

from __future__ import annotations

import numpy as np

from fembed_jax.data import indicators as ind

EPS = 1e-12


def trailing(x, n: int, fn) -> np.ndarray:
    x = ind.as_float(x)
    finite = np.isfinite(x)
    start = int(np.argmax(finite)) if finite.any() else x.size
    if x.size - start < n:
        return np.full(x.size, np.nan)
    return ind.pad(fn(ind.windows(x[start:], n)), x.size)


def _tolerance(w: np.ndarray, frac: float = 0.2) -> np.ndarray:
    """r = frac * std of each window (population std), floored so flat windows stay finite."""
    return np.maximum(frac * w.std(axis=1), EPS)[:, None, None]


def sample_entropy_windows(w: np.ndarray, m: int = 2) -> np.ndarray:
    """SampEn(m, r = 0.2 std) = ln((B + 1) / (A + 1)): B (A) = pairs of distinct templates of length
    m (m + 1) within Chebyshev distance r, over the first n - m templates. The +1 keeps short
    windows without matches finite."""
    n = w.shape[1]
    d = np.abs(w[:, :, None] - w[:, None, :])  # (N, n, n)
    k = n - m
    dm = np.max([d[:, i : i + k, i : i + k] for i in range(m)], axis=0)
    dm1 = np.maximum(dm, d[:, m : m + k, m : m + k])
    r = _tolerance(w)
    upper = np.triu(np.ones((k, k), bool), 1)
    b = ((dm <= r) & upper).sum(axis=(1, 2))
    a = ((dm1 <= r) & upper).sum(axis=(1, 2))
    return np.log((b + 1.0) / (a + 1.0))


def approx_entropy_windows(w: np.ndarray, m: int = 2) -> np.ndarray:
    """ApEn(m, r = 0.2 std) = Phi_m - Phi_{m+1}, Phi_k = mean_i ln(fraction of length-k templates
    within Chebyshev distance r of template i, self-match included)."""
    n = w.shape[1]
    d = np.abs(w[:, :, None] - w[:, None, :])
    r = _tolerance(w)

    def phi(k):
        size = n - k + 1
        dk = np.max([d[:, i : i + size, i : i + size] for i in range(k)], axis=0)
        frac = (dk <= r).mean(axis=2)
        return np.log(frac).mean(axis=1)

    return phi(m) - phi(m + 1)


def spectral_entropy_windows(w: np.ndarray) -> np.ndarray:
    """Shannon entropy of the normalised periodogram (DC excluded) / ln(number of bins)."""
    power = np.abs(np.fft.rfft(w - w.mean(axis=1, keepdims=True), axis=1))[:, 1:] ** 2
    p = power / np.maximum(power.sum(axis=1, keepdims=True), EPS)
    h = -np.sum(np.where(p > 0, p * np.log(np.where(p > 0, p, 1.0)), 0.0), axis=1)
    return h / np.log(power.shape[1])


def higuchi_fd_windows(w: np.ndarray, kmax: int = 5) -> np.ndarray:
    """Higuchi fractal dimension: -slope of ln L(k) vs ln k, k = 1..kmax, L(k) the mean normalised
    curve length over the k offsets."""
    n = w.shape[1]
    logs_k, logs_l = [], []
    for k in range(1, kmax + 1):
        lengths = []
        for m in range(k):
            idx = np.arange(m, n, k)
            steps = idx.size - 1
            if steps < 1:
                continue
            curve = np.abs(np.diff(w[:, idx], axis=1)).sum(axis=1)
            lengths.append(curve * (n - 1) / (steps * k) / k)
        logs_k.append(np.log(k))
        logs_l.append(np.log(np.maximum(np.mean(lengths, axis=0), EPS)))
    return -slope(np.array(logs_k), np.stack(logs_l, axis=1))


def katz_fd_windows(w: np.ndarray) -> np.ndarray:
    """Katz FD = log10(s) / (log10(s) + log10(d / L)), L = sum |diffs|, d = max |x_i - x_0|, s = n - 1."""
    s = w.shape[1] - 1
    length = np.maximum(np.abs(np.diff(w, axis=1)).sum(axis=1), EPS)
    dist = np.maximum(np.abs(w - w[:, :1]).max(axis=1), EPS)
    return np.log10(s) / (np.log10(s) + np.log10(dist / length))


def petrosian_fd_windows(w: np.ndarray) -> np.ndarray:
    """Petrosian FD = log10(n) / (log10(n) + log10(n / (n + 0.4 N_delta))), N_delta = sign changes of the diffs."""
    n = w.shape[1]
    dx = np.diff(w, axis=1)
    n_delta = (dx[:, 1:] * dx[:, :-1] < 0).sum(axis=1)
    return np.log10(n) / (np.log10(n) + np.log10(n / (n + 0.4 * n_delta)))


def _embed(w: np.ndarray, dim: int = 2) -> np.ndarray:
    """(N, n - dim + 1, dim) delay vectors."""
    k = w.shape[1] - dim + 1
    return np.stack([w[:, i : i + k] for i in range(dim)], axis=2)


def lyapunov_windows(w: np.ndarray, dim: int = 2) -> np.ndarray:
    """Largest-Lyapunov-exponent estimate (one-step Rosenstein): for each delay vector its nearest
    neighbour (not a temporal neighbour), mean ln(distance after one step / distance now)."""
    p = _embed(w, dim)
    d = np.sqrt(((p[:, :, None, :] - p[:, None, :, :]) ** 2).sum(axis=3))  # (N, k, k)
    k = p.shape[1] - 1  # vectors with a successor
    now = d[:, :k, :k].copy()
    band = np.abs(np.arange(k)[:, None] - np.arange(k)[None, :]) <= 1
    now[:, band] = np.inf
    nn = np.argmin(now, axis=2)  # (N, k)
    rows = np.arange(k)
    d_now = np.take_along_axis(now, nn[:, :, None], axis=2)[:, :, 0]
    d_next = d[:, rows + 1][np.arange(d.shape[0])[:, None], rows[None, :], nn + 1]
    return np.mean(np.log((d_next + EPS) / (d_now + EPS)), axis=1)


def correlation_dim_windows(w: np.ndarray, dim: int = 2) -> np.ndarray:
    """Grassberger-Procaccia slope between r = 0.5 std and r = std: ln(C(r2) / C(r1)) / ln 2, with
    C(r) = (pairs closer than r + 1) / (pairs + 1)."""
    p = _embed(w, dim)
    d = np.sqrt(((p[:, :, None, :] - p[:, None, :, :]) ** 2).sum(axis=3))
    k = p.shape[1]
    upper = np.triu(np.ones((k, k), bool), 1)
    pairs = upper.sum()
    sd = np.maximum(w.std(axis=1), EPS)[:, None, None]
    c1 = (((d < 0.5 * sd) & upper).sum(axis=(1, 2)) + 1.0) / (pairs + 1.0)
    c2 = (((d < sd) & upper).sum(axis=(1, 2)) + 1.0) / (pairs + 1.0)
    return np.log(c2 / c1) / np.log(2.0)


def dfa_f2(w: np.ndarray, scales: tuple[int, ...]) -> list[np.ndarray]:
    """Per scale s: (N, segments) residual variances of the linearly detrended profile
    Y = cumsum(x - mean) in the most recent floor(n / s) segments of length s."""
    y = np.cumsum(w - w.mean(axis=1, keepdims=True), axis=1)
    n = w.shape[1]
    out = []
    for s in scales:
        segs = n // s
        seg = y[:, n - segs * s :].reshape(w.shape[0], segs, s)
        t = np.arange(s) - (s - 1) / 2.0
        yc = seg - seg.mean(axis=2, keepdims=True)
        beta = (yc * t).sum(axis=2, keepdims=True) / (t**2).sum()
        out.append(np.maximum(((yc - beta * t) ** 2).mean(axis=2), EPS))
    return out


def slope(x: np.ndarray, y: np.ndarray) -> np.ndarray:
    """Least-squares slope of each row of y (N, k) against x (k,)."""
    xc = x - x.mean()
    return ((y - y.mean(axis=1, keepdims=True)) * xc).sum(axis=1) / (xc**2).sum()


def generalized_hurst(w: np.ndarray, scales: tuple[int, ...], qs: tuple[float, ...]) -> np.ndarray:
    """MFDFA h(q) for each q: slope of ln F_q(s) vs ln s, F_q(s) = mean(F2^(q/2))^(1/q). (N, len(qs))."""
    f2 = dfa_f2(w, scales)
    logs = np.log(np.array(scales, float))
    hs = []
    for q in qs:
        fq = np.stack([np.mean(f ** (q / 2.0), axis=1) ** (1.0 / q) for f in f2], axis=1)
        hs.append(slope(logs, np.log(fq)))
    return np.stack(hs, axis=1)


def dfa_crossover_windows(w: np.ndarray, scales: tuple[int, ...] = (4, 6, 8, 12, 16, 25)) -> np.ndarray:
    """Scale where a two-segment line fits ln F(s) vs ln s best (interior scales only)."""
    f = np.log(np.stack([f.mean(axis=1) for f in dfa_f2(w, scales)], axis=1)) / 2.0
    logs = np.log(np.array(scales, float))
    errors = []
    for c in range(2, len(scales) - 2):
        err = 0.0
        for part in (slice(0, c + 1), slice(c, len(scales))):
            xs, ys = logs[part], f[:, part]
            b = slope(xs, ys)
            a = ys.mean(axis=1) - b * xs.mean()
            err = err + ((ys - (a[:, None] + b[:, None] * xs)) ** 2).sum(axis=1)
        errors.append(err)
    best = np.argmin(np.stack(errors, axis=1), axis=1) + 2
    return np.array(scales, float)[best]


def hurst_rs_windows(w: np.ndarray, sizes: tuple[int, ...] = (5, 10, 15, 30)) -> np.ndarray:
    """Rescaled-range Hurst exponent: slope of ln mean(R/S) vs ln size over chunks of each size."""
    n = w.shape[1]
    logs_rs = []
    for size in sizes:
        chunks = w[:, n - (n // size) * size :].reshape(w.shape[0], n // size, size)
        dev = np.cumsum(chunks - chunks.mean(axis=2, keepdims=True), axis=2)
        spread = dev.max(axis=2) - dev.min(axis=2)
        sd = np.maximum(chunks.std(axis=2), EPS)
        logs_rs.append(np.log(np.maximum((spread / sd).mean(axis=1), EPS)))
    return slope(np.log(np.array(sizes, float)), np.stack(logs_rs, axis=1))


def trailing_matrix(x, n: int, fn, width: int) -> np.ndarray:
    """Like `trailing` for a function returning (num_windows, width): (rows, width), NaN-padded."""
    x = ind.as_float(x)
    finite = np.isfinite(x)
    start = int(np.argmax(finite)) if finite.any() else x.size
    out = np.full((x.size, width), np.nan)
    if x.size - start >= n:
        values = fn(ind.windows(x[start:], n))
        out[x.size - values.shape[0] :] = values
    return out
