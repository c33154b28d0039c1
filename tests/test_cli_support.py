"""Every command line turns a failure into one line on stderr and its own exit code."""

from __future__ import annotations

import argparse

import pytest
import torch

from bufferany_core.cli_support import run_cli
from bufferany_core.errors import BadArgumentsError, ExitCode, MissingWeightsError


def _raise(exc: BaseException):
    def body() -> int:
        raise exc

    return body


def test_a_finished_body_returns_its_own_code(capsys):
    assert run_cli("prog", lambda: 0) == ExitCode.OK
    assert capsys.readouterr().err == ""


def test_project_errors_exit_with_their_code_and_message(capsys):
    code = run_cli("prog", _raise(MissingWeightsError("weights file /m/x.pth does not exist")))
    assert code == ExitCode.MISSING_WEIGHTS
    assert capsys.readouterr().err == "prog: error: weights file /m/x.pth does not exist\n"


def test_bad_arguments_also_print_the_usage_line(capsys):
    parser = argparse.ArgumentParser(prog="prog")
    parser.add_argument("--window", type=int)
    assert run_cli("prog", _raise(BadArgumentsError("--window 0: too small")), parser=parser) == ExitCode.BAD_ARGUMENTS
    err = capsys.readouterr().err
    assert err.startswith("usage: prog [-h] [--window WINDOW]") and err.endswith("prog: error: --window 0: too small\n")


def test_ctrl_c_exits_cancelled(capsys):
    assert run_cli("prog", _raise(KeyboardInterrupt()), interrupted="stopped; re-run") == ExitCode.CANCELLED
    assert capsys.readouterr().err == "prog: stopped; re-run\n"


@pytest.mark.parametrize(
    "exc",
    [
        torch.OutOfMemoryError("CUDA out of memory. Tried to allocate 2.00 GiB"),
        MemoryError(),
        RuntimeError("DefaultCPUAllocator: can't allocate memory: you tried to allocate 1000 bytes"),
    ],
)
def test_running_out_of_memory_exits_out_of_memory(exc, capsys):
    assert run_cli("prog", _raise(exc)) == ExitCode.OUT_OF_MEMORY
    assert "prog: error: out of memory" in capsys.readouterr().err


def test_a_bug_shows_its_traceback_and_exits_1(capsys):
    assert run_cli("prog", _raise(ZeroDivisionError("division by zero"))) == ExitCode.INTERNAL
    err = capsys.readouterr().err
    assert "Traceback" in err and "ZeroDivisionError: division by zero" in err


def test_one_out_of_memory_message_names_what_where_and_the_hint():
    from bufferany_core.errors import OutOfMemoryError, is_out_of_memory, out_of_memory_error

    error = out_of_memory_error(
        torch.OutOfMemoryError("CUDA out of memory. Tried to allocate 2.00 GiB\nmore"),
        doing="predicting depth for frames 1-32",
        device=torch.device("cuda", 0),
    )
    assert isinstance(error, OutOfMemoryError) and is_out_of_memory(error)
    assert str(error) == (
        "out of memory on device 'cuda:0' predicting depth for frames 1-32: CUDA out of memory. "
        "Tried to allocate 2.00 GiB; try a smaller --window, --depth-processing-size or "
        "--normal-processing-size, or --device cpu"
    )
    assert out_of_memory_error(error) is error
    assert not is_out_of_memory(ValueError("bad value"))
