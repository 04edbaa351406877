#!/usr/bin/env bash
# On the GPU machine (device tool, carry [".gpu-wheels"]): install the carried wheels and
# merc-bench's entry points into a scratch folder (the image has torch but no pydantic, and no
# network), then run benchmarks/gpu_check.py. Arguments are passed on, e.g. --epochs 2.
set -euo pipefail
cd "$(dirname "$0")/.."
PY=${PYTHON:-python3}
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
"$PY" benchmarks/gpu_check.py "$@"
