#!/usr/bin/env bash
# On the GPU machine (device tool, carry [".gpu-wheels"]): install the carried wheels and
# merc-bench's entry points into a scratch folder (the image has torch but no pydantic, MLflow or
# SQLAlchemy, and no network), run a tracked 2-epoch `merc-bench run sdt` on the device whose GPU
# facts MLflow records (printed from the store), then benchmarks/gpu_check.py for at most
# CHECK_SECONDS (default 480; arguments are passed on, e.g. --epochs 2). Results go to $OUT (the
# device tool's folder) or a temp folder.
# DEVICE=cpu PYTHON=… runs the same steps on a machine without a GPU.
set -euo pipefail
cd "$(dirname "$0")/.."
PY=${PYTHON:-python3}
DEVICE=${DEVICE:-cuda}
OUT=${OUT:-$(mktemp -d)}
export OUT MLFLOW_DISABLE_TELEMETRY=true DO_NOT_TRACK=true
TARGET=$(mktemp -d)
"$PY" -m pip install --quiet --no-index --no-deps --target "$TARGET" .gpu-wheels/*.whl
# Register merc-bench's plugins without building a wheel: a dist-info with its entry points.
"$PY" - "$TARGET" <<'PYTHON'
import sys, tomllib, pathlib
target = pathlib.Path(sys.argv[1])
project = tomllib.loads(pathlib.Path("pyproject.toml").read_text())["project"]
info = target / f"merc_bench-{project['version']}.dist-info"
info.mkdir()
(info / "METADATA").write_text(f"Metadata-Version: 2.1\nName: {project['name']}\nVersion: {project['version']}\n")
points = project["entry-points"]["merc_bench"]
(info / "entry_points.txt").write_text("[merc_bench]\n" + "".join(f"{k} = {v}\n" for k, v in points.items()))
PYTHON
export PYTHONPATH="$TARGET:$PWD:$PWD/plugins${PYTHONPATH:+:$PYTHONPATH}"
nvidia-smi --query-gpu=name,memory.total,driver_version --format=csv,noheader || true
status=0
# The tracked run first: it is short, and its MLflow GPU tags are what a timeout must not lose.
"$PY" -m merc_bench.cli run sdt --device "$DEVICE" --epochs 2 --set dataset.shape=meld --out "$OUT/run-sdt" \
  --tracking-uri "sqlite:///$OUT/mlflow.db" > "$OUT/run-sdt.log" 2>&1 || { status=$?; tail -n 20 "$OUT/run-sdt.log"; }
"$PY" - "$OUT/mlflow.db" <<'PYTHON' || status=$?
import sqlite3, sys
rows = sqlite3.connect(sys.argv[1]).execute(
    "SELECT DISTINCT key, value FROM tags WHERE key LIKE 'gpu%' OR key LIKE 'peak_gpu%' "
    "OR key IN ('device', 'cuda', 'torch') ORDER BY key").fetchall()
print("MLflow tags of the tracked run:", ", ".join(f"{key}={value}" for key, value in rows), flush=True)
PYTHON
# Bounded so the device call (600 s at most) still returns; finished rows are already in $OUT/gpu_check.md.
timeout "${CHECK_SECONDS:-480}" "$PY" benchmarks/gpu_check.py --device "$DEVICE" "$@" || status=$?
exit "$status"
