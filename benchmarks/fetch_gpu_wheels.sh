#!/usr/bin/env bash
# Here (with PyPI): download the wheels the GPU machine's image lacks (Python 3.12, x86_64) into
# .gpu-wheels/ (git-ignored), to be carried there by the device tool.
set -euo pipefail
cd "$(dirname "$0")/.."
rm -rf .gpu-wheels && mkdir -p .gpu-wheels
python3 -m pip download --quiet --only-binary=:all: --python-version 3.12 --implementation cp \
  --platform manylinux2014_x86_64 --platform manylinux_2_17_x86_64 -d .gpu-wheels \
  pydantic==2.14.4 -c constraints.txt
du -sh .gpu-wheels && ls .gpu-wheels
