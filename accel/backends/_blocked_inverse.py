"""Inverse of a symmetric positive definite matrix in its own buffer, by blocks.

The algorithm is written once against a tiny BLAS-like interface (:class:`BlasExecutor`)
so that the exact loop, index and flag structure the CuPy backend runs on cuBLAS /
cuSOLVER is the one tested here with NumPy / SciPy BLAS (:class:`NumpyExecutor`).

Conventions (as in BLAS/LAPACK): every matrix operand is **column-major**. The n × n
buffer is a flat array ``flat`` of n² elements and ``M`` is that buffer read
column-major with leading dimension n, so ``M[r, c]`` is ``flat[r + c * n]``. A
C-ordered array ``A`` over the same memory is ``M``'s transpose; for a symmetric
``A`` the two are the same matrix, so only which *triangle* is used matters: the
lower triangle of ``M`` is the upper triangle of ``A``. An operand is a
:class:`Ref` (buffer, element offset, leading dimension) — the same triple a
cuBLAS call takes as (pointer, lda).

Steps, all in the one buffer plus small workspaces:

1. Cholesky ``M = L Lᵀ`` into the lower triangle (cuSOLVER ``Xpotrf`` on the whole
   matrix, or :func:`cholesky_lower_blocked` built from small ``potrf`` + ``trsm`` + ``syrk``).
2. ``L ← L⁻¹`` by block rows, top to bottom (:func:`invert_lower_triangular`): each
   step is two b-wide triangular solves and one GEMM that updates every row below,
   then the diagonal block is inverted by a triangular solve against the identity.
   No call sees more than a b-wide panel, so nothing hits the 32-bit size limits of
   cuSOLVER's ``trtri``/``potri`` (they refuse n > 46340).
3. ``P = L⁻ᵀ L⁻¹`` by rank-b updates, block row by block row (:func:`lower_gram_inplace`):
   one SYRK and one TRMM per block row; the only workspace is one b × b block.
4. The lower triangle is mirrored onto the upper one (:func:`symmetrize_from_lower`).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, Literal, Protocol

import numpy as np
from numpy.lib.stride_tricks import as_strided
from scipy.linalg import blas, lapack

Side = Literal["L", "R"]
Uplo = Literal["L", "U"]
Trans = Literal["N", "T"]

#: Default block size: panel width of the triangular solves and side of the b × b workspace.
DEFAULT_BLOCK_SIZE = 1024
#: ``on_block(done, total)``: called after each block of :func:`spd_inverse_flat`, ``done`` counting up to
#: ``total``. Control returns to Python there, so a KeyboardInterrupt stops the inverse within a block.
OnBlock = Callable[[int, int], None]


def _no_tick() -> None:
    """The default per-block hook of the phases: nothing to report."""


@dataclass(frozen=True)
class Ref:
    """A column-major operand: flat array ``buf``, element offset ``off``, leading dimension ``ld``."""

    buf: Any
    off: int
    ld: int

    def check_inside(self, rows: int, cols: int) -> None:
        """Raise ``ValueError`` unless the ``rows × cols`` operand here lies inside ``buf``."""
        if rows and cols and (self.off < 0 or self.off + (cols - 1) * self.ld + rows > self.buf.size):
            raise ValueError(f"a {rows} × {cols} operand at offset {self.off} overruns its buffer")


class BlasExecutor(Protocol):
    """The few dense kernels the algorithm needs, with BLAS (column-major) semantics.

    Triangular operands are always non-unit diagonal. ``alpha``/``beta`` are host scalars.
    """

    @property
    def xp(self) -> Any:
        """The array module (NumPy or CuPy) that :meth:`view` arrays belong to."""

    def empty(self, size: int) -> Any:
        """A flat workspace of ``size`` elements of the working dtype."""

    def view(self, ref: Ref, rows: int, cols: int) -> Any:
        """A writable 2-D array of the column-major ``rows × cols`` matrix at ``ref``."""

    def potrf(self, n: int, a: Ref) -> int:
        """Lower Cholesky of the ``n × n`` matrix at ``a`` in place; LAPACK ``info`` (0 = success)."""

    def trsm(
        self, side: Side, uplo: Uplo, trans: Trans, m: int, n: int, alpha: float, a: Ref, b: Ref
    ) -> None:
        """``B ← alpha · op(A)⁻¹ · B`` (side L) or ``B ← alpha · B · op(A)⁻¹`` (side R); B is m × n."""

    def trmm(
        self, side: Side, uplo: Uplo, trans: Trans, m: int, n: int, alpha: float, a: Ref, b: Ref
    ) -> None:
        """``B ← alpha · op(A) · B`` (side L) or ``B ← alpha · B · op(A)`` (side R), in place; B is m × n."""

    def gemm(
        self,
        transa: Trans,
        transb: Trans,
        m: int,
        n: int,
        k: int,
        alpha: float,
        a: Ref,
        b: Ref,
        beta: float,
        c: Ref,
    ) -> None:
        """``C ← alpha · op(A) · op(B) + beta · C`` with C m × n and inner dimension k."""

    def syrk(
        self, uplo: Uplo, trans: Trans, n: int, k: int, alpha: float, a: Ref, beta: float, c: Ref
    ) -> None:
        """``C ← alpha · op(A) · op(A)ᵀ + beta · C`` on the ``uplo`` triangle of the n × n C."""


def _block_starts(n: int, block: int) -> range:
    if block < 1:
        raise ValueError(f"block size must be >= 1, got {block}")
    return range(0, n, block)


def cholesky_lower_blocked(
    ex: BlasExecutor, flat: Any, n: int, block: int, tick: Callable[[], None] = _no_tick
) -> int:
    """Right-looking blocked Cholesky of ``M`` into its lower triangle; LAPACK-style ``info``.

    Used when cuSOLVER's 64-bit ``Xpotrf`` cannot be loaded: every ``potrf`` call is on
    one diagonal block only, the rest is ``trsm`` and ``syrk`` (which honour cuBLAS's
    TF32 math mode).
    """
    for j in _block_starts(n, block):
        jb = min(block, n - j)
        r = j + jb
        info = ex.potrf(jb, Ref(flat, j + j * n, n))
        if info != 0:
            return j + info
        if r < n:
            # L21 = A21 · L11⁻ᵀ, then the trailing update A22 -= L21 · L21ᵀ (lower triangle).
            ex.trsm("R", "L", "T", n - r, jb, 1.0, Ref(flat, j + j * n, n), Ref(flat, r + j * n, n))
            ex.syrk("L", "N", n - r, jb, -1.0, Ref(flat, r + j * n, n), 1.0, Ref(flat, r + r * n, n))
        tick()
    return 0


def invert_lower_triangular(
    ex: BlasExecutor, flat: Any, n: int, block: int, tick: Callable[[], None] = _no_tick
) -> None:
    """``L ← L⁻¹`` in the lower triangle of ``M``; the strict upper part of each diagonal block becomes 0.

    Right-looking, by block rows top to bottom, so that the bulk of the work is one
    GEMM per block. Before block j (rows j..r−1), every row ≥ j holds, in the
    columns < j, ``T = −Σₖ L[·,k] · X[k,·]`` over the finished blocks k < j, where
    ``X = L⁻¹``; block j's own columns still hold the factor. Step j: the row block
    becomes ``X[j, :j] = L_jj⁻¹ · T[j, :j]`` (TRSM); the rows below add
    ``−L[r:, j] · X[j, :j]`` (GEMM, reading block column j while it is still the
    factor) and then take ``T[r:, j] = −L[r:, j] · L_jj⁻¹`` in its place (TRSM);
    finally ``L_jj`` itself is inverted by a triangular solve against the identity.
    The zeros above the diagonal of each inverted diagonal block let
    :func:`lower_gram_inplace` take each block row whole.
    """
    xp = ex.xp
    work = ex.empty(min(block, n) ** 2)
    for j in _block_starts(n, block):
        jb = min(block, n - j)
        r = j + jb
        diag = Ref(flat, j + j * n, n)
        if j:
            ex.trsm("L", "L", "N", jb, j, 1.0, diag, Ref(flat, j, n))
        if r < n:
            panel = Ref(flat, r + j * n, n)
            if j:
                ex.gemm("N", "N", n - r, j, jb, -1.0, panel, Ref(flat, j, n), 1.0, Ref(flat, r, n))
            ex.trsm("R", "L", "N", n - r, jb, -1.0, diag, panel)
        inverse = Ref(work, 0, jb)
        inverse_view = ex.view(inverse, jb, jb)
        inverse_view[...] = xp.eye(jb, dtype=inverse_view.dtype)
        ex.trsm("L", "L", "N", jb, jb, 1.0, diag, inverse)
        ex.view(diag, jb, jb)[...] = xp.tril(inverse_view)
        tick()


def lower_gram_inplace(
    ex: BlasExecutor, flat: Any, n: int, block: int, tick: Callable[[], None] = _no_tick
) -> None:
    """``P = Lᵀ · L`` for the lower-triangular ``L`` in ``M``; P's lower triangle replaces L.

    Needs the strict upper part of every diagonal block of ``M`` to be zero (as left
    by :func:`invert_lower_triangular`). ``P = Σⱼ L[j, :r]ᵀ · L[j, :r]`` over the block
    rows j (r = j + jb), taken top to bottom: block row j adds its product with itself
    to the finished-so-far triangle ``P[:j, :j]`` (SYRK, the bulk of the work), then
    becomes P's rows j..r−1, ``L_jjᵀ · L[j, :r]`` (TRMM against a copy of its b × b
    diagonal block), since no later block row reaches them.
    """
    work = ex.empty(min(block, n) ** 2)
    for j in _block_starts(n, block):
        jb = min(block, n - j)
        r = j + jb
        if j:
            ex.syrk("L", "T", j, jb, 1.0, Ref(flat, j, n), 1.0, Ref(flat, 0, n))
        diag = Ref(work, 0, jb)
        ex.view(diag, jb, jb)[...] = ex.view(Ref(flat, j + j * n, n), jb, jb)
        ex.trmm("L", "L", "T", jb, r, 1.0, diag, Ref(flat, j, n))
        tick()


def symmetrize_from_lower(ex: BlasExecutor, flat: Any, n: int, block: int) -> None:
    """Copy the lower triangle of ``M`` onto its upper triangle, one block row at a time."""
    xp = ex.xp
    for i in _block_starts(n, block):
        ib = min(block, n - i)
        r = i + ib
        diag = ex.view(Ref(flat, i + i * n, n), ib, ib)
        diag[...] = xp.tril(diag) + xp.tril(diag, -1).T
        if r < n:  # the written side runs along its contiguous axis
            ex.view(Ref(flat, i + r * n, n), ib, n - r).T[...] = ex.view(Ref(flat, r + i * n, n), n - r, ib)


class _BlockCounter:
    """Counts the blocks finished across the phases of one inverse and reports each to ``on_block``."""

    def __init__(self, total: int, on_block: OnBlock | None) -> None:
        self.done, self.total, self.on_block = 0, total, on_block

    def __call__(self) -> None:
        self.done += 1
        if self.on_block is not None:
            self.on_block(self.done, self.total)


def spd_inverse_flat(
    ex: BlasExecutor,
    flat: Any,
    n: int,
    block: int = DEFAULT_BLOCK_SIZE,
    blocked_cholesky: bool = False,
    on_block: OnBlock | None = None,
) -> None:
    """Overwrite the symmetric positive definite n × n matrix in ``flat`` with its inverse (both triangles).

    ``on_block`` is called after every block of the blocked phases (the Cholesky when
    ``blocked_cholesky``, the triangular inverse, ``LᵀL``). Raises
    :class:`numpy.linalg.LinAlgError` when the Cholesky factorisation fails.
    """
    if n == 0:
        return
    blocks = len(_block_starts(n, block))
    tick = _BlockCounter(blocks * (3 if blocked_cholesky else 2), on_block)
    if blocked_cholesky:
        info = cholesky_lower_blocked(ex, flat, n, block, tick)
    else:
        info = ex.potrf(n, Ref(flat, 0, n))
    if info > 0:
        raise np.linalg.LinAlgError(
            f"matrix is not positive definite (leading minor {info} of {n}); increase l2"
        )
    if info < 0:
        raise ValueError(f"potrf rejected argument {-info}")
    invert_lower_triangular(ex, flat, n, block, tick)
    lower_gram_inplace(ex, flat, n, block, tick)
    symmetrize_from_lower(ex, flat, n, block)


def workspace_elements(n: int, block: int = DEFAULT_BLOCK_SIZE) -> int:
    """Elements of workspace :func:`spd_inverse_flat` allocates beyond the n² buffer: one b × b block."""
    return min(block, n) ** 2


class NumpyExecutor:
    """:class:`BlasExecutor` on NumPy arrays through SciPy's BLAS/LAPACK, for testing the algorithm.

    Operands are strided NumPy views of the flat buffers, so every (offset, leading
    dimension) computed by the algorithm is exercised exactly as a cuBLAS call would
    see it. SciPy copies strided operands in and the result is written back.
    """

    xp = np

    def __init__(self, dtype: np.dtype | type = np.float64) -> None:
        self.dtype = np.dtype(dtype)
        probe = np.empty((1, 1), dtype=self.dtype)
        self._trsm, self._trmm, self._gemm, self._syrk = blas.get_blas_funcs(
            ("trsm", "trmm", "gemm", "syrk"), (probe,)
        )
        (self._potrf,) = lapack.get_lapack_funcs(("potrf",), (probe,))

    def empty(self, size: int) -> np.ndarray:
        return np.empty(size, dtype=self.dtype)

    def view(self, ref: Ref, rows: int, cols: int) -> np.ndarray:
        item = ref.buf.itemsize
        return as_strided(ref.buf[ref.off :], shape=(rows, cols), strides=(item, item * ref.ld))

    def potrf(self, n: int, a: Ref) -> int:
        view = self.view(a, n, n)
        factor, info = self._potrf(np.asfortranarray(view), lower=1, clean=0)
        if info == 0:
            view[...] = factor
        return int(info)

    def trsm(
        self, side: Side, uplo: Uplo, trans: Trans, m: int, n: int, alpha: float, a: Ref, b: Ref
    ) -> None:
        self._triangular(self._trsm, side, uplo, trans, m, n, alpha, a, b)

    def trmm(
        self, side: Side, uplo: Uplo, trans: Trans, m: int, n: int, alpha: float, a: Ref, b: Ref
    ) -> None:
        self._triangular(self._trmm, side, uplo, trans, m, n, alpha, a, b)

    def _triangular(
        self, routine: Any, side: Side, uplo: Uplo, trans: Trans, m: int, n: int, alpha: float, a: Ref, b: Ref
    ) -> None:
        """SciPy's ``trsm`` or ``trmm`` (the same arguments), non-unit diagonal, written back into B."""
        k = m if side == "L" else n
        b_view = self.view(b, m, n)
        b_view[...] = routine(
            alpha,
            self.view(a, k, k),
            np.array(b_view, order="F"),
            side=int(side == "R"),
            lower=int(uplo == "L"),
            trans_a=int(trans == "T"),
            diag=0,
        )

    def gemm(
        self,
        transa: Trans,
        transb: Trans,
        m: int,
        n: int,
        k: int,
        alpha: float,
        a: Ref,
        b: Ref,
        beta: float,
        c: Ref,
    ) -> None:
        a_view = self.view(a, *((m, k) if transa == "N" else (k, m)))
        b_view = self.view(b, *((k, n) if transb == "N" else (n, k)))
        c_view = self.view(c, m, n)
        c_init = np.array(c_view, order="F") if beta != 0 else np.zeros((m, n), dtype=self.dtype, order="F")
        c_view[...] = self._gemm(
            alpha, a_view, b_view, beta=beta, c=c_init, trans_a=int(transa == "T"), trans_b=int(transb == "T")
        )

    def syrk(
        self, uplo: Uplo, trans: Trans, n: int, k: int, alpha: float, a: Ref, beta: float, c: Ref
    ) -> None:
        a_view = self.view(a, *((n, k) if trans == "N" else (k, n)))
        c_view = self.view(c, n, n)
        c_view[...] = self._syrk(
            alpha,
            a_view,
            beta=beta,
            c=np.array(c_view, order="F"),
            trans=int(trans == "T"),
            lower=int(uplo == "L"),
        )


def spd_inverse_inplace_numpy(
    A: np.ndarray, block: int = DEFAULT_BLOCK_SIZE, blocked_cholesky: bool = False
) -> np.ndarray:
    """Reference driver: run :func:`spd_inverse_flat` on a C-ordered NumPy array in place."""
    if A.ndim != 2 or A.shape[0] != A.shape[1] or not A.flags.c_contiguous:
        raise ValueError("expected a square C-contiguous array")
    spd_inverse_flat(NumpyExecutor(A.dtype), A.reshape(-1), A.shape[0], block, blocked_cholesky)
    return A
