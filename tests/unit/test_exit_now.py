"""berth.exit_now, how berth's CLI and berth-runtime end: the exit code, and what is still
buffered on stdout and stderr written first, with no finalization and no traceback when
stdout is a pipe already closed."""

import os
import subprocess
import sys

SRC = os.path.join(os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__)))), "src")


def run_exit_now(code: str, **kwargs) -> subprocess.CompletedProcess:
    boot = f"import sys; sys.path.insert(0, {SRC!r})\nimport berth\n"
    return subprocess.run([sys.executable, "-IS", "-c", boot + code], timeout=30, **kwargs)


def test_buffered_output_is_written_and_the_code_kept():
    result = run_exit_now("sys.stdout.write('x' * 100_000); sys.stderr.write('said'); berth.exit_now(3)",
                          capture_output=True, text=True)
    assert (result.returncode, len(result.stdout), result.stderr) == (3, 100_000, "said")


def test_no_finalization_runs():
    """What finalization would do (here an atexit handler) does not happen: the point of it."""
    result = run_exit_now("import atexit; atexit.register(print, 'finalized'); print('done'); berth.exit_now(0)",
                          capture_output=True, text=True)
    assert (result.returncode, result.stdout) == (0, "done\n")


def test_a_closed_stdout_pipe_is_no_traceback():
    reader, writer = os.pipe()
    os.close(reader)
    try:
        result = run_exit_now("sys.stdout.write('x' * 1000); berth.exit_now(4)", stdout=writer,  # still buffered
                              stderr=subprocess.PIPE, text=True)
    finally:
        os.close(writer)
    assert (result.returncode, result.stderr) == (4, "")
