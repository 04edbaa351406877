#!/usr/bin/env bash
# Here (with PyPI): download the wheels the GPU machine's image lacks (Python 3.12, x86_64) into
# .gpu-wheels/ (git-ignored, about 22 MB), to be carried there by the device tool: pydantic for the
# configs, and MLflow's lean package with SQLAlchemy/Alembic for the tracked run's sqlite store.
set -euo pipefail
cd "$(dirname "$0")/.."
rm -rf .gpu-wheels && mkdir -p .gpu-wheels
python3 -m pip download --quiet --only-binary=:all: --python-version "${GPU_PYTHON_VERSION:-3.12}" --implementation cp \
  --platform manylinux2014_x86_64 --platform manylinux_2_17_x86_64 --platform manylinux_2_28_x86_64 \
  -d .gpu-wheels pydantic==2.14.4 mlflow-skinny==3.17.2 sqlalchemy alembic -c constraints.txt
# Only Databricks/Google authentication needs these; a local sqlite store does not.
rm -f .gpu-wheels/{google_auth,pyasn1,pyasn1_modules}-*.whl
du -sh .gpu-wheels && ls .gpu-wheels
