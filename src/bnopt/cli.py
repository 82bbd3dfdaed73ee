"""`bnopt`: look at runs from the command line, without a notebook, and name a run without training it.

    bnopt runs [--results DIR] [--model M ..] [--lr LR ..] [--seed N ..] [--scale S ..] [--status S ..] ...
    bnopt compare A B [--results DIR]       # two runs' differing config keys and final metrics, side by side
    bnopt plot RUN [--results DIR] [--out FILE.png]   # one run's curves (figures.explore's plot_run_curves)
    bnopt id <overrides..>                   # the run id `bnopt-train <overrides..>` trains; -m / experiment=:
                                             # one line per run of the sweep, with its status and folder

A run is named by its id or any unique prefix of it. Runs are read through bnopt.results (run_summary,
load_runs); nothing here trains or writes a run file. Bad input: one line `bnopt: error: ...`, exit 2.
"""

from __future__ import annotations

import argparse
import difflib
import math
import sys
from pathlib import Path

import pandas as pd
from hydra.errors import HydraException
from omegaconf import DictConfig, OmegaConf

from . import experiments
from .cli_train import hydra_error_line, precheck_overrides
from .config import CONFIG_DIR, SCALES, ConfigError, identity, resolve, run_id, validate
from .figures.explore import plot_run_curves
from .models import NORMS
from .records import CONFIG_FILE, RECORDS_DIR, CorruptRun, read_run
from .reproduce import run_label
from .results import load_runs, run_summary
from .run_folder import RunFolder
from .run_selection import same_lr

DEFAULT_RESULTS = "results"
# what `bnopt runs` shows in its status column: status.json's, with a `running` run that no process holds
# (killed, or the machine went down) shown as `interrupted`: the same command resumes it
STATUSES = ("done", "diverged", "failed", "running", "interrupted")
NOT_TRAINED = "not trained"
PLOT_DPI = 120


class UsageError(Exception):
    """Bad input: main prints it as one line `bnopt: error: ...` and exits 2."""


class Parser(argparse.ArgumentParser):
    """argparse, but a bad argument is one line and exit 2 (not the usage block), as everywhere in bnopt."""

    def error(self, message: str):
        raise UsageError(message)


# ------------------------------------------------------------------------------------------- run table


def runs_dir(results: str | Path) -> Path:
    """<results>/runs, or `results` itself when it is a runs folder (as bnopt.results.load_runs reads it)."""
    root = Path(results)
    return root if root.name == RECORDS_DIR else root / RECORDS_DIR


def run_folders(results: str | Path) -> list[Path]:
    """The run folders under a results root, by id (a folder without config.yaml is not a run yet)."""
    folder = runs_dir(results)
    return sorted(p for p in folder.glob("*/") if (p / CONFIG_FILE).exists()) if folder.is_dir() else []


def run_state(folder: Path, status: str | None) -> str:
    """status.json's status, but `interrupted` for a run that says `running` (or has no status yet) while no
    process holds its lock; `not trained` for no status at all and no folder."""
    if status is None and not Path(folder).is_dir():
        return NOT_TRAINED
    if status in (None, "running", "unknown"):
        folder = Path(folder)
        return "running" if RunFolder(folder.parent.parent, folder.name).is_trained_now() else "interrupted"
    return status


def run_row(folder: Path) -> dict:
    """One run's row: results.run_summary's columns, `final_loss` (status.json's summary), `label` (as `make
    plan` shows the run) and `status` as run_state says. Raises records.CorruptRun."""
    records = read_run(folder, frames=False)
    row = run_summary(folder, records)
    row["status"] = run_state(folder, records.status.get("status"))
    row["final_loss"] = records.status.get("summary", {}).get("final_loss")
    row["label"] = run_label(records.config)
    return row


def run_table(results: str | Path) -> pd.DataFrame:
    """Every readable run under a results root, one row each (run_row); a corrupt one is one line on stderr."""
    rows = []
    for folder in run_folders(results):
        try:
            rows.append(run_row(folder))
        except CorruptRun as e:
            print(f"bnopt: skipping corrupt run {folder.name}: {e.reason}", file=sys.stderr)
    return pd.DataFrame(rows, columns=None if rows else ["run_id", "model", "lr", "seed", "scale", "status"])


def _number(value) -> float | None:
    return None if value is None or (isinstance(value, float) and math.isnan(value)) else float(value)


def final_metric(row) -> str:
    """The number a run is judged by: the final test accuracy of a VGG run, the final training loss of a DLN
    run (or of a VGG run not evaluated yet); '-' before either exists."""
    acc, loss = _number(row.get("test_acc")), _number(row.get("final_loss"))
    if row.get("family") == "vgg" and acc is not None:
        return f"test acc {acc:.4f}"
    return f"loss {loss:.4g}" if loss is not None else "-"


def steps_column(frame: pd.DataFrame) -> pd.Series:
    return frame["steps_done"].astype(int).astype(str) + "/" + frame["steps"].astype(int).astype(str)


# ------------------------------------------------------------------------------------------ bnopt runs


def public_choices(group: str) -> list[str]:
    """The options of a config group a user may name (the _private bases left out)."""
    return sorted(p.stem for p in (CONFIG_DIR / group).glob("*.yaml") if not p.stem.startswith("_"))


def filter_choices() -> dict[str, list[str]]:
    """The values each string filter of `bnopt runs` accepts."""
    return {
        "model": public_choices("model"),
        "norm": list(NORMS),
        "scale": list(SCALES),
        "status": list(STATUSES),
        "experiment": [*experiments.registry(), "adhoc"],
    }


def check_choice(option: str, value: str, choices: list[str]) -> None:
    if value in choices:
        return
    close = difflib.get_close_matches(value, choices, n=1)
    hint = f"did you mean {close[0]}? " if close else ""
    raise UsageError(f"unknown --{option} {value!r}; {hint}choose one of {', '.join(choices)}")


def nonnegative_int(text: str) -> int:
    value = int(text)
    if value < 0:
        raise ValueError(text)
    return value


def selected(table: pd.DataFrame, args: argparse.Namespace) -> pd.DataFrame:
    """The rows of the run table that every given filter allows (a filter with several values allows any)."""
    keep = pd.Series(True, index=table.index)
    for key in ("model", "norm", "scale", "status", "experiment", "seed"):
        wants = getattr(args, key)
        if wants:
            keep &= table[key].isin(wants)
    if args.lr:
        keep &= table["lr"].map(lambda v: any(same_lr(v, w) for w in args.lr))
    return table[keep]


def committed_roots(results: Path) -> list[Path]:
    """Results roots of their own inside `results` that hold committed runs (results/small, results/paper)."""
    return sorted(p.parent for p in Path(results).glob(f"*/{RECORDS_DIR}") if run_folders(p.parent))


def say_no_runs(results: Path) -> None:
    where = runs_dir(results)
    committed = committed_roots(results)
    if committed:
        roots = " or ".join(f"bnopt runs --results {p}" for p in committed)
        print(f"no runs under {where}; to read the committed ones: {roots}")
    else:
        print(f"no runs under {where}; train one (bnopt-train model=vgg16_bn scale=small) or name another --results")


def cmd_runs(args: argparse.Namespace) -> int:
    table = run_table(args.results)
    for key, choices in filter_choices().items():
        here = table[key].dropna().astype(str).tolist() if key in table else []  # e.g. an experiment of one's own
        for value in getattr(args, key) or []:
            check_choice(key, value, sorted(set(choices) | set(here)))
    if not len(table):
        say_no_runs(Path(args.results))
        return 0
    rows = selected(table, args)
    if not len(rows):
        print(f"no run under {runs_dir(args.results)} matches the filters ({len(table)} runs in all)")
        return 0
    shown = pd.DataFrame(
        {
            "run": rows["run_id"],
            "model": rows["model"],
            "lr": rows["lr"].map("{:g}".format),
            "seed": rows["seed"],
            "scale": rows["scale"],
            "steps": steps_column(rows),
            "status": rows["status"],
            "final": rows.apply(final_metric, axis=1),
            "experiment": rows["experiment"],  # what sets apart runs of the same model, LR and seed
        }
    )
    print(shown.to_string(index=False))
    print(f"{len(rows)} of {len(table)} runs under {runs_dir(args.results)}")
    return 0


# ---------------------------------------------------------------------------------------- run by name


def find_run(results: str | Path, ref: str) -> Path:
    """The folder of the run whose id is `ref` or starts with it; UsageError naming the problem otherwise."""
    folders = {p.name: p for p in run_folders(results)}
    if ref in folders:
        return folders[ref]
    hits = [name for name in folders if name.startswith(ref)]
    if len(hits) == 1:
        return folders[hits[0]]
    where = runs_dir(results)
    if hits:
        shown = ", ".join(hits[:4]) + (", ..." if len(hits) > 4 else "")
        raise UsageError(f"run id prefix {ref!r} is ambiguous: {len(hits)} runs under {where} start with it ({shown})")
    close = difflib.get_close_matches(ref, list(folders), n=1)
    listing = "bnopt runs" + ("" if str(results) == DEFAULT_RESULTS else f" --results {results}")
    hint = f"did you mean {close[0]}?" if close else f"{len(folders)} runs there; `{listing}` lists them"
    raise UsageError(f"no run {ref!r} under {where}; {hint}")


def read_named_run(results: str | Path, ref: str) -> tuple[dict, DictConfig]:
    """The run row (run_row) and resolved config of the run `ref` names."""
    folder = find_run(results, ref)
    try:
        return run_row(folder), read_run(folder, frames=False).config
    except CorruptRun as e:
        raise UsageError(f"run {folder.name} is corrupt: {e.reason}") from None


# ---------------------------------------------------------------------------------------- bnopt compare


def flat(tree: dict | DictConfig) -> dict:
    """{dotted key: value} of a nested config (lists stay values)."""
    container = OmegaConf.to_container(tree, resolve=True) if isinstance(tree, DictConfig) else tree
    return pd.json_normalize(container, sep=".").iloc[0].to_dict()


def config_diff(a: DictConfig, b: DictConfig) -> pd.DataFrame:
    """The config keys whose values differ between two runs, and whether each is in the run id (changes
    what is trained or recorded) or not (where the run is stored, how it is logged or named)."""
    fa, fb = flat(a), flat(b)
    in_id = set(flat(identity(a))) | set(flat(identity(b)))
    absent = "(absent)"
    keys = [k for k in sorted(fa.keys() | fb.keys()) if fa.get(k, absent) != fb.get(k, absent)]
    return pd.DataFrame(
        {
            "A": [fa.get(k, absent) for k in keys],
            "B": [fb.get(k, absent) for k in keys],
            "in run id": ["yes" if k in in_id else "no" for k in keys],
        },
        index=pd.Index(keys, name="key"),
    )


def metrics_side_by_side(a: dict, b: dict) -> pd.DataFrame:
    """The two runs' identity at a glance and their final numbers, one column each."""

    def column(row: dict) -> dict:
        return {
            "run": row["run_id"],
            "model": row["model"],
            "lr": f"{row['lr']:g}",
            "seed": row["seed"],
            "scale": row["scale"],
            "status": row["status"],
            "steps": f"{row['steps_done']}/{row['steps']}",
            "final": final_metric(row),
            "final training loss": "-" if _number(row["final_loss"]) is None else f"{row['final_loss']:.4g}",
            "time": "-" if _number(row["elapsed_s"]) is None else f"{row['elapsed_s'] / 60:.1f} min",
        }

    return pd.DataFrame({"A": column(a), "B": column(b)})


def cmd_compare(args: argparse.Namespace) -> int:
    (a, cfg_a), (b, cfg_b) = read_named_run(args.results, args.a), read_named_run(args.results, args.b)
    print(metrics_side_by_side(a, b).to_string())
    diff = config_diff(cfg_a, cfg_b)
    if not len(diff):
        print("\nthe resolved configs are identical")
        return 0
    print(f"\nconfig keys that differ ({len(diff)}; 'in run id': changes what is trained or recorded):")
    print(diff.to_string())
    return 0


# ------------------------------------------------------------------------------------------ bnopt plot


def default_plot_path(results: str | Path, rid: str) -> Path:
    """<results>/plots/<run id>.png; for committed records (results/small/runs) results/plots, so that
    nothing is written beside committed evidence."""
    root = runs_dir(results).parent
    return (root.parent if root.name in SCALES else root) / "plots" / f"{rid}.png"


def cmd_plot(args: argparse.Namespace) -> int:
    folder = find_run(args.results, args.run)
    out = Path(args.out) if args.out else default_plot_path(args.results, folder.name)
    kinds = ("png", "pdf", "svg")
    if out.suffix.lstrip(".").lower() not in kinds:
        raise UsageError(f"--out {out}: write a {', '.join(kinds)} file")
    res = load_runs(args.results, with_probes=False, run_id=folder.name)
    if not len(res.runs):
        raise UsageError(f"run {folder.name} is corrupt (see the line above)")
    if not len(res.metrics):
        raise UsageError(f"run {folder.name} has no records yet (metrics.parquet is written at its first checkpoint)")
    fig = plot_run_curves(res, folder.name)
    out.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(out, dpi=PLOT_DPI)
    print(f"wrote {out}")
    return 0


# -------------------------------------------------------------------------------------------- bnopt id

MULTIRUN_FLAGS = ("-m", "--multirun")


def sweep_jobs(overrides: list[str]) -> list[list[str]]:
    """One override list per run, as `bnopt-train` would launch them: an experiment's sweep, a -m sweep
    (expanded by Hydra's sweeper), or the one run."""
    experiment = next((o.split("=", 1)[1] for o in overrides if o.split("=", 1)[0] == "experiment"), "null")
    if experiment != "null":
        rest = [o for o in overrides if o.split("=", 1)[0] != "experiment"]
        return experiments.get(experiment).sweep(rest)
    return experiments.expand(overrides)


def job_configs(overrides: list[str]) -> list[DictConfig]:
    """The resolved, validated config of every run the overrides ask for; UsageError on the first bad one."""
    try:
        cfgs = [resolve(experiments.compose_run(job)) for job in sweep_jobs(overrides)]
        for cfg in cfgs:
            validate(cfg)
    except ConfigError as e:
        raise UsageError(str(e)) from None
    except HydraException as e:
        raise UsageError(hydra_error_line(e)) from None
    return cfgs


def cmd_id(args: argparse.Namespace) -> int:
    multirun = any(a in MULTIRUN_FLAGS for a in args.overrides)
    given = [a for a in args.overrides if a not in MULTIRUN_FLAGS]
    stray = [a for a in given if "=" not in a]
    if stray:
        raise UsageError(f"{stray[0]!r} is not an override (key=value, as bnopt-train takes them)")
    precheck_overrides(given)  # unknown group choices (model=foo): one line, exit 2
    # Hydra's own settings (launcher, sweep folder) do not change what a run trains
    overrides = [o for o in given if not o.lstrip("+~").startswith("hydra")]
    cfgs = job_configs(overrides)
    sweep = multirun or len(cfgs) > 1 or any(o.startswith("experiment=") for o in overrides)
    if not sweep:
        print(run_id(cfgs[0]))
        return 0
    rows = []
    for cfg in cfgs:
        folder = RunFolder(Path(cfg.paths.results), run_id(cfg))
        rows.append(
            {
                "run": folder.run_id,
                "status": run_state(folder.path, (folder.status() or {}).get("status")),
                "label": run_label(cfg),
                "folder": str(folder.path),
            }
        )
    print(pd.DataFrame(rows).drop_duplicates("run").to_string(index=False))
    return 0


# ------------------------------------------------------------------------------------------------ main


def add_results(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--results", default=DEFAULT_RESULTS, help="results root (runs/ inside; the committed: results/small)"
    )


def build_parser() -> Parser:
    ap = Parser(prog="bnopt", description="Inspect bnopt's runs (to train: bnopt-train, make reproduce).")
    sub = ap.add_subparsers(dest="command", required=True, metavar="{runs,compare,plot,id}")
    runs = sub.add_parser("runs", help="a table of the runs: id, model, LR, seed, scale, steps, status, final metric")
    add_results(runs)
    for key in ("model", "norm", "scale", "status", "experiment"):
        runs.add_argument(f"--{key}", nargs="+", metavar=key.upper(), help=f"only runs of this {key} (or these)")
    runs.add_argument("--lr", nargs="+", type=float, metavar="LR", help="only runs at this learning rate (or these)")
    runs.add_argument("--seed", nargs="+", type=nonnegative_int, metavar="N", help="only runs of this seed (or these)")
    runs.set_defaults(handler=cmd_runs)
    compare = sub.add_parser("compare", help="two runs' final metrics and differing config keys, side by side")
    compare.add_argument("a", metavar="A", help="a run id or a unique prefix of one")
    compare.add_argument("b", metavar="B", help="a run id or a unique prefix of one")
    add_results(compare)
    compare.set_defaults(handler=cmd_compare)
    plot = sub.add_parser("plot", help="one run's training curves as an image (never trains)")
    plot.add_argument("run", metavar="RUN", help="a run id or a unique prefix of one")
    plot.add_argument("--out", help="the image file (.png, .pdf, .svg; default <results>/plots/<run id>.png)")
    add_results(plot)
    plot.set_defaults(handler=cmd_plot)
    ident = sub.add_parser("id", help="the run id(s) bnopt-train would train for these overrides (trains nothing)")
    ident.add_argument("overrides", nargs="*", help="bnopt-train's overrides (-m and experiment= too)")
    ident.set_defaults(handler=cmd_id)
    return ap


def main(argv: list[str] | None = None) -> int:
    try:
        args, flags = build_parser().parse_known_args(sys.argv[1:] if argv is None else argv)
        if flags and args.command != "id":  # only `bnopt id` passes bnopt-train's -m on
            raise UsageError(f"unrecognized arguments: {' '.join(flags)}")
        if flags:
            args.overrides += flags
        return args.handler(args)
    except UsageError as e:
        print(f"bnopt: error: {e}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    sys.exit(main())
