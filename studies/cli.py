"""The ``archtune`` command line.

Example:
    $ archtune demo
    $ archtune run examples/digits_resnet.py --trials 20 --storage sqlite:///archtune.db
    $ archtune ls
    $ archtune show digits-resnet
    $ archtune report digits-resnet -o report.html
    $ archtune rm digits-resnet --yes
    $ archtune export digits-resnet --best --format onnx -o winner
    $ export ARCHTUNE_STORAGE=postgresql://me:s3cret@db.example:5432/studies
    $ archtune ls

Every command's database is ``--storage URL``, else the environment variable
``ARCHTUNE_STORAGE``, else ``sqlite:///archtune.db``; for ``archtune run`` the last is the
study file's own ``storage``. The variable keeps a password off the command line, where
``ps`` shows it to every user of the machine. URLs are shown with the password as ``***``.

Each command imports what it needs when it runs, and the errors printed as one line come
from :mod:`studies.errors`: ``--help``, ``ls``, ``show`` and ``rm`` import neither Ray
Tune, PyTorch nor pandas, nor the trainers (``tests/studies/test_cli_imports.py``);
``report`` imports the dashboard's figures (Plotly, and scikit-learn for importances).
"""

from __future__ import annotations

import argparse
import json
import os
import shlex
import sys
from collections.abc import Sequence
from typing import TYPE_CHECKING

from studies.cli_views import SHOW_LIMIT, cmd_ls, cmd_show, out
from studies.errors import InfeasibleSearch, StorageError, StudyFileError
from studies.storage import DEFAULT_STORAGE

if TYPE_CHECKING:
    from rich.console import Console

    from studies.delete import DeletedStudy


def _err() -> Console:
    """Standard error, for the one-line messages (a new console: tests swap sys.stderr)."""
    from rich.console import Console

    return Console(stderr=True, soft_wrap=True)


STORAGE_ENV = "ARCHTUNE_STORAGE"
"""The environment variable that gives the database URL when ``--storage`` is not given."""


def _storage_arg(p: argparse.ArgumentParser, from_file: bool = False) -> None:
    fallback = "the study file's storage" if from_file else DEFAULT_STORAGE
    p.add_argument(
        "--storage",
        default=None,
        metavar="URL",
        help=f"database URL (default: ${STORAGE_ENV} if set, else {fallback})",
    )


def _storage(flag: str | None, from_file: bool = False) -> str | None:
    """The database URL: ``--storage``, else ``$ARCHTUNE_STORAGE``, else the default.

    The default is ``sqlite:///archtune.db``, or None (the study file's storage) for
    ``archtune run``. An empty variable counts as unset.
    """
    if flag is not None:
        return flag
    env = os.environ.get(STORAGE_ENV, "").strip()
    if env:
        return env
    return None if from_file else DEFAULT_STORAGE


def _run_dir_arg(p: argparse.ArgumentParser) -> None:
    p.add_argument(
        "--run-dir",
        default=None,
        metavar="DIR",
        help="where Ray keeps trial directories and checkpoints: on a cluster of several "
        "hosts, storage every node reaches (NFS path or s3://...; see docs/clusters.md)",
    )


def _monitor_args(p: argparse.ArgumentParser) -> None:
    """``--tensorboard``, ``--metrics-port`` and ``--metrics-host`` (docs/monitoring.md)."""
    p.add_argument(
        "--tensorboard",
        default=None,
        metavar="DIR",
        help="write one TensorBoard run per trial into DIR (tensorboard --logdir DIR)",
    )
    p.add_argument(
        "--metrics-port",
        type=int,
        default=None,
        metavar="PORT",
        help="serve the driver's metrics for Prometheus on PORT (0: any free port)",
    )
    p.add_argument(
        "--metrics-host",
        default=None,
        metavar="HOST",
        help="address the metrics port listens on (default 127.0.0.1: this machine only)",
    )


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="archtune",
        description="Neural-architecture and hyperparameter search on Ray Tune.",
        epilog=f"The database URL comes from --storage, else the environment variable "
        f"{STORAGE_ENV}, else {DEFAULT_STORAGE} (for `run`: the study file's). Keep a "
        f"password in {STORAGE_ENV}, off the command line, where `ps` shows it.",
    )
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")

    p = sub.add_parser("demo", help="run a small real study on the bundled digits data")
    _storage_arg(p)
    p.add_argument("--trials", type=int, default=12, help="trials to run (default 12)")
    p.add_argument("--epochs", type=int, default=4, help="epochs of a full trial (default 4)")
    p.add_argument("--address", default=None, help="Ray address (default: start Ray locally)")

    p = sub.add_parser("run", help="run the experiment a study file defines")
    p.add_argument("study_file", help="a .py file that defines an Experiment")
    p.add_argument("--name", default=None, help="which experiment, if the file has several")
    p.add_argument("--trials", type=int, default=None, help="override the trial count")
    p.add_argument("--address", default=None, help="auto | ray://HOST:10001 (default: local)")
    _run_dir_arg(p)
    _monitor_args(p)
    _storage_arg(p, from_file=True)

    p = sub.add_parser("resume", help="continue an interrupted study")
    p.add_argument("name")
    p.add_argument("--trials", type=int, default=None, help="run this many more instead")
    p.add_argument("--address", default=None, help="auto | ray://HOST:10001 (default: local)")
    _run_dir_arg(p)
    _monitor_args(p)
    p.add_argument(
        "--study-file",
        default=None,
        metavar="FILE",
        help="load the trainer class from this file (a script run as __main__, or a "
        "study file that moved)",
    )
    _storage_arg(p)

    p = sub.add_parser("ls", help="list the studies in a database")
    _storage_arg(p)

    p = sub.add_parser("show", help="show a study's best trials and best configuration")
    p.add_argument("name")
    p.add_argument(
        "--limit", type=int, default=SHOW_LIMIT, help=f"trials listed (default {SHOW_LIMIT})"
    )
    p.add_argument("--all", action="store_true", help="list every trial, in trial order")
    p.add_argument(
        "--state",
        default=None,
        choices=["COMPLETE", "PRUNED", "FAIL", "RUNNING", "WAITING", "INTERRUPTED"],
        help="list only the trials in this state (default: the complete ones, best first)",
    )
    _storage_arg(p)

    p = sub.add_parser("report", help="write a static HTML report of a study")
    p.add_argument("name")
    p.add_argument(
        "-o", "--output", default=None, help="HTML file (default: NAME.html, made file-safe)"
    )
    _storage_arg(p)

    p = sub.add_parser("rm", help="delete a study and everything recorded of it")
    p.add_argument("name")
    p.add_argument("--yes", action="store_true", help="delete without asking")
    _storage_arg(p)

    p = sub.add_parser("dashboard", help="serve the live dashboard (read-only) in a browser")
    p.add_argument(
        "--host",
        default="127.0.0.1",
        help="address to listen on (default 127.0.0.1: this machine only)",
    )
    p.add_argument("--port", type=int, default=8050, help="port (default 8050)")
    _storage_arg(p)

    p = sub.add_parser("export", help="write a trial's model file, checkpoint and model card")
    p.add_argument("name")
    which = p.add_mutually_exclusive_group()
    which.add_argument("--trial", type=int, default=None, metavar="N", help="export trial N")
    which.add_argument("--best", action="store_true", help="export the best trial (default)")
    which.add_argument(
        "--front", action="store_true", help="every trial on the Pareto front, and index.json"
    )
    p.add_argument("--format", required=True, metavar="torchscript|onnx|checkpoint")
    p.add_argument("-o", "--output", required=True, metavar="DIR", help="directory to write")
    p.add_argument("--force", action="store_true", help="write into a non-empty DIR")
    _storage_arg(p)
    return parser


def _report_path(storage_url: str, name: str) -> str:
    """The default report file: next to an SQLite database (else here), named by the
    study's :func:`~studies.names.file_slug`, never by the raw name."""
    from sqlalchemy.engine import make_url

    from studies.names import file_slug

    url = make_url(storage_url)
    base = "."
    if url.get_backend_name() == "sqlite" and url.database:
        base = os.path.dirname(os.path.abspath(url.database))
    return os.path.join(base, f"{file_slug(name)}.html")


def _write_report(storage_url: str, name: str, path: str | None = None) -> str:
    from dashboard import write_report
    from studies.cli_views import open_reader

    record = open_reader(storage_url).load_record(name)
    return str(write_report(record, path or _report_path(storage_url, name)))


def _finish_run(study_name: str, storage_url: str) -> None:
    from studies.cli_views import print_best

    print_best(study_name, storage_url)
    out.print(f"Report: {_write_report(storage_url, study_name)}", markup=False)


def cmd_demo(args: argparse.Namespace) -> None:
    from search import controller_spec
    from studies.demo import demo_experiment
    from studies.storage import shown_url

    exp = demo_experiment(epochs=args.epochs, num_trials=args.trials, storage=args.storage)
    controller = controller_spec(exp.controller)[0].name
    out.print(
        f"archtune demo: {exp.settings.num_trials} trials of a ResNet space on digits, "
        f"{exp.trainer.max_epochs} epochs each, {controller} + {exp.settings.scheduler} on "
        f"Ray Tune, recorded in {shown_url(exp.storage)}",
        markup=False,
    )
    exp.run(address=args.address)
    _finish_run(exp.name, exp.storage)


def cmd_run(args: argparse.Namespace) -> None:
    from studies.experiment import load_experiment

    exp = load_experiment(args.study_file, args.name)
    exp = exp.replace(
        num_trials=args.trials,
        storage=args.storage,
        tensorboard=args.tensorboard,
        metrics_port=args.metrics_port,
        metrics_host=args.metrics_host,
    )
    exp.run(address=args.address, run_dir=args.run_dir)
    _finish_run(exp.name, exp.storage)


def cmd_resume(args: argparse.Namespace) -> None:
    from studies.study import Study

    study = Study.load(args.name, args.storage)
    started = study.resume(
        args.trials,
        address=args.address,
        study_file=args.study_file,
        run_dir=args.run_dir,
        tensorboard=args.tensorboard,
        metrics_port=args.metrics_port,
        metrics_host=args.metrics_host,
    )
    if started == 0:
        out.print(
            f"Study {args.name!r} has run all its trials; use --trials N to run more.",
            markup=False,
        )
    _finish_run(args.name, args.storage)


def cmd_rm(args: argparse.Namespace) -> int:
    """Delete a study after ``--yes``, or after its name is typed at a terminal."""
    from studies.delete import delete_study  # Study.delete's, without Ray Tune to import
    from studies.storage import shown_url

    name = args.name

    def confirm(trials: int) -> bool:
        if args.yes:
            return True
        if not sys.stdin.isatty():
            raise ValueError(
                f"Not deleting study {name!r} ({trials} trials) without confirmation: "
                f"there is no terminal to ask on. Add --yes: archtune rm {shlex.quote(name)} "
                "--yes."
            )
        _err().print(
            f"Delete study {name!r} and its {trials} trials from {shown_url(args.storage)}? "
            "Type its name to confirm:",
            markup=False,
            highlight=False,
        )
        try:
            return input("> ") == name
        except (EOFError, KeyboardInterrupt):
            return False

    deleted = delete_study(name, args.storage, confirm=confirm)
    if deleted is None:
        _err().print(f"Not deleted: study {name!r} is unchanged.", markup=False, highlight=False)
        return 1
    out.print(_deleted_text(deleted, shown_url(args.storage)), markup=False)
    return 0


def _deleted_text(deleted: DeletedStudy, where: str) -> str:
    """What ``archtune rm`` says it deleted and where the checkpoints stay."""
    text = (
        f"Deleted study {deleted.name!r} from {where}: {deleted.trials} trial(s) and "
        f"{deleted.metric_rows} metric row(s)."
    )
    if deleted.run_dirs:
        shown = ", ".join(deleted.run_dirs[:3])
        more = f" and {len(deleted.run_dirs) - 3} more" if len(deleted.run_dirs) > 3 else ""
        return f"{text} Its checkpoints are left in place, under {shown}{more}."
    if deleted.run_dir:
        return f"{text} Files under its run directory {deleted.run_dir} are left in place."
    return f"{text} It recorded no checkpoints; Ray's run files, if any, are left in place."


def cmd_report(args: argparse.Namespace) -> None:
    out.print(f"Report: {_write_report(args.storage, args.name, args.output)}", markup=False)


def cmd_export(args: argparse.Namespace) -> None:
    from studies.study import Study
    from trainers.export import check_format

    check_format(args.format)  # before the database is opened
    study = Study.load(args.name, args.storage)
    for e in study.export(
        args.output, args.format, trial=args.trial, front=args.front, force=args.force
    ):
        card = json.loads(e.card.read_text())
        names = [p.name for p in (e.model_file, e.checkpoint, e.card) if p is not None]
        check = (
            "not verified: onnxruntime is not installed"
            if e.max_abs_diff is None
            else f"outputs match PyTorch's, largest difference {e.max_abs_diff:.1e}"
        )
        out.print(
            f"Trial #{card['trial']} -> {e.directory}: {', '.join(names)} ({check})", markup=False
        )
    if args.front:
        out.print(f"Index: {os.path.join(args.output, 'index.json')}", markup=False)


def cmd_dashboard(args: argparse.Namespace) -> int:
    """``archtune dashboard``: serve the live dashboard until Ctrl-C."""
    from dashboard.serve import DashboardError, serve

    try:
        serve(args.storage, args.host, args.port)
    except DashboardError as e:
        raise ValueError(str(e)) from None
    return 0


COMMANDS = {
    "demo": cmd_demo,
    "run": cmd_run,
    "resume": cmd_resume,
    "ls": cmd_ls,
    "show": cmd_show,
    "report": cmd_report,
    "rm": cmd_rm,
    "export": cmd_export,
    "dashboard": cmd_dashboard,
}


def _quiet_optuna() -> None:
    """Optuna logs warnings only, not a line per trial (every command but ``--help`` uses it)."""
    import optuna

    optuna.logging.set_verbosity(optuna.logging.WARNING)


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point of ``archtune``; returns the exit status."""
    args = _parser().parse_args(argv)
    _quiet_optuna()
    args.storage = _storage(args.storage, from_file=args.command == "run")
    errors = (ValueError, TypeError, KeyError, StorageError, StudyFileError, ConnectionError)
    try:
        status = COMMANDS[args.command](args)
    except (*errors, InfeasibleSearch) as e:
        if os.environ.get("ARCHTUNE_DEBUG"):
            raise
        message = e.args[0] if isinstance(e, KeyError) and e.args else str(e)
        from rich.text import Text

        # Text, not markup: a message's own brackets ('archtune[postgres]') print as they are.
        line = Text.assemble(("archtune: error:", "red"), " ", str(message))
        _err().print(line, highlight=False)
        return 2
    except KeyboardInterrupt as e:
        # Only a run raises RunInterrupted, and a run has imported its module (Ray Tune).
        interrupt = sys.modules.get("studies.interrupt")
        if interrupt is not None and isinstance(e, interrupt.RunInterrupted):
            _err().print(f"archtune: {e.message()}", markup=False, highlight=False)
            return e.exit_status
        _err().print(
            "archtune: interrupted; finished trials are recorded. "
            "Continue with `archtune resume NAME`."
        )
        return 130
    return status or 0


if __name__ == "__main__":
    sys.exit(main())
