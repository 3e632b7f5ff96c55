"""`python -m bench [names] [--quick]`: run benchmarks, print the table, write bench/results/.

Each benchmark runs in its own Python process, so one's threads, imports and memory do not
colour the next one's numbers; `--in-process` runs them here instead.
"""

from __future__ import annotations

import argparse
import contextlib
import importlib
import os
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from types import ModuleType

from rich.console import Console
from rich.table import Table

from .common import DEFAULT_RESULTS_DIR, Mode, Result, read_result

BENCHMARKS = ("click_to_resume", "ack_load", "waiting_gates", "fan_out", "memory", "reminders",
              "suspended_gates", "metrics", "email_links")


def module(name: str) -> ModuleType:
    return importlib.import_module(f"bench.{name}")


def canonical(name: str) -> str:
    name = name.replace("-", "_")
    if name not in BENCHMARKS:
        raise argparse.ArgumentTypeError(f"unknown benchmark {name!r}; choose from {', '.join(BENCHMARKS)}")
    return name


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="python -m bench", description=__doc__.splitlines()[0])
    parser.add_argument("names", nargs="*", type=canonical, metavar="name",
                        help=f"benchmarks to run (default: all): {', '.join(BENCHMARKS)}")
    size = parser.add_mutually_exclusive_group()
    size.add_argument("--quick", action="store_const", const="quick", dest="mode",
                      help="small sizes, a minute or two")
    size.add_argument("--tiny", action="store_const", const="tiny", dest="mode",
                      help="smallest sizes, seconds (the smoke test)")
    parser.set_defaults(mode="full")
    parser.add_argument("--results-dir", type=Path, default=DEFAULT_RESULTS_DIR)
    parser.add_argument("--in-process", action="store_true",
                        help="run in this process rather than one process per benchmark")
    parser.add_argument("--markdown", action="store_true",
                        help="run nothing: print the results already in --results-dir as a Markdown table")
    parser.add_argument("--replot", action="store_true",
                        help="run nothing: redraw the figures from the JSON already in --results-dir")
    parser.add_argument("--child", action="store_true", help=argparse.SUPPRESS)
    return parser.parse_args(argv)


def run_one(name: str, mode: Mode, results_dir: Path, in_process: bool) -> Result:
    if in_process:
        result: Result = module(name).run(mode, results_dir)
        return result
    command = [sys.executable, "-m", "bench", name, f"--{mode}" if mode != "full" else "",
               "--results-dir", str(results_dir), "--in-process", "--child"]
    subprocess.run([part for part in command if part], check=True)
    return read_result(results_dir / f"{name}.json")


@contextlib.contextmanager
def shared_prefect_server(names: list[str], in_process: bool) -> Iterator[None]:
    """In one process, benchmarks that run flows share one temporary Prefect server: starting
    one costs seconds (it migrates a fresh SQLite database), more than a tiny benchmark."""
    from .services import SHARED_SERVER_ENV, prefect_harness

    needing = [name for name in names if getattr(module(name), "NEEDS_PREFECT", False)]
    if not in_process or len(needing) < 2 or os.environ.get(SHARED_SERVER_ENV):
        yield
        return
    with prefect_harness() as api_url:
        os.environ[SHARED_SERVER_ENV] = api_url  # child processes (waiting_gates) inherit it
        try:
            yield
        finally:
            del os.environ[SHARED_SERVER_ENV]


def table(results: list[Result]) -> Table:
    out = Table(title="slack-approvals benchmarks", show_lines=False)
    out.add_column("benchmark", style="bold")
    out.add_column("metric")
    out.add_column("value", justify="right")
    out.add_column("target")
    out.add_column("met", justify="center")
    out.add_column("detail", style="dim")
    for result in results:
        for i, metric in enumerate(result.metrics):
            met = {True: "[green]yes[/green]", False: "[red]no[/red]", None: ""}[metric.met]
            out.add_row(result.name if i == 0 else "", metric.name, metric.shown(),
                        metric.target or "", met, metric.detail)
        out.add_section()
    return out


def markdown(results: list[Result]) -> str:
    lines = ["| benchmark | metric | value | target | met | detail |", "|---|---|---:|---|:-:|---|"]
    for result in results:
        for i, metric in enumerate(result.metrics):
            met = {True: "yes", False: "**no**", None: ""}[metric.met]
            cells = [f"`{result.name}`" if i == 0 else "", metric.name, metric.shown(),
                     metric.target or "", met, metric.detail]
            lines.append("| " + " | ".join(cell.replace("|", "\\|") for cell in cells) + " |")
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    names = args.names or list(BENCHMARKS)
    if args.replot:
        for name in names:
            path = args.results_dir / f"{name}.json"
            if path.exists():
                module(name).plot(read_result(path), args.results_dir)
        return 0
    if args.markdown:
        found = [args.results_dir / f"{name}.json" for name in names]
        print(markdown([read_result(path) for path in found if path.exists()]))
        return 0
    # Wide enough for the table when the output is a file, not a terminal.
    console = Console(width=None if sys.stdout.isatty() else 140)
    results: list[Result] = []
    failed: list[str] = []
    with shared_prefect_server(names, args.in_process):
        run_all(names, args, console, results, failed)
    if results and not args.child:
        console.print(table(results))
        for result in results:
            for note in result.notes:
                console.print(f"[dim]{result.name}: {note}[/dim]")
    return 1 if failed else 0


def run_all(names: list[str], args: argparse.Namespace, console: Console, results: list[Result],
            failed: list[str]) -> None:
    for name in names:
        started = time.monotonic()
        if not args.child:
            console.print(f"[bold]{name}[/bold] ({args.mode}) ...")
        try:
            results.append(run_one(name, args.mode, args.results_dir, args.in_process))
        except (subprocess.CalledProcessError, RuntimeError, TimeoutError, OSError) as e:
            console.print(f"[red]{name} failed: {e}[/red]")
            failed.append(name)
            continue
        if not args.child:
            console.print(f"  done in {time.monotonic() - started:.0f} s")


if __name__ == "__main__":
    sys.exit(main())
