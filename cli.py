"""The ``cnnbp`` command: a thin layer over the packages (``python cli.py ...`` works too)."""
from __future__ import annotations

import argparse
import sys


def _checkout_as_package() -> None:
    """``python cli.py`` from a checkout that pip has not installed: import this folder as the
    ``cnnbp`` package, so the code reads the same either way."""
    import importlib.util
    from pathlib import Path
    if importlib.util.find_spec("cnnbp") is None:
        here = Path(__file__).resolve().parent
        spec = importlib.util.spec_from_file_location("cnnbp", here / "__init__.py",
                                                      submodule_search_locations=[str(here)])
        sys.modules["cnnbp"] = importlib.util.module_from_spec(spec)
        spec.loader.exec_module(sys.modules["cnnbp"])


if __name__ == "__main__":
    _checkout_as_package()

def parser() -> argparse.ArgumentParser:
    """The ``cnnbp`` parser: each module of ``cnnbp.commands`` registers its subcommand."""
    from cnnbp.commands.assemble import parser as commands_parser
    return commands_parser()


INTERNAL_ERROR = 70  # EX_SOFTWARE: a bug in cnnbp, not in what the user gave it
PIPE_CLOSED = 141  # 128 + SIGPIPE: what a shell reports for `cat` stopped by `| head`


def _pipe_closed() -> int:
    """The reader of stdout went away (``cnnbp show vgg16 | head -2``): stop without a word,
    as Unix tools do, with the status a shell gives one that SIGPIPE stopped. (Python ignores
    SIGPIPE so that a server survives a client hanging up; the write fails instead.) What is
    still buffered goes to /dev/null, so the interpreter's own flush at exit cannot fail."""
    import os
    try:
        devnull = os.open(os.devnull, os.O_WRONLY)
        os.dup2(devnull, sys.stdout.fileno())
        os.close(devnull)
    except (OSError, ValueError):  # stdout is no file descriptor (a test's capture)
        pass
    return PIPE_CLOSED


def main(argv: list[str] | None = None) -> int:
    """Run one command. Every problem the user can act on prints one paragraph and exits with
    its kind's code (2: bad input, 1: refused or failed); only a bug in cnnbp exits 70, and
    shows its traceback only with CNNBP_DEBUG=1."""
    import os

    from cnnbp.commands.assemble import parse
    from cnnbp.contract.errors import CnnbpError
    args = parse(parser(), sys.argv[1:] if argv is None else argv)
    try:
        return args.run(args)
    except CnnbpError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return exc.exit_code
    except BrokenPipeError:
        return _pipe_closed()
    except OSError as exc:
        where = f"{exc.filename}: " if exc.filename else ""
        print(f"error: {where}{exc.strerror or exc}", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        print("interrupted", file=sys.stderr)
        return 130
    except ModuleNotFoundError as exc:  # a checkout run before its dependencies were installed
        print(f"error: cnnbp needs the Python package {exc.name!r}, which is not installed: run "
              "`make demo` (or `pip install -e .`) first", file=sys.stderr)
        return 1
    except Exception as exc:
        if os.environ.get("CNNBP_DEBUG"):
            raise
        print(f"error: internal error in cnnbp {args.command} ({type(exc).__name__}: {exc}); "
              "this is a bug — rerun with CNNBP_DEBUG=1 for the traceback and report it",
              file=sys.stderr)
        return INTERNAL_ERROR


def run() -> None:
    """The ``cnnbp`` console script: ``main``, then, after a success, an exit without the
    interpreter's teardown.

    Every file a command writes is closed when it returns; what is left is Python freeing
    TensorFlow's modules and objects one by one, which took 1.7 s after a `cnnbp train`
    against 0.1 s without (docs/benchmarks.md). The atexit handlers still run (logging,
    temporary folders' finalizers); threads still running are not waited for. A failed
    command exits the usual way, so whatever it left open is closed as Python would.
    """
    import atexit
    import os
    code = main()
    if code:
        sys.exit(code)
    atexit._run_exitfuncs()
    for stream in (sys.stdout, sys.stderr):
        try:
            stream.flush()
        except BrokenPipeError:  # a closed pipe (`| head`) that the last lines met
            code = PIPE_CLOSED
        except (OSError, ValueError):
            pass
    os._exit(code)


if __name__ == "__main__":
    run()
