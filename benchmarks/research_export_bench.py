"""Benchmark of the research export (issue 14 item 5) on a synthetic registry.

    python benchmarks/research_export_bench.py --patients 20000 --data-dir /tmp/orthoreg-bench/research-20000

Builds the registry with `orthoreg synth` when it has fewer patients than asked (all consented: the synthetic
generator's consent rate applies), then runs in fresh processes, each measured for wall time and peak memory (the
child's maximum resident set size):

* floor: the responses table (the largest) streamed by one raw SQL SELECT into a CSV file with the csv module;
* export ZIP, export CSV folder, export Parquet folder (`orthoreg export research ...`).

Figures are printed with the ratio to the floor, never asserted: this is not part of the test run.
"""

from __future__ import annotations

import argparse
import os
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

ORTHOREG = [sys.executable, "-m", "orthoreg"]
FLOOR = """
import csv, os, django
os.environ.setdefault("DJANGO_SETTINGS_MODULE", "orthoreg.settings")
django.setup()
from django.db import connection
with open(os.environ["BENCH_OUT"], "w", newline="") as fh, connection.cursor() as cursor:
    cursor.execute("SELECT id, patient_id, episode_id, completed_at, time_point, instrument, instrument_version, "
                   "score, valid, scores, source FROM instruments_response ORDER BY patient_id, completed_at, id")
    writer = csv.writer(fh)
    while rows := cursor.fetchmany(5000):
        writer.writerows(rows)
"""
COUNT = """
import os, django
os.environ.setdefault("DJANGO_SETTINGS_MODULE", "orthoreg.settings")
django.setup()
from orthoreg.instruments.models import Response
from orthoreg.registry.models import Patient
print(Patient.objects.count(), Response.objects.count())
"""


def measured(args: list[str], env: dict) -> tuple[float, float]:
    """(seconds, peak MiB) of one child process run to its end."""
    wrapper = ("import resource, subprocess, sys, time\n"
               "t = time.perf_counter(); subprocess.run(sys.argv[1:], check=True, stdout=subprocess.DEVNULL)\n"
               "print(time.perf_counter() - t, resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss / 1024)")
    out = subprocess.run([sys.executable, "-c", wrapper, *args], env=env, check=True, capture_output=True, text=True)
    seconds, mib = out.stdout.split()
    return float(seconds), float(mib)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--patients", type=int, default=5000)
    parser.add_argument("--data-dir", type=Path, default=Path(tempfile.gettempdir()) / "orthoreg-bench-research")
    options = parser.parse_args()
    env = dict(os.environ, ORTHOREG_DATA_DIR=str(options.data_dir), DJANGO_SETTINGS_MODULE="orthoreg.settings")
    env.pop("ORTHOREG_DATABASE_URL", None)
    subprocess.run([*ORTHOREG, "migrate", "--verbosity", "0"], env=env, check=True)
    patients, responses = map(int, subprocess.run([sys.executable, "-c", COUNT], env=env, check=True,
                                                  capture_output=True, text=True).stdout.split())
    if patients < options.patients:
        print(f"generating {options.patients - patients:,} patients ...", flush=True)
        subprocess.run([*ORTHOREG, "synth", "--patients", str(options.patients - patients), "--no-progress"],
                       env=env, check=True)
        patients, responses = map(int, subprocess.run([sys.executable, "-c", COUNT], env=env, check=True,
                                                      capture_output=True, text=True).stdout.split())
    subprocess.run([*ORTHOREG, "analytics", "refresh"], env=env, check=True, stdout=subprocess.DEVNULL)
    print(f"registry: {patients:,} patients, {responses:,} responses (SQLite, {options.data_dir})")
    out = Path(tempfile.mkdtemp(prefix="orthoreg-research-bench-"))
    try:
        floor, floor_mib = measured([sys.executable, "-c", FLOOR], dict(env, BENCH_OUT=str(out / "floor.csv")))
        print(f"{'floor (raw SELECT of responses to CSV)':44} {floor:8.2f} s {floor_mib:8.0f} MiB peak")
        for label, extra in (("export ZIP of CSV", ["--out", str(out / "x.zip")]),
                             ("export --format csv", ["--format", "csv", "--out", str(out / "csv")]),
                             ("export --format parquet", ["--format", "parquet", "--out", str(out / "pq")])):
            seconds, mib = measured([*ORTHOREG, "export", "research", *extra], env)
            print(f"{label:44} {seconds:8.2f} s {mib:8.0f} MiB peak   {seconds / floor:5.1f} x floor")
    finally:
        shutil.rmtree(out, ignore_errors=True)


if __name__ == "__main__":
    main()
