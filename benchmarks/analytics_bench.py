"""Benchmark of the cohort report on a synthetic registry (issue 7).

    python benchmarks/analytics_bench.py --patients 100000 \\
        --data-dir /tmp/orthoreg-bench/sqlite-100000 \\
        --database-url postgresql://postgres@127.0.0.1:5432/orthoreg_bench_100000

For each target (SQLite in --data-dir; PostgreSQL at --database-url when given) it builds the registry with
`orthoreg synth` when it has fewer patients than asked (or reuses it), then times in a fresh process:

* floor: the single raw SQL aggregate over the same responses
  (SELECT time_point, instrument, COUNT(*), AVG(score) FROM instruments_response WHERE valid GROUP BY 1, 2);
* report: the full cohort report of every treated episode (analytics.selectors.cohort_report, cache off), the
  JSON document of `orthoreg report cohort --format json`;
* report (filtered): hallux rigidus, grade 2-3, bone marrow concentrate + prolotherapy within 30 days;
* the same full report without the analyses of issue 16 (cumulative incidence with death competing, change
  distributions and PASS, loss to follow-up judged, methods) beside it with them, and a comparison of two cohorts
  (bone marrow concentrate vs hyaluronic acid) without and with them and the IPW-adjusted comparison (its
  bootstrap included), each against the floor and the 2 s target of issue 16, with the load average of the
  machine (os.getloadavg) before and after;
* each phase of the full report, and the refresh of the facts after one new answer (--phases);
* rebuilding every analytics fact from the clinical records (--rebuild).

Wall-clock figures are printed, never asserted: this is not part of the test run.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import time
from pathlib import Path

ORTHOREG = [sys.executable, "-m", "orthoreg"]


def env_for(data_dir: Path, database_url: str | None) -> dict:
    env = dict(os.environ, ORTHOREG_DATA_DIR=str(data_dir), DJANGO_SETTINGS_MODULE="orthoreg.settings")
    env.pop("ORTHOREG_DATABASE_URL", None)
    if database_url:
        env["ORTHOREG_DATABASE_URL"] = database_url
    return env


def ensure_registry(patients: int, env: dict, label: str) -> None:
    subprocess.run([*ORTHOREG, "migrate", "--verbosity", "0"], env=env, check=True)
    count = int(subprocess.run([sys.executable, __file__, "--count"], env=env, check=True, capture_output=True,
                               text=True).stdout.strip() or 0)
    if count >= patients:
        print(f"[{label}] reusing the registry: {count:,} patients")
        return
    print(f"[{label}] generating {patients - count:,} patients (have {count:,}) ...", flush=True)
    started = time.perf_counter()
    subprocess.run([*ORTHOREG, "synth", "--patients", str(patients - count), "--batch", "2000", "--no-progress"],
                   env=env, check=True)
    print(f"[{label}] generated in {time.perf_counter() - started:.0f} s", flush=True)


# ------------------------------------------------------------------------------------------------ child process

def _setup():
    import django

    django.setup()


def count_patients() -> int:
    _setup()
    from orthoreg.registry.models import Patient

    return Patient.objects.count()


CPU: dict[int, float] = {}  # id of a list of wall-clock times -> the least CPU time of this process behind them


def _timed(fn, repeat: int) -> list[float]:
    """Wall-clock times of `repeat` runs; the least CPU time of this process (time.process_time: Python and SQLite,
    not the PostgreSQL server) is kept beside them (`_cpu`), the figure to compare on a loaded machine."""
    times, cpu = [], []
    for _ in range(repeat):
        started, cpu_started = time.perf_counter(), time.process_time()
        fn()
        times.append(time.perf_counter() - started)
        cpu.append(time.process_time() - cpu_started)
    CPU[id(times)] = min(cpu)
    return times


def _cpu(times: list[float]) -> float:
    return CPU[id(times)]


def measure(repeat: int, phases: bool, rebuild: bool) -> dict:
    _setup()
    import resource

    from django.db import connection
    from django.utils import timezone

    from orthoreg.analytics import cohorts, facts, metrics, selectors, summaries, survival
    from orthoreg.analytics import definitions as defs
    from orthoreg.analytics.filters import CohortFilter
    from orthoreg.analytics.survival import survival_pairs
    from orthoreg.instruments.models import Response
    from orthoreg.registry.models import Clinic, Patient

    ids = set(Clinic.objects.values_list("pk", flat=True))
    floor_sql = ("SELECT time_point, instrument, COUNT(*), AVG(score) FROM instruments_response WHERE valid "
                 "GROUP BY time_point, instrument")

    def floor():
        with connection.cursor() as cursor:
            cursor.execute(floor_sql)
            cursor.fetchall()

    started = time.perf_counter()
    facts.refresh()  # any queued episode is rebuilt here, outside the timed reports (which only read the facts)
    refreshed = time.perf_counter() - started
    everyone = CohortFilter()
    filtered = CohortFilter(condition="hallux_rigidus", grade_min=2, grade_max=3, procedures=("bmc", "prolotherapy"))
    bmc = CohortFilter(procedures=("bmc",))
    rest = CohortFilter(procedures=("hyaluronic_acid",))
    # one untimed report and comparison first: a serving process has lifelines, scipy and statsmodels imported
    selectors.comparison_report(bmc, rest, clinic_ids=ids, use_cache=False)
    load_before = os.getloadavg()
    result = {
        "vendor": connection.vendor, "patients": Patient.objects.count(), "responses": Response.objects.count(),
        "refresh_before": refreshed,
        "floor": _timed(floor, repeat),
        "report": _timed(lambda: selectors.cohort_report(everyone, clinic_ids=ids, use_cache=False), repeat),
        "report_plain": _timed(lambda: selectors.cohort_report(everyone, clinic_ids=ids, use_cache=False,
                                                               analyses=False), repeat),
        "comparison": _timed(lambda: selectors.comparison_report(bmc, rest, clinic_ids=ids, use_cache=False),
                             repeat),
        "comparison_plain": _timed(lambda: selectors.comparison_report(bmc, rest, clinic_ids=ids, use_cache=False,
                                                                       analyses=False), repeat),
        "report_filtered": _timed(lambda: selectors.cohort_report(filtered, clinic_ids=ids, use_cache=False), repeat),
    }
    result["load"] = [round(x, 2) for x in load_before], [round(x, 2) for x in os.getloadavg()]
    result["cpu"] = {k: _cpu(v) for k, v in result.items() if isinstance(v, list) and id(v) in CPU}
    report = selectors.cohort_report(everyone, clinic_ids=ids, use_cache=False)
    result["json_bytes"] = len(json.dumps(report.document()))
    result["treated"] = report.cohort.episodes
    comparison = selectors.comparison_report(bmc, rest, clinic_ids=ids, use_cache=False)
    adjusted = comparison.adjusted.document() if comparison.adjusted else {}
    result["adjusted"] = {k: adjusted.get(k) for k in ("difference", "ci_low", "ci_high", "reason",
                                                                      "n_a", "n_b")}
    if phases:
        as_of = timezone.localdate()
        infos = metrics.instrument_infos()
        with selectors.analytics_session():
            members = cohorts.cohort_episodes(everyone, clinic_ids=ids)
            cells = metrics.clinic_cells(sorted(ids), as_of=as_of)
            pairs = survival_pairs(members, as_of=as_of)
            competing = survival.competing_rows(members, as_of=as_of)
            head = report.headline.time_point if report.headline else "6m"
            pain = infos[defs.PAIN_INSTRUMENT]
            result["phases"] = {
                "facts up to date? (2 queries)": _timed(facts.refresh, 1),
                "summary with the adverse events (2 queries)": _timed(lambda: selectors.cohort_summary(members), 1),
                "outcome cells of the clinics (1 query)": _timed(
                    lambda: metrics.clinic_cells(sorted(ids), as_of=as_of), 1),
                "the same from the outcome facts (1 query)": _timed(
                    lambda: metrics.outcome_cells(metrics.eligible_outcomes(members, as_of=as_of)), 1),
                "arithmetic on the cells": _timed(lambda: summaries.time_points(cells, infos, treated=1), 1),
                "survival pairs (1 query)": _timed(lambda: survival_pairs(members, as_of=as_of), 1),
                "Kaplan-Meier (lifelines)": _timed(lambda: selectors.survival_section(pairs), 1),
                "issue 16: competing-risk rows (1 query)": _timed(
                    lambda: survival.competing_rows(members, as_of=as_of), 1),
                "issue 16: Aalen-Johansen": _timed(lambda: selectors.incidence_section(competing), 1),
                "issue 16: baseline of the groups (1 query)": _timed(
                    lambda: metrics.baseline_by_group(metrics.eligible_outcomes(members, as_of=as_of)
                                                      .filter(time_point=head), pain), 1),
                "issue 16: arithmetic with distributions": _timed(
                    lambda: summaries.time_points(cells, infos, treated=1, passes=metrics.pass_infos()), 1),
                "issue 16: outcome cells of the 2 cohorts": _timed(
                    (lambda: selectors.outcome_cells([bmc, rest], clinic_ids=ids, as_of=as_of, disjoint=True))
                    if hasattr(selectors, "outcome_cells") else  # before they were counted together
                    (lambda: [metrics.outcome_cells(metrics.eligible_outcomes(cohorts.cohort_episodes(
                        f, clinic_ids=ids), as_of=as_of)) for f in (bmc, rest)]), 1),
                "issue 16: comparison rows, 2 cohorts (2 queries)": _timed(
                    lambda: [metrics.comparison_rows(cohorts.cohort_episodes(f, clinic_ids=ids), as_of=as_of,
                                                     time_point=head, info=pain) for f in (bmc, rest)], 1),
                "issue 16: adjusted section (rows, IPW, bootstrap)": _timed(
                    lambda: selectors.adjusted_section(bmc, rest, comparison.cohorts[0], comparison.cohorts[1], 0,
                                                       clinic_ids=ids, as_of=as_of), 1),
            }
        result["phases_cpu"] = {k: _cpu(v) for k, v in result["phases"].items()}
        # the write side: one patient answers a questionnaire; the next report rebuilds that patient's facts
        response = Response.objects.filter(episode__isnull=False).order_by("-pk").first()
        if response is not None:
            response.save()  # queues the patient's episodes, as any answer does
            result["phases"]["refresh after one answer"] = _timed(facts.refresh, 1)
    if rebuild:
        result["rebuild_all"] = _timed(facts.rebuild_all, 1)
    result["max_rss_mb"] = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    return result


def run_target(label: str, env: dict, repeat: int, phases: bool, rebuild: bool) -> dict:
    args = [sys.executable, __file__, "--measure", "--repeat", str(repeat)] + (["--phases"] if phases else []) + \
        (["--rebuild"] if rebuild else [])
    done = subprocess.run(args, env=env, capture_output=True, text=True)
    if done.returncode:
        sys.exit(f"[{label}] measuring failed:\n{done.stderr}")
    out = done.stdout
    result = json.loads(out.strip().splitlines()[-1])
    result["label"] = label
    return result


TARGET_SECONDS = 2.0  # issue 16: the full cohort report with every analysis at 100,000 patients


def show(result: dict) -> None:
    cpu = result.get("cpu", {})

    def fmt(times, key=None):
        text = f"{min(times):7.2f} s (median {statistics.median(times):.2f} s of {len(times)})"
        return text + (f", CPU of the process {cpu[key]:.2f} s" if key in cpu else "")

    def target(seconds):
        return f"target {TARGET_SECONDS:.0f} s: {'held' if seconds <= TARGET_SECONDS else 'MISSED'}"

    floor, report = min(result["floor"]), min(result["report"])
    (before, after) = result["load"]
    print(f"\n== {result['label']} ({result['vendor']}): {result['patients']:,} patients, "
          f"{result['responses']:,} responses, {result['treated']:,} treated episodes")
    print(f"  load average (1, 5, 15 min) before {before}, after {after} on {os.cpu_count()} cores; facts brought "
          f"up to date before timing in {result['refresh_before']:.2f} s")
    print(f"  floor: raw SQL aggregate of the responses   {fmt(result['floor'], 'floor')}")
    print(f"  filtered cohort report                       {fmt(result['report_filtered'], 'report_filtered')}")
    plain = min(result["report_plain"])
    print(f"  full report WITHOUT issue-16 analyses        {fmt(result['report_plain'], 'report_plain')}   = "
          f"{plain / floor:.2f} x floor")
    print(f"  full report WITH them                        {fmt(result['report'], 'report')}   = {report / plain:.2f} x without, "
          f"{report / floor:.2f} x floor; {target(report)}")
    cp, cw = min(result["comparison_plain"]), min(result["comparison"])
    print(f"  comparison bmc vs hyaluronic acid, WITHOUT   {fmt(result['comparison_plain'], 'comparison_plain')}   = {cp / floor:.2f} x floor")
    print(f"  comparison WITH every analysis and the IPW   {fmt(result['comparison'], 'comparison')}   = {cw / cp:.2f} x without, "
          f"{cw / floor:.2f} x floor; {target(cw)}")
    print(f"  report JSON size {result['json_bytes'] / 1024:.0f} kB; peak memory of the process "
          f"{result['max_rss_mb']:.0f} MB")
    print(f"  adjusted comparison: {result['adjusted']}")
    phases_cpu = result.get("phases_cpu", {})
    for name, times in result.get("phases", {}).items():
        print(f"    {name:<50} {min(times):6.2f} s" + (f"  (CPU {phases_cpu[name]:.2f} s)" if name in phases_cpu else ""))
    if "rebuild_all" in result:
        print(f"  every analytics fact rebuilt from the records  {min(result['rebuild_all']):.1f} s")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--patients", type=int, default=100_000)
    parser.add_argument("--data-dir", type=Path, default=Path("/tmp/orthoreg-bench/sqlite-100000"))
    parser.add_argument("--database-url", help="a PostgreSQL URL to benchmark as well")
    parser.add_argument("--repeat", type=int, default=3)
    parser.add_argument("--phases", action="store_true", help="also time each phase of the report")
    parser.add_argument("--rebuild", action="store_true", help="also time rebuilding every analytics fact")
    parser.add_argument("--skip-sqlite", action="store_true")
    parser.add_argument("--measure", action="store_true", help=argparse.SUPPRESS)
    parser.add_argument("--count", action="store_true", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.count:
        print(count_patients())
        return
    if args.measure:
        print(json.dumps(measure(args.repeat, args.phases, args.rebuild)))
        return
    targets = []
    if not args.skip_sqlite:
        targets.append(("SQLite", env_for(args.data_dir, None)))
    if args.database_url:
        targets.append(("PostgreSQL", env_for(args.data_dir, args.database_url)))
    for label, env in targets:
        args.data_dir.mkdir(parents=True, exist_ok=True)
        ensure_registry(args.patients, env, label)
        show(run_target(label, env, args.repeat, args.phases, args.rebuild))


if __name__ == "__main__":
    main()
