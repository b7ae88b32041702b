"""Linear Eulerian video magnification (EVM) of grey clips.

Wu, H.-Y., Rubinstein, M., Shih, E., Guttag, J., Durand, F. & Freeman, W. (2012).
Eulerian video magnification for revealing subtle changes in the world. ACM Transactions
on Graphics 31(4), 65. doi:10.1145/2185520.2185561 — used on micro-expression clips by
EMR, the MEGC 2019 winner.

Each frame is decomposed into spatial bands (a Laplacian pyramid for motion, or one
level of a Gaussian pyramid), the time series of every pixel of every band is band-pass
filtered (ideal FFT band or zero-phase Butterworth, frequencies in Hz at the clip's frame
rate), multiplied by ``alpha_l`` and added back to the clip. For a pattern ``f(x - d(t))``
with ``d`` in the pass band this gives, to first order, ``f(x - (1 + alpha) d(t))``
(Wu et al., Sec. 3).

The first-order approximation holds while ``(1 + alpha) d(t) < lambda / 8`` for spatial
wavelength ``lambda`` (Eq. 14). With the cut-off wavelength ``lambda_c`` (``cutoff``) the
largest displacement that is magnified by the full ``alpha`` is ``d_c = lambda_c / (8 (1 +
alpha))``, and a band whose representative wavelength is ``lambda_l`` gets

    alpha_l = clip(lambda_l / (8 d_c) - 1, 0, alpha)
            = clip((1 + alpha) lambda_l / lambda_c - 1, 0, alpha),

full ``alpha`` at and above the cut-off, attenuated linearly towards zero below it
(:func:`level_alphas`). Level ``l`` (0 = full resolution) of a Laplacian pyramid holds
wavelengths of about ``2**(l + 1)`` to ``2**(l + 2)`` pixels; its representative wavelength
is taken as the upper end, ``lambda_l = 2**(l + 2)``, and the Gaussian-pyramid level
``L`` (the clip blurred and subsampled ``L`` times) as ``2**(L + 2)``.

A negative ``alpha`` in ``(-1, 0)`` *reduces* the motion to ``(1 + alpha) d(t)`` (EMR's
"reduction"): the same sum with the band-passed signal subtracted in part, with ``alpha``
in every band (no cut-off, :func:`level_alphas`).
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass

import cv2
import numpy as np
from scipy import signal

__all__ = ["FILTERS", "PYRAMIDS", "Magnification", "level_alphas", "magnify"]

#: spatial decompositions
PYRAMIDS = ("laplacian", "gaussian")
#: temporal band-pass filters
FILTERS = ("ideal", "butterworth")

#: fewest frames a clip may have
MIN_FRAMES = 3
#: smallest side of the coarsest pyramid level
_MIN_SIDE = 8


@dataclass(frozen=True)
class Magnification:
    """Parameters of linear EVM.

    Attributes
    ----------
    alpha : float
        Amplification (> -1): the motion in the band is scaled by ``1 + alpha``; 0 leaves the
        clip unchanged, ``-1 < alpha < 0`` reduces the motion (every spatial band gets the
        same ``alpha``, :func:`level_alphas`).
    band : (low, high)
        Temporal pass band in Hz, ``0 < low < high``; ``high`` must stay below half the
        frame rate of every clip magnified.
    pyramid : {"laplacian", "gaussian"}
        Spatial decomposition: all levels of a Laplacian pyramid (motion), or the coarsest
        level of a Gaussian pyramid (Wu et al.'s colour setting).
    filter : {"ideal", "butterworth"}
        Ideal FFT band-pass, or a zero-phase Butterworth band-pass of ``order``.
    cutoff : float
        Spatial cut-off wavelength ``lambda_c`` in pixels (> 0).
    levels : int or None
        Pyramid levels below full resolution; ``None``: as many as keep the coarsest
        side at least 8 pixels.
    order : int
        Butterworth order (>= 1).
    """

    alpha: float
    band: tuple[float, float] = (1.0, 10.0)
    pyramid: str = "laplacian"
    filter: str = "ideal"
    cutoff: float = 16.0
    levels: int | None = None
    order: int = 1

    def __post_init__(self) -> None:
        alpha = float(self.alpha)
        if not math.isfinite(alpha) or alpha <= -1:
            raise ValueError(
                f"magnification alpha must be a number > -1 (in (-1, 0) it reduces the motion), "
                f"got {self.alpha!r}"
            )
        object.__setattr__(self, "alpha", alpha)
        try:
            low, high = (float(v) for v in self.band)
        except (TypeError, ValueError):
            raise ValueError(
                f"magnification band must be two frequencies LOW,HIGH in Hz, got {self.band!r}"
            ) from None
        if not (0 < low < high and math.isfinite(high)):
            raise ValueError(f"magnification band {low:g},{high:g} Hz: need 0 < LOW < HIGH (in Hz)")
        object.__setattr__(self, "band", (low, high))
        if self.pyramid not in PYRAMIDS:
            raise ValueError(f"unknown pyramid {self.pyramid!r}; expected one of {PYRAMIDS}")
        if self.filter not in FILTERS:
            raise ValueError(f"unknown temporal filter {self.filter!r}; expected one of {FILTERS}")
        cutoff = float(self.cutoff)
        if not math.isfinite(cutoff) or cutoff <= 0:
            raise ValueError(f"cut-off wavelength must be > 0 pixels, got {self.cutoff!r}")
        object.__setattr__(self, "cutoff", cutoff)
        if self.levels is not None:
            if int(self.levels) < 1:
                raise ValueError(f"pyramid levels must be >= 1, got {self.levels!r}")
            object.__setattr__(self, "levels", int(self.levels))
        if int(self.order) < 1:
            raise ValueError(f"Butterworth order must be >= 1, got {self.order!r}")
        object.__setattr__(self, "order", int(self.order))

    def key(self) -> dict:
        """Parameters that change the numbers (JSON-friendly)."""
        d = asdict(self)
        d["band"] = list(self.band)
        if self.filter != "butterworth":
            d.pop("order")
        return d

    def apply_to_row(self, clip: np.ndarray, row) -> np.ndarray:
        """:meth:`apply` at the ``fps`` of a Sample-table row (a one-line ValueError when the
        row has no usable frame rate)."""
        try:
            fps = float(row["fps"])
        except (KeyError, TypeError, ValueError):
            fps = float("nan")
        if not fps > 0:
            raise ValueError(
                f"magnification needs the clip's frame rate; fps is {row.get('fps')!r}"
            )
        return self.apply(clip, fps)

    def apply(self, clip: np.ndarray, fps: float) -> np.ndarray:
        """:func:`magnify` ``clip`` (recorded at ``fps``) with these parameters."""
        return magnify(
            clip,
            fps,
            self.alpha,
            band=self.band,
            pyramid=self.pyramid,
            filter=self.filter,
            cutoff=self.cutoff,
            levels=self.levels,
            order=self.order,
        )


def level_alphas(alpha: float, cutoff: float, wavelengths: np.ndarray) -> np.ndarray:
    """Amplification of each spatial band under the cut-off wavelength.

    Parameters
    ----------
    alpha : float
        Requested amplification.
    cutoff : float
        ``lambda_c`` in pixels.
    wavelengths : (L,) array
        Representative wavelength of each band, in pixels.

    Returns
    -------
    (L,) float64
        ``clip((1 + alpha) * lambda / lambda_c - 1, 0, alpha)`` for ``alpha >= 0``; for a
        reduction (``-1 < alpha < 0``) ``alpha`` in every band: the bound exists because an
        amplified displacement ``(1 + alpha) d`` can outgrow a fine wavelength, and a
        reduced one is smaller than the clip's own ``d``, so no band needs attenuating (a
        fine band whose first-order approximation fails anyway loses part of its band-passed
        variation, towards a still band at ``alpha = -1``, and gains nothing).
    """
    lam = np.asarray(wavelengths, dtype=np.float64)
    if alpha < 0:
        return np.full(lam.shape, float(alpha))
    return np.clip((1.0 + alpha) * lam / cutoff - 1.0, 0.0, alpha)


def _n_levels(shape: tuple[int, int], levels: int | None) -> int:
    side = min(shape)
    most = max(int(math.floor(math.log2(side / _MIN_SIDE))), 0)
    if levels is None:
        return most
    if levels > most:
        raise ValueError(
            f"{levels} pyramid levels need frames of at least {_MIN_SIDE * 2**levels} px, "
            f"got {shape[0]}x{shape[1]}: use fewer levels"
        )
    return levels


def _down(frames: np.ndarray) -> np.ndarray:
    return np.stack([cv2.pyrDown(f) for f in frames])


def _up(frames: np.ndarray, shape: tuple[int, int]) -> np.ndarray:
    size = (shape[1], shape[0])
    return np.stack([cv2.pyrUp(f, dstsize=size) for f in frames])


def _bandpass(x: np.ndarray, fps: float, band: tuple[float, float], kind: str, order: int):
    """Band-pass ``x`` (T, ...) along axis 0."""
    n = x.shape[0]
    low, high = band
    if kind == "ideal":
        freqs = np.fft.rfftfreq(n, d=1.0 / fps)
        keep = (freqs >= low) & (freqs <= high)
        if not keep.any():
            raise ValueError(
                f"magnification band {low:g},{high:g} Hz holds no frequency of a {n}-frame clip "
                f"at {fps:g} fps (steps of {fps / n:.3g} Hz): widen the band"
            )
        spec = np.fft.rfft(x, axis=0)
        spec[~keep] = 0
        return np.fft.irfft(spec, n=n, axis=0)
    sos = signal.butter(order, [low, high], btype="bandpass", fs=fps, output="sos")
    padlen = min(3 * (2 * len(sos) + 1), n - 1)
    return signal.sosfiltfilt(sos, x, axis=0, padlen=padlen)


def magnify(
    clip: np.ndarray,
    fps: float,
    alpha: float,
    *,
    band: tuple[float, float] = (1.0, 10.0),
    pyramid: str = "laplacian",
    filter: str = "ideal",
    cutoff: float = 16.0,
    levels: int | None = None,
    order: int = 1,
    value_range: tuple[float, float] | None = None,
) -> np.ndarray:
    """Magnify the motion of a grey clip in a temporal band (linear EVM).

    Parameters
    ----------
    clip : (T, H, W) array, uint8 or float
        Grey frames, ``T >= 3``.
    fps : float
        Frame rate of the clip (Hz); ``band`` must lie in ``(0, fps / 2)``.
    alpha : float
        Amplification (> -1; negative values reduce the motion).
    band, pyramid, filter, cutoff, levels, order
        See :class:`Magnification`.
    value_range : (lo, hi), optional
        Range the output is clipped to; default the integer dtype's range, or 0..255 for
        floats (merkit's grey frames).

    Returns
    -------
    (T, H, W) array of ``clip.dtype``
        The magnified clip, clipped to ``value_range`` (rounded for integer dtypes).
    """
    params = Magnification(alpha, band, pyramid, filter, cutoff, levels, order)
    x = np.asarray(clip)
    if x.ndim != 3:
        raise ValueError(f"magnify needs a grey clip (T, H, W), got shape {x.shape}")
    if x.shape[0] < MIN_FRAMES:
        raise ValueError(f"magnify needs a clip of at least {MIN_FRAMES} frames, got {x.shape[0]}")
    if not (np.issubdtype(x.dtype, np.integer) or np.issubdtype(x.dtype, np.floating)):
        raise ValueError(f"magnify needs integer or float frames, got dtype {x.dtype}")
    fps = float(fps)
    if not math.isfinite(fps) or fps <= 0:
        raise ValueError(f"frame rate must be > 0 fps, got {fps!r}")
    low, high = params.band
    if high >= fps / 2:
        raise ValueError(
            f"magnification band {low:g},{high:g} Hz must lie below half the frame rate "
            f"({fps / 2:g} Hz at {fps:g} fps): lower HIGH"
        )
    if value_range is None:
        if np.issubdtype(x.dtype, np.integer):
            info = np.iinfo(x.dtype)
            value_range = (float(info.min), float(info.max))
        else:
            value_range = (0.0, 255.0)
    if params.alpha == 0:
        return x.copy()

    n_levels = _n_levels(x.shape[1:], params.levels)
    frames = x.astype(np.float32)
    gauss = [frames]
    for _ in range(n_levels):
        gauss.append(_down(gauss[-1]))
    if params.pyramid == "gaussian":
        (a,) = level_alphas(params.alpha, params.cutoff, [2.0 ** (n_levels + 2)])
        added = a * _bandpass(gauss[-1], fps, params.band, params.filter, params.order)
        for level in range(n_levels - 1, -1, -1):
            added = _up(added.astype(np.float32), gauss[level].shape[1:])
    else:
        alphas = level_alphas(params.alpha, params.cutoff, 2.0 ** (np.arange(n_levels + 1) + 2))
        added = alphas[-1] * _bandpass(gauss[-1], fps, params.band, params.filter, params.order)
        for level in range(n_levels - 1, -1, -1):
            shape = gauss[level].shape[1:]
            lap = gauss[level] - _up(gauss[level + 1], shape)
            filtered = _bandpass(lap, fps, params.band, params.filter, params.order)
            added = alphas[level] * filtered + _up(added.astype(np.float32), shape)
    out = np.clip(frames + added, *value_range)
    if np.issubdtype(x.dtype, np.integer):
        out = np.rint(out)
    return out.astype(x.dtype)
