"""Run hostile inputs through the real ``merc-bench`` command line, in a child process that cannot
take the machine down with it.

Every fuzz test (pickles, converted folders, CSVs, ``.npy`` files, search spaces, ``--set`` values)
describes its inputs as :class:`Case` objects — a name and the command-line arguments — and hands
them to :func:`run_cases`. One child Python process runs a batch of cases through
:func:`merc_bench.cli.main`, in process (importing torch once per batch instead of once per case),
under

* an address-space cap (``resource.setrlimit(RLIMIT_AS)``, default 3 GiB): a file that makes
  merc-bench allocate without bound fails the case with ``MemoryError`` instead of exhausting the
  machine;
* a per-case alarm (default 60 s): a hang becomes the outcome ``hang``;
* a fresh working directory per batch.

The child writes one JSON line when a case starts and one when it ends, flushed at once, so a case
that kills the child (a segfault, the kernel's OOM killer) is identified by its unfinished start
line: its outcome is ``crash`` with the signal, and the remaining cases run in a new child.

:func:`check_refused` states what a clean refusal is: exit code 2, a message starting with
``error:``, no traceback, one paragraph (no blank line inside), a bounded length, and no file
written where a canary says none may be.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import tempfile
from dataclasses import asdict, dataclass, field
from pathlib import Path

__all__ = ["Case", "Outcome", "run_cases", "check_refused", "MAX_MESSAGE"]

#: A refusal longer than this is not "one paragraph" a user can read.
MAX_MESSAGE = 1500
DEFAULT_MEMORY = 3 << 30


@dataclass
class Case:
    """One input: a name for reports, the ``merc-bench`` arguments, and the exit code expected."""

    name: str
    argv: list[str]
    expect_exit: int = 2
    #: Paths that must not exist after the case (a payload's canary, a half-written output).
    must_not_exist: list[str] = field(default_factory=list)


@dataclass
class Outcome:
    name: str
    #: "exit" (the command returned or called sys.exit), "traceback" (an exception escaped main),
    #: "memory" (MemoryError under the cap), "hang" (the alarm fired) or "crash" (the child died).
    status: str
    exit_code: int | None
    output: str
    seconds: float


def run_cases(cases: list[Case], *, memory_limit: int = DEFAULT_MEMORY, case_timeout: int = 60,
              env: dict[str, str] | None = None) -> dict[str, Outcome]:
    """Run ``cases`` in child processes; return each case's :class:`Outcome` by name."""
    names = [case.name for case in cases]
    if len(set(names)) != len(names):
        raise ValueError("case names must be unique")
    outcomes: dict[str, Outcome] = {}
    pending = list(cases)
    child_env = {**os.environ, "MLFLOW_DISABLE_TELEMETRY": "true", "DO_NOT_TRACK": "true",
                 "OMP_NUM_THREADS": "1", "PYTHONFAULTHANDLER": "", **(env or {})}
    while pending:
        with tempfile.TemporaryDirectory(prefix="merc-fuzz-") as work:
            requests = Path(work) / "cases.json"
            log = Path(work) / "outcomes.jsonl"
            requests.write_text(json.dumps([asdict(case) for case in pending]))
            process = subprocess.run(
                [sys.executable, __file__, str(requests), str(log), str(memory_limit), str(case_timeout)],
                cwd=work, env=child_env, capture_output=True, text=True,
                timeout=case_timeout * len(pending) + 120,
            )
            started: str | None = None
            for line in log.read_text().splitlines() if log.exists() else []:
                record = json.loads(line)
                if "start" in record:
                    started = record["start"]
                else:
                    outcomes[record["name"]] = Outcome(**record)
                    started = None
            if process.returncode != 0 and started is None and len(outcomes) < len(cases):
                # The child died before starting any case: a broken harness, not a finding.
                raise RuntimeError(f"fuzz child failed (rc {process.returncode}):\n{process.stderr[-3000:]}")
            if started is not None:
                outcomes[started] = Outcome(started, "crash", process.returncode,
                                            process.stderr[-3000:], 0.0)
        pending = [case for case in pending if case.name not in outcomes]
    return outcomes


def check_refused(case: Case, outcome: Outcome) -> list[str]:
    """What is wrong with ``outcome`` as a clean refusal of ``case`` (empty when it is one)."""
    problems = []
    if outcome.status != "exit":
        problems.append(f"{outcome.status} (exit {outcome.exit_code})")
    elif outcome.exit_code != case.expect_exit:
        problems.append(f"exit code {outcome.exit_code}, expected {case.expect_exit}")
    text = outcome.output
    if "Traceback (most recent call last)" in text:
        problems.append("printed a traceback")
    if case.expect_exit == 2:
        message = text[text.find("error:"):] if "error:" in text else ""
        if not message:
            problems.append("no 'error:' message")
        elif len(message) > MAX_MESSAGE:
            problems.append(f"message of {len(message)} characters (limit {MAX_MESSAGE})")
        elif "\n\n" in message.strip():
            problems.append("message is more than one paragraph")
    for path in case.must_not_exist:
        if Path(path).exists():
            problems.append(f"{path} exists")
    if problems:
        return [f"{case.name}: {'; '.join(problems)}; output: {text[-600:]!r}"]
    return []


def _child(requests: Path, log: Path, memory_limit: int, case_timeout: int) -> None:
    """The child process: cap memory, then run each case through the CLI's main in process."""
    import contextlib
    import io
    import resource
    import signal
    import time
    import traceback

    resource.setrlimit(resource.RLIMIT_AS, (memory_limit, memory_limit))

    class Hang(BaseException):
        pass

    def alarm(signum, frame):  # noqa: ARG001 - signal handler signature
        raise Hang()

    signal.signal(signal.SIGALRM, alarm)
    from merc_bench.cli import main

    with open(log, "a", buffering=1) as out:
        for case in json.loads(requests.read_text()):
            out.write(json.dumps({"start": case["name"]}) + "\n")
            out.flush()
            os.fsync(out.fileno())
            captured = io.StringIO()
            began = time.monotonic()
            status, code = "exit", 0
            signal.alarm(case_timeout)
            try:
                with contextlib.redirect_stdout(captured), contextlib.redirect_stderr(captured):
                    main(case["argv"])
            except SystemExit as stop:
                code = stop.code if isinstance(stop.code, int) else (0 if stop.code is None else 1)
            except Hang:
                status, code = "hang", None
            except MemoryError:
                status, code = "memory", None
                captured.write(traceback.format_exc())
            except BaseException:  # noqa: BLE001 - anything escaping main is what we are looking for
                status, code = "traceback", None
                captured.write(traceback.format_exc())
            finally:
                signal.alarm(0)
            record = Outcome(case["name"], status, code, captured.getvalue()[-20000:],
                             round(time.monotonic() - began, 3))
            out.write(json.dumps(asdict(record)) + "\n")
            out.flush()


if __name__ == "__main__":
    _child(Path(sys.argv[1]), Path(sys.argv[2]), int(sys.argv[3]), int(sys.argv[4]))
