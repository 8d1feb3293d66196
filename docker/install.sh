#!/usr/bin/env bash
# The one install step of embedpipe: .ci/run (the tests), docker/Dockerfile (the image) and the README's
# set-up line all run this same pip command, so the image is built exactly the way CI tests it.
# Run it inside the target environment (a venv, or the image's system Python); extra pip options
# (e.g. --quiet) are passed through.
#   constraints-cpu.txt   pins the CPU build of torch and pandas 2.x (leave it out on GPU machines)
#   torch                 the sgns trainer
#   dev                   pytest, chispa, ..., and gensim, whose copies of WordSim-353/SimLex-999/Google
#                         analogies are the 'builtin' evaluation files the nightly gate uses
#   airflow               Airflow 3 and the Apache Spark provider (the nightly DAG)
#   index                 faiss-cpu (embedpipe index, neighbors --method index)
set -euo pipefail
cd "$(dirname "$0")/.."
python -m pip install "$@" -c constraints-cpu.txt -e ".[torch,dev,airflow,index,korean]"
