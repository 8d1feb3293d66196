"""Compile the pairwise CUDA kernels (SGNS's and fastText's) for a GPU architecture without a GPU, and report
their resources.

Catches what numba's CUDA simulator cannot: code the CUDA target does not compile, and register or
shared-memory use that would limit the warps a multiprocessor holds (see
``embedpipe/torchtrain/pairwise_cuda.py``, ``WARPS_PER_SM``). Needs, in a separate environment (they
are not embedpipe dependencies)::

    python -m venv /tmp/cc && /tmp/cc/bin/pip install numba-cuda nvidia-cuda-nvcc-cu12 \\
        nvidia-cuda-nvrtc-cu12 torch==2.13.0 pyarrow
    PYTHONPATH=. /tmp/cc/bin/python tests/benchmarks/cuda_compile_check.py [--cc 9.0]

Measured 2026-11-26 (numba-cuda 0.30.4, NVVM 7.0.1, ptxas 12.9, sm_90): 72 registers per thread,
no spills, 512 bytes of stack, 4096 bytes of shared memory per block. 2026-12-03 (numba-cuda 0.30.4,
nvidia-cuda-nvcc-cu12 12.9.86, sm_90): SGNS's 48 registers (the same at the commit before fastText's kernel),
512 bytes of stack; fastText's 48 registers, no spills, 576 bytes of stack (its third per-lane array),
4096 bytes of shared memory: both fit :data:`~embedpipe.torchtrain.pairwise_cuda.WARPS_PER_SM` blocks.
"""

from __future__ import annotations

import argparse
import subprocess
import sys
import tempfile
import types
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[2]))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--cc", default="9.0", help="compute capability, e.g. 8.0 (A100) or 9.0 (H100)")
    args = parser.parse_args()
    cc = tuple(int(part) for part in args.cc.split("."))

    import numba.cuda.dispatcher as dispatcher
    from numba import cuda, float32, float64, int64

    # device functions compile for "the current device"; there is none, so name the architecture
    dispatcher.get_current_device = lambda: types.SimpleNamespace(compute_capability=cc)

    from embedpipe.torchtrain import pairwise_cuda

    matrices = (float32[:, ::1], float32[:, ::1])
    windows = (int64[::1], int64[:, ::1], float32[:, ::1], float64[::1], int64[::1])  # centers .. alias
    scalars = (int64, float32, int64, float64[::1])  # negative, lr, seed, losses
    csr = (int64[::1], int64[::1])  # fastText's offsets, rows
    for name, subwords, signature in (("sgns", False, matrices + windows + scalars),
                                      ("fasttext", True, matrices + csr + windows + scalars)):
        ptx, _ = cuda.compile_ptx(pairwise_cuda._kernel(subwords).py_func, signature, cc=cc)
        print(f"{name}: PTX for sm_{cc[0]}{cc[1]}: {len(ptx):,} characters")
        report(ptx, cc)


def report(ptx: str, cc: tuple[int, ...]) -> None:
    """ptxas's registers, spills, stack and shared memory for ``ptx``."""
    ptxas = next(Path(sys.prefix).glob("lib/python*/site-packages/nvidia/cuda_nvcc/bin/ptxas"), None)
    if ptxas is None:
        print("ptxas not found (pip install nvidia-cuda-nvcc-cu12) - no resource report")
        return
    with tempfile.TemporaryDirectory() as tmp:
        source = Path(tmp) / "kernel.ptx"
        source.write_text(ptx)
        done = subprocess.run(
            [str(ptxas), f"-arch=sm_{cc[0]}{cc[1]}", "-v", "-o", str(Path(tmp) / "kernel.cubin"), str(source)],
            capture_output=True, text=True, check=True,
        )
    print("\n".join(line for line in done.stderr.splitlines() if "Used" in line or "spill" in line))


if __name__ == "__main__":
    main()
