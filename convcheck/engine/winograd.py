"""The rounding error of Winograd minimal filtering F(m x m, 3 x 3): a rigorous componentwise bound.

Winograd's algorithm (Lavin & Gray, "Fast Algorithms for Convolutional Neural Networks",
CVPR 2016) computes each m x m output tile of a 3 x 3 cross-correlation from an
a x a input tile d (a = m + 2) as

    Y = A^T [ sum_c (G g_c G^T) (.) (B^T d_c B) ] A          ((.) the elementwise product)

with transform matrices built from a interpolation points (one of them at infinity).
Exact in real arithmetic,
it rounds very differently from a direct sum: the transforms' large coefficients (32 and
5.25 in F(6x6,3x3)) amplify rounding errors (Barabasz, Anderson, Soodhalter & Gregg,
"Error analysis and improving the accuracy of Winograd convolution for deep neural
networks", ACM TOMS 46(4), 2020), so its errors are far beyond the direct bound.

The bound (derived here in the style of Higham, *Accuracy and Stability of Numerical
Algorithms*, 2nd ed., Lemma 3.1 and section 3.5). Every step is a linear map evaluated in
floating point with unit roundoff u. Assume each row of a 1-D transform is evaluated as
a sum of its nonzero terms, in any order and grouping (a dot product, or NNPACK's factored
butterflies), with FMAs or not, each input reaching an output along one path only: then
along any path there are at most nnz - 1 additions and, we assume, at most three rounded
multiplications or rounded constants (-2/9, 1/90, 1/180 are not floats), so each computed
entry is sum_j X_ij x_j (1 + theta_j), |theta_j| <= gamma_k, k = nnz + 2 per row
(NNPACK's own x86-64 F(6x6,3x3) code, read from its source, has at most 4 roundings on
any path of any pass: well within). Two passes (rows, then columns) compose as
(1 + theta_k)(1 + theta_k) = 1 + theta_2k (Lemma 3.3). Then, with kG, kB, kA the per-pass
depths of G, B^T and A^T, C the input channels summed per output (in any order: gamma_C,
each product included) and one more rounding for a bias added in the output transform,

    |Y^ - Y| <= gamma_K * E,   K = 2 kG + 2 kB + C + 2 kA + 1,
    E = sum_c |A^T| ( (|G| |g_c| |G^T|) (.) (|B^T| |d_c| |B|) ) |A|

elementwise over the tile: each term of the expanded sum carries at most K rounding
factors, and E is the sum of the absolute values of those terms. E depends on where the
output sits in its tile (the tile's whole input reaches every output's rounding), so it is
computed per tile from the data; tiles start at the output's origin and step by m (NNPACK:
`for (y = 0; y < output_size.height; y += output_tile_size.height)`), the input beyond
the padded image read as zeros.

Underflow and NNPACK's flush-to-zero (PTHREADPOOL_FLAG_DISABLE_DENORMALS) add at most
`tiny` (the format's smallest normal number) per rounded result; `absolute_term` bounds
their sum crudely: negligible unless the data are near the underflow threshold, where the
bound then becomes wide and the evidence rule refuses to decide.

Tile sizes and points: NNPACK's F(6x6,3x3) (wt8x8, its CPU algorithm for 3x3 kernels;
points 0, +-1, +-2, +-1/2, infinity, matrices read from src/scalar/winograd/f6x6k3x3.h),
and F(4x4,3x3) (points 0, +-1, +-2, infinity) and F(2x2,3x3) (0, +-1, infinity) with
Lavin & Gray's published matrices, the tile sizes GPU libraries (cuDNN) use. A library with other points or
a tile origin other than the output's is not covered: its outputs may stay unexplained
(the safe direction). Half-precision Winograd (transforms stored in float16) is not
modelled either. The engine adds this bound to the direct one (precision.error_bound) and
accepts a Winograd explanation only where the residual also shows the tile's error pattern
(engine._winograd_tile).
"""

from __future__ import annotations

from fractions import Fraction

import numpy as np

from .precision import gamma
from .windows import gather_windows


def _matrix(rows) -> np.ndarray:
    return np.array([[float(Fraction(x)) for x in row] for row in rows], dtype=np.float64)


# (A^T, G, B^T) per tile: Y = A^T [(G g G^T) (.) (B^T d B)] A is the 3x3 cross-correlation
# of the (m + 2)^2 tile d with g (checked exactly in tests/test_algorithm_winograd.py).
TRANSFORMS = {
    # NNPACK src/scalar/winograd/f6x6k3x3.h (same formulas in x86_64-fma/winograd/o6x6k3x3.py).
    "F(6x6,3x3)": (
        _matrix([[1, 1, 1, 1, 1, 32, 32, 0], [0, 1, -1, 2, -2, 16, -16, 0], [0, 1, 1, 4, 4, 8, 8, 0],
                 [0, 1, -1, 8, -8, 4, -4, 0], [0, 1, 1, 16, 16, 2, 2, 0], [0, 1, -1, 32, -32, 1, -1, 1]]),
        _matrix([[1, 0, 0], ["-2/9", "-2/9", "-2/9"], ["-2/9", "2/9", "-2/9"], ["1/90", "2/90", "4/90"],
                 ["1/90", "-2/90", "4/90"], ["4/180", "2/180", "1/180"], ["4/180", "-2/180", "1/180"], [0, 0, 1]]),
        _matrix([[1, 0, "-21/4", 0, "21/4", 0, -1, 0], [0, 1, 1, "-17/4", "-17/4", 1, 1, 0],
                 [0, -1, 1, "17/4", "-17/4", -1, 1, 0], [0, "1/2", "1/4", "-5/2", "-5/4", 2, 1, 0],
                 [0, "-1/2", "1/4", "5/2", "-5/4", -2, 1, 0], [0, 2, 4, "-5/2", -5, "1/2", 1, 0],
                 [0, -2, 4, "5/2", -5, "-1/2", 1, 0], [0, -1, 0, "21/4", 0, "-21/4", 0, 1]])),
    # Lavin & Gray (2016), section 4.2.
    "F(4x4,3x3)": (
        _matrix([[1, 1, 1, 1, 1, 0], [0, 1, -1, 2, -2, 0], [0, 1, 1, 4, 4, 0], [0, 1, -1, 8, -8, 1]]),
        _matrix([["1/4", 0, 0], ["-1/6", "-1/6", "-1/6"], ["-1/6", "1/6", "-1/6"], ["1/24", "1/12", "1/6"],
                 ["1/24", "-1/12", "1/6"], [0, 0, 1]]),
        _matrix([[4, 0, -5, 0, 1, 0], [0, -4, -4, 1, 1, 0], [0, 4, -4, -1, 1, 0], [0, -2, -1, 2, 1, 0],
                 [0, 2, -1, -2, 1, 0], [0, 4, 0, -5, 0, 1]])),
    # Lavin & Gray (2016), section 4.1.
    "F(2x2,3x3)": (
        _matrix([[1, 1, 1, 0], [0, 1, -1, -1]]),
        _matrix([[1, 0, 0], ["1/2", "1/2", "1/2"], ["1/2", "-1/2", "1/2"], [0, 0, 1]]),
        _matrix([[1, 0, -1, 0], [0, 1, 1, 0], [0, -1, 1, 0], [0, 1, 0, -1]])),
}


# The tile sizes whose rounding has a pattern to recognise (engine._winograd_tile): their
# amplification differs 8 to 13 times between positions of the tile. F(2x2,3x3)'s transforms
# are mirror-symmetric (|A^T|, |B^T| and |G| read the same backwards), so its two output
# positions per axis are amplified alike (1.3 to 1.6 times apart, from the kernel's own
# asymmetry): nothing tells its rounding from a direct sum's, and its coefficients (at most
# 1) keep it close to one; it stays in TRANSFORMS for the bound only.
RECOGNISABLE = ("F(6x6,3x3)", "F(4x4,3x3)")


def _depth(matrix: np.ndarray) -> int:
    """Roundings along any path of one 1-D pass: nnz - 1 additions + 3 (see module docstring)."""
    return int(np.max(np.count_nonzero(matrix, axis=1))) + 2


def rounding_count(tile: str, channels: int) -> int:
    """K: the rounding factors any term of a Winograd output carries (module docstring)."""
    at, g, bt = TRANSFORMS[tile]
    return 2 * _depth(g) + 2 * _depth(bt) + channels + 2 * _depth(at) + 1


def coefficient(tile: str, channels: int, u: float) -> float:
    """gamma_K(u), inflated by 2^-20 relative: E is computed in float64 as sums of nonnegative
    terms (a few thousand operations), so its own rounding is far below that."""
    return gamma(rounding_count(tile, channels), u) * (1.0 + 2.0 ** -20)


def tile_magnitudes(tiles: np.ndarray, kernel: np.ndarray, tile: str) -> np.ndarray:
    """E for every output of every tile: (T, m, m, O) from input tiles (T, a, a, C) and a dense
    HWIO (3, 3, C, O) kernel: sum_c |A^T| ((|G||g_c||G^T|) (.) (|B^T||d_c||B|)) |A|."""
    at, g, bt = (np.abs(x) for x in TRANSFORMS[tile])
    size = bt.shape[0]
    # |G| |g| |G^T| for every (c, o): (a, a, C, O).
    gk = np.einsum("ip,pqco,jq->ijco", g, np.abs(kernel), g, optimize=True)
    # |B^T| |d| |B| for every tile and channel: (a, a, T, C).
    dt = np.einsum("is,tsuc,ju->ijtc", bt, np.abs(tiles), bt, optimize=True)
    # sum over c of the elementwise product: one (T, C) x (C, O) product per transform point.
    m = np.matmul(dt.reshape(size * size, *dt.shape[2:]), gk.reshape(size * size, *gk.shape[2:]))
    m = m.reshape(size, size, *m.shape[1:])                      # (a, a, T, O)
    return np.einsum("ai,ijto,bj->tabo", at, m, at, optimize=True)


def absolute_term(tile: str, channels: int, tiny: float, kernel_max: float, image_max: float) -> float:
    """A crude bound on the absolute errors underflow or flush-to-zero can add to one output.

    Each rounded result, and each subnormal input read as zero, may be off by `tiny` (the
    smallest normal number) on top of its relative error. One output depends on at most
    10 a^3 (C + 1) of them: per channel 4 a^3 operations for each 2-D transform (2 a 1-D
    transforms of at most 2 a^2 operations), 2 a^2 for the products and sums and a^2 + 9
    inputs; 4 a^3 for the output transform. An error at one of them reaches the output
    multiplied by at most (a max|A|)^2 (output transform) times, when it arises inside a
    tile's or kernel's transform, (a max|B|)^2 or (a max|G|)^2 (the rest of that transform)
    times the other factor of the elementwise product, whose computed value is at most
    1 + 2 (a max|G|)^2 max|kernel| (resp. 1 + 2 (a max|B|)^2 max|image|).
    """
    at, g, bt = TRANSFORMS[tile]
    size = bt.shape[0]
    amp_a = (size * float(np.max(np.abs(at)))) ** 2
    amp_b = max(1.0, (size * float(np.max(np.abs(bt)))) ** 2)
    amp_g = max(1.0, (size * float(np.max(np.abs(g)))) ** 2)
    kernel_side = 1.0 + 2.0 * amp_g * kernel_max
    image_side = 1.0 + 2.0 * amp_b * image_max
    return tiny * 10 * size ** 3 * (channels + 1) * amp_a * (amp_b * kernel_side + amp_g * image_side + 1.0)


def error_bound_at(regions: np.ndarray, kernel: np.ndarray, samples: np.ndarray, rows: np.ndarray,
                   cols: np.ndarray, *, u: float, tiny: float, channels: int) -> np.ndarray:
    """The Winograd error bound at outputs (samples, rows, cols): (n, O), the largest over the
    tile sizes of `TRANSFORMS` (the computation may be any of them).

    `regions` (N, Ho + 2, Wo + 2, C) is what a 3x3 correlation reads for the (Ho, Wo) output
    (output (i, j) reads regions[:, i:i + 3, j:j + 3]), as the computation rounded it; the
    tiles read zeros beyond it. `kernel` is the dense HWIO (3, 3, C, O) kernel, `u` the unit
    roundoff, `tiny` the smallest normal number, `channels` the input channels per output.
    """
    image_max = float(np.max(np.abs(regions), initial=0.0))
    kernel_max = float(np.max(np.abs(kernel), initial=0.0))
    worst = np.zeros((rows.size, kernel.shape[3]))
    for tile in TRANSFORMS:
        m = TRANSFORMS[tile][0].shape[0]
        # One tile per distinct (sample, tile row, tile column) among the positions.
        keys = np.stack([samples, rows // m, cols // m], axis=1)
        unique, inverse = np.unique(keys, axis=0, return_inverse=True)
        tiles = gather_windows(regions, "zero", unique[:, 1] * m, unique[:, 2] * m, m + 2, m + 2,
                               samples=unique[:, 0])
        found = tile_magnitudes(tiles, kernel, tile)[inverse.reshape(-1), rows % m, cols % m]   # (n, O)
        bound = coefficient(tile, channels, u) * found
        bound += absolute_term(tile, channels, tiny, kernel_max, image_max)
        np.maximum(worst, bound, out=worst)
    return worst


def error_bounds(regions: np.ndarray, kernel: np.ndarray, out_hw, *, u: float, tiny: float,
                 channels: int) -> dict[str, np.ndarray]:
    """The Winograd error bound of each tile size at every output: {tile: (N, Ho, Wo, O)}
    (arguments as for `error_bound_at`)."""
    batch, outs = regions.shape[0], kernel.shape[3]
    image_max = float(np.max(np.abs(regions), initial=0.0))
    kernel_max = float(np.max(np.abs(kernel), initial=0.0))
    bounds = {}
    for tile in TRANSFORMS:
        m = TRANSFORMS[tile][0].shape[0]
        tiles_h, tiles_w = -(-out_hw[0] // m), -(-out_hw[1] // m)
        top, left = np.meshgrid(np.arange(tiles_h) * m, np.arange(tiles_w) * m, indexing="ij")
        scale = coefficient(tile, channels, u)
        absolute = absolute_term(tile, channels, tiny, kernel_max, image_max)
        bound = np.empty((batch, out_hw[0], out_hw[1], outs))
        for n in range(batch):
            tiles = gather_windows(regions[n], "zero", top.ravel(), left.ravel(), m + 2, m + 2)
            mags = tile_magnitudes(tiles, kernel, tile).reshape(tiles_h, tiles_w, m, m, outs)
            bound[n] = mags.transpose(0, 2, 1, 3, 4).reshape(tiles_h * m, tiles_w * m, outs)[:out_hw[0], :out_hw[1]]
        bound *= scale
        bound += absolute
        bounds[tile] = bound
    return bounds


def tile_size(tile: str) -> int:
    """m, the output tile's side."""
    return TRANSFORMS[tile][0].shape[0]
