"""Kill/resume and two processes on one study (started apart, as on two machines) against a real
PostgreSQL server; :mod:`test_tune` runs the same kill/resume check and ``--workers 2`` on sqlite.

``.ci/run`` installs and starts Debian's ``postgresql`` and exports
``MERC_BENCH_TEST_POSTGRES_URL``; anywhere else set it yourself, e.g.
``MERC_BENCH_TEST_POSTGRES_URL=postgresql+psycopg2://user:password@127.0.0.1/database``.
Without it these tests skip — except under CI (``CI`` set), where a missing server is a failure.
Each test uses a study of its own name and deletes it at the end, so the database can be shared.
"""

from __future__ import annotations

import os

import pytest

from test_tune import kill_and_resume, two_machines

VARIABLE = "MERC_BENCH_TEST_POSTGRES_URL"


@pytest.fixture
def postgres_url() -> str:
    url = os.environ.get(VARIABLE)
    if url:
        return url
    message = (f"{VARIABLE} is not set: point it at a PostgreSQL database you may write to, e.g. "
               f"{VARIABLE}=postgresql+psycopg2://user:password@127.0.0.1/database (.ci/run starts one)")
    if os.environ.get("CI"):
        pytest.fail(message)
    pytest.skip(message)


@pytest.mark.slow
def test_killed_worker_resumes_without_losing_trials_postgres(tmp_path, postgres_url):
    kill_and_resume(tmp_path, postgres_url)


@pytest.mark.slow
def test_two_machines_share_one_study_postgres(tmp_path, postgres_url):
    two_machines(tmp_path, postgres_url)
