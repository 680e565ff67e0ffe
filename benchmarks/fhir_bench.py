"""Benchmark of the FHIR R4 export and import (issue 14), on SQLite by default.

    python benchmarks/fhir_bench.py --patients 10000 --import-patients 300 --data-dir /tmp/orthoreg-fhir-bench
    python benchmarks/fhir_bench.py --patients 100000        # the export target: 100,000 patients < 500 MB
    python benchmarks/fhir_bench.py --patients 100000 --skip-import --data-dir /tmp/orthoreg-bench/sqlite-100000 \
        --out /tmp/fhir-export --remove-output       # an existing registry, used as it is

* export: `orthoreg export fhir` of a synthetic registry of --patients patients (built with `orthoreg synth`,
  reused when it is there), in a child process: wall time, resources per second and the child's peak memory
  (maximum resident set size, from the operating system; target < 500 MB). When --data-dir itself holds a
  registry (an orthoreg.sqlite3; or --database-url), that registry is exported as it is: never synthesised into
  nor migrated (the export's one write to it is its audit event); its output then goes to --out, never into it;
* import: `orthoreg import fhir` of the export of a registry of --import-patients patients into an empty
  registry, in a child process, --repeat times each way (interleaved): as it runs by default (ndjson validated
  ahead in a second process where there is a second core) and with --single-process; resources read per second
  (target >= 2,000/s on SQLite; best and median) and records written per second, beside the floor: the raw insert
  rate of the same rows (bulk_create of the very rows the import wrote, in one transaction, rolled back), and the
  ratio of the two; the start-up alone; whether orthoreg's modules started from cached bytecode
  (--compile-bytecode compiles them first, as installing a wheel does: an editable install under
  PYTHONDONTWRITEBYTECODE compiles them again at every command, ~0.1 s of the start-up and more of the import).

Figures are printed, never asserted: this is not part of the test run.
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import shutil
import statistics
import subprocess
import sys
import time
from pathlib import Path

from run import row  # benchmarks/run.py's row format (this folder is on the path when a script here runs)

ORTHOREG = [sys.executable, "-m", "orthoreg"]


def env_for(data_dir: Path, database_url: str | None = None) -> dict:
    env = dict(os.environ, ORTHOREG_DATA_DIR=str(data_dir), DJANGO_SETTINGS_MODULE="orthoreg.settings")
    env.pop("ORTHOREG_DATABASE_URL", None)
    if database_url:
        env["ORTHOREG_DATABASE_URL"] = database_url
    return env


def timed_child(args: list[str], env: dict) -> tuple[float, float, str]:
    """Run a child; (seconds, peak resident memory in MB, its standard output)."""
    started = time.perf_counter()
    proc = subprocess.Popen(args, env=env, stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True)
    out = proc.stdout.read()
    _, status, usage = os.wait4(proc.pid, 0)
    proc.returncode = os.waitstatus_to_exitcode(status)
    seconds = time.perf_counter() - started
    if proc.returncode not in (0,):
        raise SystemExit(f"{' '.join(args)} failed with {proc.returncode}:\n{out[-2000:]}")
    return seconds, usage.ru_maxrss / 1024, out  # ru_maxrss is in KiB on Linux


def load() -> str:
    return " ".join(f"{x:.1f}" for x in os.getloadavg())


def ensure_registry(patients: int, env: dict) -> None:
    subprocess.run([*ORTHOREG, "migrate", "--verbosity", "0"], env=env, check=True)
    count = int(subprocess.run([sys.executable, __file__, "--child", "count"], env=env, check=True,
                               capture_output=True, text=True).stdout.strip() or 0)
    if count >= patients:
        print(f"  reusing the registry in {env['ORTHOREG_DATA_DIR']}: {count:,} patients")
        return
    print(f"  generating {patients - count:,} patients ...", flush=True)
    started = time.perf_counter()
    subprocess.run([*ORTHOREG, "synth", "--patients", str(patients - count), "--batch", "2000", "--no-progress"],
                   env=env, check=True)
    print(f"  generated in {time.perf_counter() - started:.0f} s", flush=True)


def count_lines(directory: Path) -> dict[str, int]:
    counts = {}
    for path in sorted(directory.glob("*.ndjson")):
        with open(path, "rb") as fh:
            counts[path.stem] = sum(1 for _ in fh)
    return counts


def existing_registry(patients: int, env: dict) -> None:
    """An existing registry, read as it is: its patients counted, nothing synthesised, nothing migrated."""
    count = int(subprocess.run([sys.executable, __file__, "--child", "count"], env=env, check=True,
                               capture_output=True, text=True).stdout.strip() or 0)
    print(f"  the existing registry in {env['ORTHOREG_DATA_DIR']}: {count:,} patients (used as it is)")
    if count < patients:
        raise SystemExit(f"it has {count:,} patients, fewer than --patients {patients:,}")


def bench_export(patients: int, root: Path, *, out: Path | None = None, database_url: str | None = None,
                 remove_output: bool = False) -> list[dict]:
    print(f"export of {patients:,} patients")
    if database_url or (root / "orthoreg.sqlite3").exists():
        env = env_for(root, database_url)
        existing_registry(patients, env)
        if out is None:
            raise SystemExit("--out DIR is needed with an existing registry (its output never goes into it)")
    else:
        env = env_for(root / f"source-{patients}")
        ensure_registry(patients, env)
    out = out or root / f"export-{patients}"
    cpu = os.times()
    seconds, peak, _ = timed_child([*ORTHOREG, "export", "fhir", "--out", str(out), "--no-progress"], env)
    cpu_seconds = os.times().children_user - cpu.children_user + os.times().children_system - cpu.children_system
    counts = count_lines(out)
    total = sum(counts.values())
    size = sum(p.stat().st_size for p in out.glob("*.ndjson")) / 1e6
    print(f"  {total:,} resources ({', '.join(f'{k} {v:,}' for k, v in counts.items())}), {size:,.0f} MB")
    print(f"  export: {seconds:,.1f} s, {total / seconds:,.0f} resources/s, {cpu_seconds:,.1f} s of CPU "
          f"({total / cpu_seconds:,.0f} resources per CPU second), peak memory {peak:,.0f} MB "
          f"(target < 500 MB: {'met' if peak < 500 else 'NOT met'}); load average {load()}")
    if remove_output:
        for path in out.glob("*.ndjson"):
            path.unlink()
        print(f"  removed the ndjson files in {out}")
    note = f"{patients:,} patients, {total:,} resources; load average {load()}"
    return [row(f"FHIR export, {patients:,} patients", total / seconds, "resources/s", note=note),
            row(f"FHIR export peak memory, {patients:,} patients", peak, "MB", 500.0, 1.0,
                note="floor column: the 500 MB target (at 100,000 patients)")]


def bytecode_state() -> str:
    """Whether orthoreg's own modules start from cached bytecode: with PYTHONDONTWRITEBYTECODE set and an editable
    install (no __pycache__ written), every command compiles them again (an installed wheel has them compiled)."""
    import importlib.util

    package = Path(importlib.util.find_spec("orthoreg").origin).parent
    sources = list(package.rglob("*.py"))
    cached = sum(1 for p in sources if Path(importlib.util.cache_from_source(str(p))).exists())
    note = " (PYTHONDONTWRITEBYTECODE is set)" if os.environ.get("PYTHONDONTWRITEBYTECODE") else ""
    return f"{cached:,} of {len(sources):,} orthoreg modules have cached bytecode{note}"


def compile_bytecode() -> None:
    """What installing a wheel does: orthoreg's modules compiled once (python -m compileall)."""
    import importlib.util

    package = Path(importlib.util.find_spec("orthoreg").origin).parent
    subprocess.run([sys.executable, "-m", "compileall", "-q", str(package)], check=True, stdout=subprocess.DEVNULL)


def _import_once(files: Path, empty: Path, root: Path, extra: list[str], keep: Path | None = None
                 ) -> tuple[float, float, float, dict]:
    """One import of files into a fresh copy of the empty registry (kept as `keep`, else removed afterwards):
    (seconds, CPU seconds, peak MB, summary)."""
    target = keep or root / f"import-target-{int(time.time() * 1000)}"
    shutil.rmtree(target, ignore_errors=True)
    shutil.copytree(empty, target)
    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    seconds, peak, out = timed_child([*ORTHOREG, "import", "fhir", str(files), "--format", "json", *extra],
                                     env_for(target))
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    cpu = (after.ru_utime - before.ru_utime) + (after.ru_stime - before.ru_stime)  # the import's CPU (and its helper's)
    if keep is None:
        shutil.rmtree(target, ignore_errors=True)
    return seconds, cpu, peak, json.loads(out)


def _best_median(values: list[float]) -> str:
    return f"{min(values):,.2f} / {statistics.median(values):,.2f}"


def bench_import(patients: int, root: Path, repeat: int = 1) -> list[dict]:
    print(f"import of the export of {patients:,} patients into an empty registry")
    source_env = env_for(root / f"import-source-{patients}")
    ensure_registry(patients, source_env)
    files = root / f"import-files-{patients}"
    subprocess.run([*ORTHOREG, "export", "fhir", "--out", str(files), "--no-progress"], env=source_env, check=True,
                   stdout=subprocess.DEVNULL)
    empty = root / f"import-empty-{patients}"  # migrated, with the source's clinics; copied for every run
    shutil.rmtree(empty, ignore_errors=True)
    env = env_for(empty)
    subprocess.run([*ORTHOREG, "migrate", "--verbosity", "0"], env=env, check=True)
    clinics = subprocess.run([sys.executable, __file__, "--child", "clinics"], env=source_env, check=True,
                             capture_output=True, text=True).stdout.split()
    for code in clinics:
        subprocess.run([*ORTHOREG, "clinic", "create", code, "--name", code], env=env, check=True,
                       stdout=subprocess.DEVNULL)
    runs: dict[str, list[tuple[float, float, float, dict]]] = {"default": [], "single": []}
    imported = root / f"import-target-{patients}"  # the first import's registry: the floor re-inserts its rows
    for n in range(repeat):  # (interleaved: a change in the machine's load touches both alike)
        runs["default"].append(_import_once(files, empty, root, [], keep=imported if n == 0 else None))
        runs["single"].append(_import_once(files, empty, root, ["--single-process"]))
    seconds = min(r[0] for r in runs["default"])
    cpu = min(r[1] for r in runs["default"])
    peak = max(r[2] for r in runs["default"])
    summary = runs["default"][0][3]
    if any(r[3] != summary for rs in runs.values() for r in rs):
        raise SystemExit("the imports' summaries differ")
    # The start-up alone: the same command on an empty ndjson file (nothing to read), into the same registry.
    nothing = root / "import-nothing"
    nothing.mkdir(exist_ok=True)
    (nothing / "Patient.ndjson").touch()
    startups = [_import_once(nothing, empty, root, []) for _ in range(max(repeat, 3))]
    startup_seconds, startup_cpu = min(r[0] for r in startups), min(r[1] for r in startups)
    read = sum(u["resources"] for u in summary["units"])
    written = sum(s["created"] + s["updated"] for s in summary["resources"].values())
    floor = json.loads(subprocess.run([sys.executable, __file__, "--child", "floor"], env=env_for(imported),
                                      check=True, capture_output=True, text=True).stdout)
    rate = read / seconds
    created = ", ".join(f"{k} {s['created']:,}" for k, s in summary["resources"].items() if s["created"])
    print(f"  {read:,} resources read, {written:,} records written ({created}); {repeat} run(s) of each, "
          "best / median:")
    for name, label in (("default", "import (validated ahead in a second process where there is a second core)"),
                        ("single", "import --single-process (every resource validated in the import itself)")):
        walls = [r[0] for r in runs[name]]
        cpus = [r[1] for r in runs[name]]
        print(f"  {label}:\n    {_best_median(walls)} s wall, {read / min(walls):,.0f} / "
              f"{read / statistics.median(walls):,.0f} resources/s (target >= 2,000: "
              f"{'met' if read / min(walls) >= 2000 else 'NOT met'}); {_best_median(cpus)} s of CPU (both processes); "
              f"without the start-up {read / (min(walls) - startup_seconds):,.0f} resources/s")
    print(f"  peak memory {peak:,.0f} MB (the import's own process)")
    print(f"  start-up alone (the command on an empty directory): {startup_seconds:,.2f} s, {startup_cpu:,.2f} s of "
          "CPU (best)")
    print(f"  floor: raw insert of the same {floor['rows']:,} rows (bulk_create, one transaction): "
          f"{floor['seconds']:.2f} s, {floor['rows'] / floor['seconds']:,.0f} rows/s")
    print(f"  load average {load()} (the machine is shared: wall times stretch with it); {os.cpu_count()} cores")
    print(f"  start-up bytecode: {bytecode_state()}")
    print(f"  ratio: the import writes {written / seconds / (floor['rows'] / floor['seconds']):.3f} x the raw insert "
          f"rate ({floor['rows'] / floor['seconds'] / (written / seconds):,.0f} times slower)")
    raw = floor["rows"] / floor["seconds"]
    return [row(f"FHIR import, {patients:,} patients", rate, "resources/s", 2000.0, 1.0, lower_is_better=False,
                note=f"floor column: the 2,000/s target; load average {load()}; CPU {cpu:.2f} s"),
            row("FHIR import: records written against the raw insert rate", written / seconds, "records/s", raw,
                lower_is_better=False, note=f"raw insert of the same {floor['rows']:,} rows: {raw:,.0f} rows/s")]


# --- child processes ------------------------------------------------------------------------------------------

def _setup():
    import django

    django.setup()


def child(what: str) -> None:
    _setup()
    from django.db import transaction

    from orthoreg.instruments.models import Response
    from orthoreg.registry.models import AdverseEvent, Clinic, Episode, Patient, Procedure

    if what == "count":
        print(Patient.objects.count())
    elif what == "clinics":
        print(" ".join(Clinic.objects.values_list("code", flat=True)))
    elif what == "floor":
        models = (Patient, Episode, Procedure, Response, AdverseEvent)
        rows = {model: list(model.objects.order_by("pk")) for model in models}
        total = sum(len(v) for v in rows.values())
        with transaction.atomic():
            for model in reversed(models):
                model.objects.all().delete()  # cascades; the rows are re-inserted just below
            started = time.perf_counter()
            for model in models:
                model.objects.bulk_create(rows[model], batch_size=2000)
            seconds = time.perf_counter() - started
            transaction.set_rollback(True)
        print(json.dumps({"rows": total, "seconds": seconds}))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--patients", type=int, default=1000, help="patients of the export (default 1,000)")
    parser.add_argument("--import-patients", type=int, default=200, help="patients of the import (default 200)")
    parser.add_argument("--data-dir", type=Path, default=Path("/tmp/orthoreg-fhir-bench"))
    parser.add_argument("--skip-export", action="store_true")
    parser.add_argument("--skip-import", action="store_true")
    parser.add_argument("--quick", action="store_true", help="200 patients exported, 100 imported")
    parser.add_argument("--json", type=Path, default=None, help="save the rows here (benchmarks/run.py's format)")
    parser.add_argument("--out", type=Path, default=None,
                        help="directory of the export's output (default DATA_DIR/export-N; needed when --data-dir "
                             "is an existing registry)")
    parser.add_argument("--database-url", default=None,
                        help="export this existing registry (PostgreSQL) instead of a synthetic SQLite one")
    parser.add_argument("--remove-output", action="store_true", help="delete the export's ndjson files afterwards")
    parser.add_argument("--compile-bytecode", action="store_true",
                        help="compile orthoreg's modules first (python -m compileall: what installing a wheel does); "
                             "an editable install under PYTHONDONTWRITEBYTECODE compiles them at every command")
    parser.add_argument("--repeat", type=int, default=1,
                        help="imports of each kind (with and without the second process), interleaved; best and "
                             "median printed")
    parser.add_argument("--child", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child:
        child(args.child)
        return
    if args.quick:
        args.patients, args.import_patients = min(args.patients, 200), min(args.import_patients, 100)
    args.data_dir.mkdir(parents=True, exist_ok=True)
    if args.compile_bytecode:
        compile_bytecode()
    rows = []
    if not args.skip_export:
        rows += bench_export(args.patients, args.data_dir, out=args.out, database_url=args.database_url,
                             remove_output=args.remove_output)
    if not args.skip_import:
        rows += bench_import(args.import_patients, args.data_dir, repeat=args.repeat)
    if args.json:
        args.json.write_text(json.dumps(rows, indent=1))


if __name__ == "__main__":
    main()
