#!/bin/bash
# The trainer's GPU checks in one go, for a machine with PyTorch and CUDA but no Spark or Java:
# the trainer test files (their CUDA tests run there; nothing in them needs Spark), the SGNS
# benchmark against gensim on both corpora, seeds 1-3, and fasttext's GPU rows (bench_subword_gpu.py:
# CUDA vs CPU trainer vs gensim FastText on the Korean dev set and the text8 prefix; issue 22's target
# >= 10M words/s at the CPU trainer's quality). Run from the repository root.
#
# gensim is not on such machines; carry it as wheels fetched on a machine with pip access:
#   python3 -m pip download --no-deps --only-binary=:all: --python-version 3.12 --implementation cp \
#       --platform manylinux_2_28_x86_64 --platform manylinux_2_27_x86_64 --platform manylinux_2_17_x86_64 \
#       -d .whl gensim==4.4.0 smart_open
# (numba-cuda 0.30.4 and numba 0.68.0 register np.row_stack, which NumPy 2.5 dropped: pairwise_cuda
# restores the alias, and the CUDA tests passed on an H200 image with those versions on NumPy 2.5.2.)
# fasttext's rows need the data, which does not travel from ../shared/data: here, once,
#   echo /.gpu-data/ >> .git/info/exclude; python tests/benchmarks/bench_subword_gpu.py --copy-data .gpu-data
# and carry .gpu-data with .whl (about 14 MB with gensim's 27 MB: within the 64 MiB a call carries).
# With .whl/ present this installs them into /tmp/site first. Output goes to $OUT (default: out/gpu).
# The default row is the trainer's own choice (the warp-per-window pairwise kernel of
# embedpipe/torchtrain/pairwise_cuda.py where numba-cuda can run it). Rows besides it: ROWS (default
# "kernel=batched", the batched step it falls back to; bench_sgns_core.py --rows: SGNSParams keys and the
# trainer's test hooks kernel=, batch_size=), e.g. ROWS="kernel=batched,batch_size=32768".
# To fit a short device lease: TESTS_K (a pytest -k expression; default: every trainer test), REPEATS
# (seeds per system, default 3), BENCHES (default "sgns fasttext"; e.g. BENCHES=fasttext), FASTTEXT_WORDS
# (the corpus prefix in whitespace words, default 1000000 as in docs/benchmarks.md; 0: whole corpora),
# FASTTEXT_RUNS (default "cuda gensim cpu") and STEP_TIMEOUT (seconds per step, default 1800; a step cut
# off still leaves its per-run lines, words/s and quality included, in $OUT).
set -u
OUT=${OUT:-out/gpu}
mkdir -p "$OUT"
export PYTHONUNBUFFERED=1
if compgen -G ".whl/*.whl" > /dev/null; then
    python3 -m pip install -q --no-index --no-deps --no-compile --no-cache-dir --upgrade --target /tmp/site .whl/*.whl \
        || { echo "gpu_check: installing the carried wheels failed" >&2; exit 1; }
    export PYTHONPATH=/tmp/site:$PWD
else
    export PYTHONPATH=$PWD${PYTHONPATH:+:$PYTHONPATH}
fi
python3 -c "import torch, sys; sys.exit(0 if torch.cuda.is_available() else 'gpu_check: no CUDA device')" || exit 1
{ nvidia-smi --query-gpu=name,driver_version,memory.total --format=csv
  python3 -c "import torch, gensim; print('torch', torch.__version__, 'gensim', gensim.__version__, torch.cuda.get_device_name())"
  python3 -c "import numba, importlib.metadata as m; from numba import cuda; print('numba', numba.__version__, 'numba-cuda', m.version('numba-cuda'), 'cuda target available:', cuda.is_available())"
} 2>&1 | tee "$OUT/device.txt"
status=0
STEP_TIMEOUT=${STEP_TIMEOUT:-1800}
timeout "$STEP_TIMEOUT" python3 -m pytest -q -p no:cacheprovider -rs ${TESTS_K:+-k "$TESTS_K"} tests/unit/test_torchtrain_sgns.py tests/unit/test_torchtrain_planted.py \
    tests/unit/test_torchtrain_bagmodel.py tests/unit/test_torchtrain_pairwise.py tests/unit/test_torchtrain_pairwise_cuda.py \
    tests/unit/test_torchtrain_subword_cuda.py 2>&1 | tail -8 | tee "$OUT/tests.log"
[ "${PIPESTATUS[0]}" -eq 0 ] || status=1
rows=()
ROWS=${ROWS-kernel=batched}
[ -n "$ROWS" ] && rows=(--rows $ROWS)
BENCHES=${BENCHES-sgns fasttext}
[[ " $BENCHES " == *" sgns "* ]] && for corpus in "wiki" "demo --demo-documents 2000000"; do
    timeout "$STEP_TIMEOUT" python3 tests/benchmarks/bench_sgns_core.py --device cuda --corpus $corpus --tokens 0 \
        --epochs 5 --threads "$(nproc)" --repeats "${REPEATS:-3}" --vary-seed "${rows[@]}" 2>&1 \
        | tee "$OUT/bench-${corpus%% *}.log"
    [ "${PIPESTATUS[0]}" -eq 0 ] || status=1
done
if [[ " $BENCHES " == *" fasttext "* ]]; then
    if [ -d .gpu-data ]; then
        for corpus in korean text8; do
            timeout "$STEP_TIMEOUT" python3 tests/benchmarks/bench_subword_gpu.py --data .gpu-data --corpus $corpus \
                --words "${FASTTEXT_WORDS:-1000000}" --runs ${FASTTEXT_RUNS:-cuda gensim cpu} --out "$OUT" 2>&1 \
                | tee "$OUT/bench-fasttext-$corpus.log"
            [ "${PIPESTATUS[0]}" -eq 0 ] || status=1
        done
    else
        echo "gpu_check: no .gpu-data, so no fasttext rows (python tests/benchmarks/bench_subword_gpu.py --copy-data .gpu-data here, then carry it)" >&2
        status=1
    fi
fi
exit $status
