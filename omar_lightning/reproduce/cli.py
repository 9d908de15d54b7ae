"""``omar reproduce STUDY`` and ``omar report``."""

from __future__ import annotations

import argparse
import shlex
import sys
from dataclasses import replace
from pathlib import Path

from omar_lightning.reproduce.studies import STUDIES, study


def _fail(message: str) -> None:
    print(f"omar: error: {message}", file=sys.stderr)
    raise SystemExit(2)


def _slurm_script(args: argparse.Namespace, count: int, argv: list[str]) -> str:
    keep = []
    skip = False
    for a in argv:  # the same selection, one cell per array task
        if skip:
            skip = False
            continue
        if a in ("--slurm", "--workers"):
            skip = True
            continue
        if a.startswith(("--slurm=", "--workers=")):
            continue
        keep.append(a)
    command = "omar reproduce " + " ".join(shlex.quote(a) for a in keep) + " --cell $SLURM_ARRAY_TASK_ID"
    return (
        "#!/bin/bash\n"
        f"#SBATCH --job-name=omar-{args.study}\n"
        f"#SBATCH --array=0-{count - 1}\n"
        "#SBATCH --cpus-per-task=2\n"
        "#SBATCH --output=slurm-%A_%a.out\n"
        "# One cell per array task; finished cells are skipped, so resubmitting continues the study.\n"
        f"cd {shlex.quote(str(Path.cwd()))}\n"
        f"{command}\n"
    )


def reproduce_main(argv: list[str]) -> None:
    parser = argparse.ArgumentParser(prog="omar reproduce", description="Run the cells of a study of the paper; finished cells are skipped.")
    parser.add_argument("study", choices=list(STUDIES), help="which table or figure")
    parser.add_argument("--tasks", nargs="+", help="restrict to these tasks")
    parser.add_argument("--tiers", nargs="+", help="restrict to these dataset tiers")
    parser.add_argument("--algorithms", nargs="+", help="restrict to these algorithms")
    parser.add_argument("--seeds", nargs="+", type=int, help="seeds to run (default: 0 1 2 3 4)")
    parser.add_argument("--num-seeds", type=int, default=5, help="seeds 0..N-1 when --seeds is not given (default 5)")
    parser.add_argument("--workers", type=int, default=1, help="cells run at once as local processes (default 1)")
    parser.add_argument("--threads", type=int, help="torch threads per cell (default: the cores shared out over the workers; all with one worker)")
    parser.add_argument("--results", type=Path, default=Path("results"), help="where run summaries go (default results/)")
    parser.add_argument("--runs", type=Path, default=Path("runs/reproduce"), help="where checkpoints and logs go (default runs/reproduce/)")
    parser.add_argument("--configs", default="configs", help="config directory (default configs/)")
    parser.add_argument("--list", action="store_true", help="print the cells with their state and exit")
    parser.add_argument("--cell", type=int, help="run only the cell with this index in --list (a job array's task id)")
    parser.add_argument("--slurm", type=Path, help="write a SLURM job-array script for these cells and exit")
    args = parser.parse_args(argv)
    if args.workers < 1:
        _fail(f"--workers must be >= 1, got {args.workers}")
    if args.threads is not None and args.threads < 1:
        _fail(f"--threads must be >= 1, got {args.threads}")
    seeds = args.seeds if args.seeds is not None else list(range(args.num_seeds))
    try:
        cells = study(args.study).cells(seeds, args.tasks, args.tiers, args.algorithms)
    except ValueError as e:
        _fail(str(e))
    if args.configs != "configs":
        cells = [replace(c, config_root=args.configs) for c in cells]
    try:
        _list_or_run(args, cells, argv)
    except ValueError as e:  # a config that cannot be read or composed, named with its setting
        _fail(str(e))


def _list_or_run(args: argparse.Namespace, cells: list, argv: list[str]) -> None:
    from omar_lightning.reproduce.runner import dataset_note, run_cells, status

    root = Path.cwd()
    if args.list:
        for i, cell in enumerate(cells):
            state = status(cell, args.results, root)
            note = dataset_note(cell, args.results, root) if state == "finished" else ""
            print(f"{i:4d}  {state:10s}  {cell.describe()}  ({cell.config}){'  ' + note if note else ''}")
        return
    if args.slurm:
        args.slurm.write_text(_slurm_script(args, len(cells), argv))
        print(f"wrote {args.slurm}: {len(cells)} array tasks; submit with: sbatch {args.slurm}")
        return
    if args.cell is not None:
        if not 0 <= args.cell < len(cells):
            _fail(f"--cell {args.cell}: this selection has cells 0..{len(cells) - 1}")
        cells = [cells[args.cell]]
    counts = run_cells(cells, args.results, args.runs, root, args.workers, threads=args.threads, log=lambda m: print(m, flush=True))
    print(f"{args.study}: {counts['finished']} already finished, {counts['ran']} ran, {counts['failed']} failed, {counts['skipped']} skipped, {counts['busy']} busy elsewhere", flush=True)
    if counts["failed"]:
        raise SystemExit(1)


def report_main(argv: list[str]) -> None:
    parser = argparse.ArgumentParser(prog="omar report", description="Rebuild the results page and its figures from run summaries alone.")
    parser.add_argument("--results", type=Path, default=Path("results"), help="run summaries (default results/)")
    parser.add_argument("--out", type=Path, default=Path("docs/results.md"), help="the page to write (default docs/results.md)")
    parser.add_argument("--figures", type=Path, help="figure directory (default: figures/ beside --out)")
    parser.add_argument("--no-figures", action="store_true", help="write the page only")
    args = parser.parse_args(argv)
    from omar_lightning.reproduce.report import write_report

    if not args.results.is_dir():
        _fail(f"--results {args.results}: no such directory")
    figures = None if args.no_figures else (args.figures or args.out.parent / "figures")
    write_report(args.results, args.out, figures)
    print(f"wrote {args.out}" + (f" and figures in {figures}" if figures else ""))
