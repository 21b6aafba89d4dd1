#!/usr/bin/env bash
# Usage: scripts/demo.sh [N_TRACKS]
#   Sets up .venv, makes a demo corpus of real mp3s from synthetic music (build/demo/corpus,
#   FMA layout), runs the preprocess job on it with local[*] (build/demo/out) and prints a summary.
#   Safe to rerun: the corpus is reused and the output is replaced.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/install.sh
n_tracks=${1:-24}
corpus=build/demo/corpus
out=build/demo/out
.venv/bin/fmaprep demo "$corpus" --tracks "$n_tracks"
.venv/bin/fmaprep preprocess "$corpus" "$out" --mode overwrite
.venv/bin/fmaprep inspect "$out"
