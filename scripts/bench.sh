#!/usr/bin/env bash
# Usage: scripts/bench.sh [DIR]
#   Reproduces the README's benchmark on this machine (quiet machine, ~30 min): makes a 3-hour
#   corpus (45 songs of 4 min, LAME VBR) and a 12-hour one (the same files linked 4 times under
#   new track ids: same decode work, no hour of encoding), a 3-hour 320 kbps mp3 for --memory,
#   then runs the benchmark scripts in benchmarks/ (python -m benchmarks.<script>) for each
#   figure. Tables, plots and summary.json land in DIR/results.
#   With the loopback services (scripts/local-services.sh), also the remote-store figures:
#   throughput from HDFS and S3, a worker's peak RSS reading from S3, the N-files scale table.
#   Safe to rerun: corpora are reused. DIR defaults to build/bench.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/install.sh
dir=${1:-build/bench}
fmaprep=.venv/bin/fmaprep
bench=(.venv/bin/python -m benchmarks.bench)
mkdir -p "$dir/results"

[[ -d $dir/corpus3h ]] || $fmaprep demo "$dir/corpus3h" --tracks 45 --seconds 240 --encoder ffmpeg
if [[ ! -d $dir/corpus12h ]]; then
  .venv/bin/python - "$dir/corpus3h" "$dir/corpus12h.tmp" <<'PY'
import os, sys
from pathlib import Path
src, dest = Path(sys.argv[1]), Path(sys.argv[2])
for copy in range(1, 5):
    for mp3 in sorted(src.rglob("*.mp3")):
        track = f"{int(mp3.stem) + 100000 * copy:06d}"
        target = dest / track[:3] / f"{track}.mp3"
        target.parent.mkdir(parents=True, exist_ok=True)
        os.link(mp3, target)
PY
  mv "$dir/corpus12h.tmp" "$dir/corpus12h"
fi
if [[ ! -f $dir/big.mp3 ]]; then
  .venv/bin/python - "$dir/big.mp3" <<'PY'
import subprocess, sys, tempfile
import soundfile as sf
from fmaprep.audio.decode import ffmpeg_exe
from fmaprep.audio.synth import music
with tempfile.TemporaryDirectory() as tmp:
    sf.write(f"{tmp}/piece.wav", music(32.0, 44100, seed=7, stereo=True), 44100, subtype="PCM_16")
    subprocess.run([ffmpeg_exe(), "-nostdin", "-v", "error", "-y", "-stream_loop", "338",
                    "-i", f"{tmp}/piece.wav", "-t", "10800", "-c:a", "libmp3lame", "-b:a", "320k",
                    f"{sys.argv[1]}.tmp.mp3"], check=True)
PY
  mv "$dir/big.mp3.tmp.mp3" "$dir/big.mp3"
fi

r=$dir/results
"${bench[@]}" "$dir/corpus3h" --masters 'local[1],local[2]' --repeat 5 --baselines --out "$r/3h"
"${bench[@]}" "$dir/corpus12h" --masters 'local[1],local[2]' --repeat 3 --out "$r/12h"
if [[ ! -d $dir/corpus1 ]]; then
  mkdir -p "$dir/corpus1"
  ln "$(find "$dir/corpus3h" -name '*.mp3' | sort | head -1)" "$dir/corpus1/"
fi
"${bench[@]}" "$dir/corpus1" --masters 'local[2]' --repeat 5 --out "$r/1file"
"${bench[@]}" "$dir/big.mp3" --memory --out "$r/memory"
"${bench[@]}" "$dir/corpus3h" --masters 'local[2]' --configs original --repeat 1 --out "$r/3h-original"
"${bench[@]}" "$dir/corpus12h" --masters 'local[2]' --configs original --repeat 1 --out "$r/12h-original"
# the decode process against decoding in the worker (issue 14), job-level and per file
"${bench[@]}" "$dir/corpus3h" --masters 'local[2]' --configs default,in-worker --repeat 9 \
  --out "$r/isolation"
.venv/bin/python -m benchmarks.isolation "$dir/corpus3h" >"$r/isolation.json"
# read_records with the pickle allowlist against trusted, on the 3-hour corpus's output
[[ -f $dir/out3h/_SUCCESS ]] ||
  $fmaprep -q preprocess "$dir/corpus3h" "$dir/out3h" --master 'local[2]' --mode overwrite
.venv/bin/python -m benchmarks.readspeed "$dir/out3h" >"$r/readspeed.json"

# Remote stores (issue 12): needs the loopback services; skipped when they cannot start.
if bash scripts/local-services.sh up >/dev/null; then
  eval "$(bash scripts/local-services.sh env)"
  # the 3-hour corpus from local disk, HDFS and S3, round-robin: each store's share of local's
  .venv/bin/python -m benchmarks.scale --throughput "$dir/corpus3h" --repeat 3 \
    --out "$r/throughput.jsonl"
  # a worker's peak RSS on the 3-hour 320 kbps mp3 read from S3
  .venv/bin/python - "$dir/big.mp3" "$r/memory-s3.json" <<'PY'
import json, os, sys, uuid
from pathlib import Path
from benchmarks.memory import worker_peak_rss
from fmaprep.storage.clients import StoreSettings, open_store
src = Path(sys.argv[1])
dest = f"s3a://{os.environ['FMAPREP_S3_BUCKET']}/memory-{uuid.uuid4().hex[:6]}"
store = open_store(dest, StoreSettings.from_env())
with store.open_write(f"{dest}/{src.name}") as w, src.open("rb") as f:
    while block := f.read(8 << 20):
        w.write(block)
    w.commit()
peak = worker_peak_rss(f"{dest}/{src.name}")
Path(sys.argv[2]).write_text(json.dumps({"input": "s3", "worker_peak_rss_mb": round(peak, 1)}))
print(f"worker peak RSS, 3-hour mp3 from S3: {peak:.0f} MB")
PY
  # commit time on S3 for outputs of 100 and 2,000 parts (new run and overwrite)
  .venv/bin/python -m benchmarks.scale --commit-parts 100,2000 --out "$r/commit.jsonl"
  # fetch-dataset of a 1 GB archive cut at 5 points, to local disk and unpacked in place into S3
  .venv/bin/python -m benchmarks.fetch --mb 1024 --drops 5 \
    --s3 "s3a://$FMAPREP_S3_BUCKET/fetch-$(date +%s)" >"$r/fetch.jsonl"
  # N tiny files on each store, with and without 20 ms per S3 request (~20 min)
  .venv/bin/python -m benchmarks.scale --stores local,hdfs,s3,s3+20ms \
    --sizes 1000,5000,20000 --out "$r/scale.jsonl"
else
  echo "bench.sh: local services did not start; remote-store figures skipped" >&2
fi
