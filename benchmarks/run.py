"""Every scenario of issue 17 in one run, each figure beside its floor (issue 17 item 8).

    python benchmarks/run.py --quick                      # 10,000 patients, SQLite, a few minutes
    python benchmarks/run.py --patients 100000 --database-url postgresql://postgres@127.0.0.1:5432/orthoreg_bench
    python benchmarks/run.py --quick --json figures.json  # also save the rows
    python benchmarks/run.py --quick --web-only           # only the pages and the submissions (a served registry)

It builds (or reuses) a synthetic registry with `orthoreg synth`, serves it with `orthoreg serve --workers N` and
measures, from concurrent HTTP clients signed in as a clinician:

* pages (patient list, a name search, a patient page, the worklist, the cohort page) at 1 and 8 clients: p50
  against `/healthz` served by the same server at the same concurrency (target: within 4x);
* questionnaire submissions (the page GET and its POST) by 20 and 100 patients at once: accepted submissions/s
  against the trivial request rate at that concurrency (target: at least 1/6), and p99 against p50 (under 4x);
* the cohort report of every treated episode (cache off) against the minimal scan of the tables it reads (the
  episode facts and the clinics' outcome cells; target: within 3x), with and without the analyses of issue 16,
  and a comparison (bone marrow concentrate vs hyaluronic acid) with and without them; with them, each against
  issue 16's 2 s, beside the load average (os.getloadavg);
* the worker's send rate (invitations sent per second, to the in-memory mail backend);
* `orthoreg synth` into a scratch registry (5,000 patients with --quick, else 20,000): its rate, as the time
  1,000,000 patients would take (target: 15 minutes; a projection, the facts' work grows a little with the tables);
* with `--million URL` (PostgreSQL), `orthoreg synth --patients 1000000` there when it has fewer patients (its wall
  time and peak memory: target 15 minutes), then the cohort report at 1,000,000 against its floor (target: 10 s,
  under 1 GB); never in --quick unless asked;
* the other engineers' benchmarks when present (benchmarks/fhir_bench.py, benchmarks/imaging_bench.py, run with
  `--quick --json FILE`; their rows are merged).

Wall-clock figures are printed, never asserted: this is not part of the test run. Each row: scenario, figure,
unit, floor, ratio, target, held.
"""

from __future__ import annotations

import argparse
import http.client
import json
import os
import re
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from http.cookies import SimpleCookie
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))  # the form filler shared with the serve test (tests/formfill.py)
from tests.formfill import form_body, form_fields  # noqa: E402

ORTHOREG = [sys.executable, "-m", "orthoreg"]
PASSWORD = "bench-password-correct-9"


# ------------------------------------------------------------------------------------------------ setting up

def env_for(args) -> dict:
    env = {k: v for k, v in os.environ.items() if not k.startswith("ORTHOREG_")}
    env.update(ORTHOREG_DATA_DIR=str(args.data_dir), ORTHOREG_EMAIL_URL="memory:",
               DJANGO_SETTINGS_MODULE="orthoreg.settings", PYTHONPATH=str(ROOT))
    if args.database_url:
        env["ORTHOREG_DATABASE_URL"] = args.database_url
    return env


def child(env, *args) -> dict:
    """Run this script's child part (Django set up on the benchmark's database) and return its JSON."""
    out = subprocess.run([sys.executable, __file__, "--child", *args], env=env, check=True, capture_output=True,
                         text=True, cwd=ROOT).stdout
    return json.loads(out.strip().splitlines()[-1])


def ensure_registry(args, env) -> None:
    subprocess.run([*ORTHOREG, "migrate", "--verbosity", "0"], env=env, check=True)
    have = child(env, "count")["patients"]
    if have < args.patients:
        print(f"generating {args.patients - have:,} patients (have {have:,}) ...", file=sys.stderr, flush=True)
        subprocess.run([*ORTHOREG, "synth", "--patients", str(args.patients - have), "--no-progress"], env=env,
                       check=True)
    subprocess.run([*ORTHOREG, "analytics", "refresh", "--no-progress"], env=env, check=True, capture_output=True)
    child(env, "user")


# ------------------------------------------------------------------------------------------------ HTTP clients

class Client:
    """A browser, just enough: cookies, a CSRF token, one connection kept alive."""

    def __init__(self, port: int):
        self.port, self.cookies, self.conn = port, {}, None

    def request(self, method: str, path: str, body: str | None = None) -> tuple[int, str]:
        headers = {"Host": f"127.0.0.1:{self.port}"}
        if self.cookies:
            headers["Cookie"] = "; ".join(f"{k}={v}" for k, v in self.cookies.items())
        if body is not None:
            headers["Content-Type"] = "application/x-www-form-urlencoded"
            headers["Referer"] = f"http://127.0.0.1:{self.port}{path}"
        for attempt in range(2):
            if self.conn is None:
                self.conn = http.client.HTTPConnection("127.0.0.1", self.port, timeout=120)
            try:
                self.conn.request(method, path, body=body, headers=headers)
                response = self.conn.getresponse()
                text = response.read().decode(errors="replace")
                break
            except (OSError, http.client.HTTPException):
                self.conn.close()
                self.conn = None
                if attempt:
                    raise
        if response.getheader("Connection", "").lower() == "close":
            self.conn.close()
            self.conn = None
        for header in response.headers.get_all("Set-Cookie") or []:
            for key, morsel in SimpleCookie(header).items():
                self.cookies[key] = morsel.value
        return response.status, text

    def login(self, username: str) -> None:
        _, page = self.request("GET", "/accounts/login/")
        token = re.search(r'name="csrfmiddlewaretoken" value="([^"]+)"', page).group(1)
        status, _ = self.request("POST", "/accounts/login/",
                                 f"csrfmiddlewaretoken={token}&username={username}&password={PASSWORD}")
        assert status == 302, f"login failed ({status})"


def concurrently(n: int, work, per_client: int) -> tuple[list[float], float]:
    """`n` threads each calling work(i, k) per_client times; returns (latencies, wall seconds)."""
    latencies: list[float] = []
    lock = threading.Lock()
    errors: list[BaseException] = []

    def run(i):
        mine = []
        try:
            for k in range(per_client):
                started = time.perf_counter()
                work(i, k)
                mine.append(time.perf_counter() - started)
        except BaseException as exc:
            errors.append(exc)
        with lock:
            latencies.extend(mine)

    started = time.perf_counter()
    threads = [threading.Thread(target=run, args=(i,)) for i in range(n)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    if errors:
        raise errors[0]
    return latencies, time.perf_counter() - started


def p(values: list[float], q: float) -> float:
    values = sorted(values)
    return values[min(len(values) - 1, int(q * len(values)))]


def row(scenario, figure, unit, floor=None, target=None, lower_is_better=True, ratio=None, note=""):
    if ratio is None and floor:
        ratio = figure / floor
    held = None
    if target is not None and ratio is not None:
        held = ratio <= target if lower_is_better else ratio >= target
    return {"scenario": scenario, "figure": round(figure, 4) if figure is not None else None, "unit": unit,
            "floor": round(floor, 4) if floor is not None else None,
            "ratio": round(ratio, 3) if ratio is not None else None, "target": target, "held": held, "note": note}


# ------------------------------------------------------------------------------------------------ scenarios

def pages(port: int, targets: dict, requests: int) -> list[dict]:
    rows = []
    for clients in (1, 8):
        sessions = [Client(port) for _ in range(clients)]
        for s in sessions:
            s.login("bench")
        floor = None
        for name, path in [("/healthz", "/healthz"), *targets.items()]:
            def work(i, k, path=path, sessions=sessions):
                status, _ = sessions[i].request("GET", path)
                assert status == 200, f"{path}: {status}"

            concurrently(clients, work, 2)  # warm-up (caches, connections)
            latencies, _ = concurrently(clients, work, requests)
            p50 = statistics.median(latencies) * 1000
            if floor is None:
                floor = p50
                rows.append(row(f"page /healthz, {clients} client(s)", p50, "ms p50", note="the floor"))
            else:
                rows.append(row(f"page {name}, {clients} client(s)", p50, "ms p50", floor, 4.0))
    return rows


def submissions(port: int, env, patients: int) -> list[dict]:
    rows = []
    for clients in (20, 100):
        tokens = child(env, "links", str(clients * patients))["tokens"]

        def trivial(i, k):
            Client(port).request("GET", "/healthz")

        _, wall = concurrently(clients, trivial, patients)
        trivial_rate = clients * patients / wall
        post_latencies: list[float] = []
        lock = threading.Lock()

        def submit(i, k, tokens=tokens, lock=lock, post_latencies=post_latencies):
            c = Client(port)
            path = f"/s/{tokens[i * patients + k]}/"
            status, page = c.request("GET", path)
            assert status == 200, f"survey page {status}"
            body = form_body({**form_fields(page), "action": "submit"})
            started = time.perf_counter()
            status, text = c.request("POST", path, body)
            with lock:
                post_latencies.append(time.perf_counter() - started)
            assert status == 302, f"submission {status}: {text[:300]}"

        _, wall = concurrently(clients, submit, patients)
        rate = clients * patients / wall
        rows.append(row(f"submissions, {clients} patients at once", rate, "accepted/s", trivial_rate, 1 / 6,
                        lower_is_better=False, note=f"floor: /healthz requests/s at {clients} clients"))
        p50, p99 = statistics.median(post_latencies), p(post_latencies, 0.99)
        rows.append(row(f"submission POST p99/p50, {clients} patients", p99 * 1000, "ms p99", p50 * 1000, 4.0))
    stored = child(env, "stored", json.dumps(sorted({t for t in tokens})))
    rows.append(row("submissions stored == accepted (100 patients)", stored["answered"], "answers",
                    note=f"{stored['answered']} stored of {100 * patients} accepted, "
                         f"{stored['doubled']} doubled"))
    return rows


def other_benchmarks(quick: bool) -> list[dict]:
    rows = []
    for name in ("fhir_bench.py", "imaging_bench.py"):
        script = ROOT / "benchmarks" / name
        if not script.exists():
            rows.append(row(name, None, "", note="not present"))
            continue
        with tempfile.TemporaryDirectory() as tmp:
            out = Path(tmp) / "rows.json"
            done = subprocess.run([sys.executable, str(script), *(["--quick"] if quick else []), "--json", str(out)],
                                  capture_output=True, text=True, cwd=ROOT)
            if out.exists():
                rows.extend(json.loads(out.read_text()))
            else:
                rows.append(row(name, None, "", note=f"wrote no --json rows (exit {done.returncode}): "
                                                     f"{(done.stderr.strip().splitlines() or [''])[-1][:80]}"))
    return rows


MILLION = 1_000_000
SYNTH_BUDGET = 15 * 60  # seconds for a million patients (issue 17 item 5)


def load() -> str:
    return "load average " + " ".join(f"{x:.1f}" for x in os.getloadavg())


def timed_synth(env, patients: int) -> tuple[float, float]:
    """Run `orthoreg synth --patients N` in a child process: (the command's wall seconds, the process's peak
    memory in MB)."""
    done = child(env, "synth", str(patients))
    return done["seconds"], done["peak_mb"]


def synth_rate(args) -> list[dict]:
    """The synth rate on a scratch registry of the same engine, as the time a million patients would take."""
    patients = args.synth_patients if args.synth_patients is not None else (5_000 if args.quick else 20_000)
    if not patients:
        return []
    with tempfile.TemporaryDirectory() as tmp:
        scratch = argparse.Namespace(data_dir=Path(tmp), database_url="")
        if args.database_url:
            scratch.database_url = scratch_database(args.database_url, "_synth")
        env = env_for(scratch)
        subprocess.run([*ORTHOREG, "migrate", "--verbosity", "0"], env=env, check=True)
        seconds, peak = timed_synth(env, patients)
    projected = seconds * MILLION / patients
    return [row("synth, 1,000,000 patients projected", projected, "s", ratio=projected / SYNTH_BUDGET, target=1.0,
                note=f"{patients:,} in {seconds:.0f} s ({patients / seconds:.0f}/s), peak {peak:.0f} MB, {load()}")]


def scratch_database(url: str, suffix: str) -> str:
    """A fresh PostgreSQL database beside `url` (its name + suffix), dropped and created again."""
    import psycopg

    base, _, name = url.rpartition("/")
    scratch = name.split("?")[0] + suffix
    with psycopg.connect(f"{base}/postgres", autocommit=True) as conn:
        conn.execute(f'DROP DATABASE IF EXISTS "{scratch}"')
        conn.execute(f'CREATE DATABASE "{scratch}"')
    return f"{base}/{scratch}"


def million(args) -> list[dict]:
    """The 1,000,000-patient scenario on PostgreSQL: synth (when the registry is smaller) and the report."""
    env = env_for(argparse.Namespace(data_dir=args.data_dir, database_url=args.million))
    subprocess.run([*ORTHOREG, "migrate", "--verbosity", "0"], env=env, check=True)
    rows = []
    have = child(env, "count")["patients"]
    if have < MILLION:
        print(f"generating {MILLION - have:,} patients at {args.million} ...", file=sys.stderr, flush=True)
        seconds, peak = timed_synth(env, MILLION - have)
        note = f"{MILLION - have:,} patients written, peak {peak:.0f} MB, {load()}"
        rows.append(row("synth, 1,000,000 patients", seconds, "s", ratio=seconds / SYNTH_BUDGET, target=1.0,
                        note=note))
    report = child(env, "million")
    rows += [row("cohort report at 1,000,000, every treated episode", report["report"], "s", report["floor"], 3.0,
                 note=f"floor: minimal scans of the facts it reads; target 10 s; {load()}"),
             row("cohort report at 1,000,000, without the analyses", report["report_plain"], "s", report["floor"],
                 3.0),
             row("cohort report at 1,000,000, within 10 s", report["report"], "s", ratio=report["report"] / 10,
                 target=1.0),
             row("cohort report at 1,000,000, peak memory", report["peak_mb"], "MB", ratio=report["peak_mb"] / 1024,
                 target=1.0, note="of the process, under 1 GB")]
    return rows


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--quick", action="store_true", help="10,000 patients, fewer requests")
    parser.add_argument("--patients", type=int, default=None, help="default 100,000 (10,000 with --quick)")
    parser.add_argument("--data-dir", type=Path, default=None)
    parser.add_argument("--database-url", default="")
    parser.add_argument("--workers", type=int, default=None, help="web processes (default: the cores)")
    parser.add_argument("--json", type=Path, default=None, help="save the rows here")
    parser.add_argument("--port", type=int, default=0, help="the server's port (default: any free one)")
    parser.add_argument("--pages-only", action="store_true", help="only the pages scenarios (at 1 and 8 clients)")
    parser.add_argument("--web-only", action="store_true",
                        help="only what the server answers: the pages and the questionnaire submissions")
    parser.add_argument("--million", default="", metavar="URL",
                        help="PostgreSQL database of the 1,000,000-patient scenario (synth and the report there)")
    parser.add_argument("--synth-patients", type=int, default=None,
                        help="patients of the synth rate scenario (default 20,000; 5,000 with --quick; 0: skip)")
    parser.add_argument("--child", nargs="+", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child:
        return child_main(args.child)
    args.patients = args.patients or (10_000 if args.quick else 100_000)
    args.data_dir = args.data_dir or Path(tempfile.gettempdir()) / f"orthoreg-bench-{args.patients}"
    env = env_for(args)
    ensure_registry(args, env)
    rows: list[dict] = []
    if not (args.pages_only or args.web_only):
        facts = child(env, "report")
        load = ", ".join(f"{x:.1f}" for x in facts["load"])
        rows += [
            row("cohort report, every treated episode (cache off)", facts["report"] * 1000, "ms",
                facts["floor"] * 1000, 3.0, note="floor: minimal scans of the facts the report reads"),
            row("  the same WITHOUT the issue-16 analyses", facts["report_plain"] * 1000, "ms",
                facts["floor"] * 1000, 3.0, note=f"with them: {facts['report'] / facts['report_plain']:.2f} x"),
            row("  the report WITH them against issue 16's 2 s", facts["report"] * 1000, "ms", 2000.0, 1.0,
                note=f"floor column: the 2 s target; load average {load}"),
            row("comparison bmc vs HA WITHOUT the analyses", facts["comparison_plain"] * 1000, "ms",
                facts["floor"] * 1000, note="floor: as above"),
            row("  the comparison WITH them (IPW, bootstrap) against 2 s", facts["comparison"] * 1000, "ms",
                2000.0, 1.0, note=f"{facts['comparison'] / facts['comparison_plain']:.2f} x without; load {load}"),
            row("cohort report, cache check (facts version)", facts["stamp"] * 1000, "ms",
                note="one primary-key look-up"),
            row("worker send rate", facts["send_rate"], "invitations/s", note=f"{facts['sent']} sent, memory mail")]
    # as in real use: the follow-up worker beside the server keeps the analytics facts (report pages only read)
    server = subprocess.Popen([*ORTHOREG, "serve", "--port", str(args.port), "--threads", "8", "--with-worker",
                               "--worker-interval", "5",
                               *(["--workers", str(args.workers)] if args.workers else [])],
                              env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, cwd=ROOT)
    try:
        line = server.stdout.readline()
        port = int(re.search(r"http://127\.0\.0\.1:(\d+)/", line).group(1))
        time.sleep(1)
        targets = child(env, "targets")
        rows += pages(port, {
            "patient list": "/patients/", "search by name": f"/patients/?q={targets['name']}",
            "patient page": f"/patients/{targets['patient']}/", "worklist": "/followup/",
            "cohort page": "/reports/cohort/?show=1"}, 10 if args.quick else 40)
        if not args.pages_only:
            rows += submissions(port, env, 2 if args.quick else 5)
    finally:
        server.terminate()
        server.wait(timeout=60)
    if not (args.pages_only or args.web_only):
        rows += other_benchmarks(args.quick)
        rows += synth_rate(args)
        if args.million:
            rows += million(args)
    print_table(rows, args)
    if args.json:
        args.json.write_text(json.dumps(rows, indent=1))
    return 0


def print_table(rows, args) -> None:
    engine = "PostgreSQL" if args.database_url else "SQLite"
    load = os.getloadavg()
    print(f"\n{args.patients:,} patients on {engine}, {os.cpu_count()} cores, load average {load[0]:.2f} "
          f"{load[1]:.2f} {load[2]:.2f} (the machine is shared: timings move with it)")
    width = max(len(r["scenario"]) for r in rows)
    print(f"{'scenario'.ljust(width)}  {'figure':>10} {'unit':13} {'floor':>9} {'ratio':>7} {'target':>7}  held")
    for r in rows:
        fig = "" if r["figure"] is None else f"{r['figure']:10.2f}"
        floor = "" if r["floor"] is None else f"{r['floor']:9.2f}"
        ratio = "" if r["ratio"] is None else f"{r['ratio']:7.2f}"
        target = "" if r["target"] is None else f"{r['target']:7.2f}"
        held = {True: "yes", False: "NO", None: ""}[r["held"]]
        print(f"{r['scenario'].ljust(width)}  {fig:>10} {r['unit']:13} {floor:>9} {ratio:>7} {target:>7}  {held}"
              + (f"  {r['note']}" if r.get("note") else ""))


# ------------------------------------------------------------------------------------------------ child part

def child_main(argv: list[str]) -> int:
    import django

    django.setup()
    command, *rest = argv
    result = globals()[f"child_{command}"](*rest)
    print(json.dumps(result, default=str))
    return 0


def child_count():
    from orthoreg.registry.models import Patient

    return {"patients": Patient.objects.count()}


def child_user():
    from django.contrib.auth import get_user_model
    from django.core.management import call_command

    from orthoreg.registry.models import Clinic

    User = get_user_model()

    if not User.objects.filter(username="bench").exists():
        codes = list(Clinic.objects.values_list("code", flat=True))
        args = ["createuser", "bench", "--password", PASSWORD, "--role", "clinician"]
        for code in codes:
            args += ["--clinic", code]
        call_command(*args)
    return {"ok": True}


def child_targets():
    from orthoreg.registry.models import Episode

    episode = Episode.objects.filter(procedures__is_index=True).select_related("patient").order_by("pk").first()
    return {"patient": episode.patient_id, "name": episode.patient.family_name[:5]}


def child_report():
    import datetime as dt

    from orthoreg.analytics import facts, selectors
    from orthoreg.followup import services
    from orthoreg.followup.models import Invitation

    facts.refresh()  # outside the timed reports, which only read the facts
    best = {**report_times(3, plain=True, comparison=True), "load": os.getloadavg()}
    for _ in range(3):
        started = time.perf_counter()
        selectors.data_stamp()
        best["stamp"] = min(best.get("stamp", float("inf")), time.perf_counter() - started)
    # the worker: plan what is due and send it, to the in-memory mail backend
    services.invitations_plan(today=dt.date.today())
    started = time.perf_counter()
    run = services.worker_pass(worker="bench")
    seconds = time.perf_counter() - started
    best["sent"] = run.sent
    best["send_rate"] = run.sent / seconds if seconds else 0.0
    best["open"] = Invitation.objects.count()
    return best


def report_times(repeat: int, *, plain: bool = False, comparison: bool = False) -> dict:
    """Best of `repeat`: the cohort report of every treated episode (cache off), with `plain` also without the
    analyses of issue 16, with `comparison` a comparison (bone marrow concentrate vs hyaluronic acid) with and
    without them; and the floor, the minimal scans of what the report reads."""
    from django.db.models import Sum

    from orthoreg.analytics import selectors
    from orthoreg.analytics.filters import CohortFilter
    from orthoreg.analytics.models import EpisodeFact, OutcomeCell
    from orthoreg.registry.models import Clinic

    ids = set(Clinic.objects.values_list("pk", flat=True))
    bmc, rest = CohortFilter(procedures=("bmc",)), CohortFilter(procedures=("hyaluronic_acid",))
    reports = {"report": lambda: selectors.cohort_report(CohortFilter(), clinic_ids=ids, use_cache=False)}
    if plain:
        reports["report_plain"] = lambda: selectors.cohort_report(CohortFilter(), clinic_ids=ids, use_cache=False,
                                                                  analyses=False)
    if comparison:
        reports["comparison"] = lambda: selectors.comparison_report(bmc, rest, clinic_ids=ids, use_cache=False)
        reports["comparison_plain"] = lambda: selectors.comparison_report(bmc, rest, clinic_ids=ids,
                                                                          use_cache=False, analyses=False)
        reports["comparison"]()  # untimed: lifelines, scipy and statsmodels imported, as in a serving process
    best = {"floor": float("inf"), **{name: float("inf") for name in reports}}
    for _ in range(repeat):
        for name, report in reports.items():
            started = time.perf_counter()
            report()
            best[name] = min(best[name], time.perf_counter() - started)
        started = time.perf_counter()
        # the minimal scans of what the report reads: its episode facts (counted by what the summary groups on) and
        # the clinics' outcome cells
        list(EpisodeFact.objects.filter(clinic_id__in=ids).values("condition", "index_kind").annotate(n=Sum("age")))
        list(OutcomeCell.objects.filter(clinic_id__in=ids).values("time_point", "instrument").annotate(n=Sum("n")))
        best["floor"] = min(best["floor"], time.perf_counter() - started)
    return best


def child_million():
    """The report at 1,000,000 patients in this fresh process, and the process's peak memory."""
    import resource

    from orthoreg.analytics import facts

    facts.refresh()
    best = report_times(3, plain=True)
    best["peak_mb"] = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    return best


def child_synth(patients):
    """`orthoreg synth --patients N` in this process (the parent times it), and the process's peak memory."""
    import resource

    from django.core.management import call_command

    started = time.perf_counter()
    call_command("synth", "--patients", patients, "--no-progress")
    return {"seconds": time.perf_counter() - started, "peak_mb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024}


def child_links(n):
    """n questionnaire links of patients whose 6-month follow-up is due (a clinic of their own each run)."""
    import datetime as dt
    import uuid

    from django.utils import timezone

    from orthoreg.followup import services
    from orthoreg.followup.models import Invitation
    from orthoreg.registry import services as registry
    from orthoreg.registry.models import Clinic, Episode, Patient

    code = f"load-{uuid.uuid4().hex[:6]}"
    clinic = Clinic.objects.create(code=code, name=f"Load {code}")
    index_day = timezone.localdate() - dt.timedelta(days=183)
    for i in range(int(n)):
        patient = Patient.objects.create(clinic=clinic, mrn=f"{code}-{i}", given_name="P", family_name=f"N{i}",
                                         birth_date=dt.date(1970, 1, 1), email=f"p{i}@example.org",
                                         consent_registry=True, consent_date=dt.date(2024, 1, 1), consent_version="1")
        episode = Episode.objects.create(patient=patient, body_site="knee", side="left", condition="oa_primary")
        registry.procedure_record(episode=episode, date=index_day, kind="prp", is_index=True)
    services.invitations_plan()
    invitations = Invitation.objects.filter(patient__clinic=clinic).order_by("pk")
    return {"tokens": [services.token_issue(invitation=i) for i in invitations]}


def child_stored(tokens_json):
    from django.db.models import Count

    from orthoreg.followup.services import invitation_for_token
    from orthoreg.instruments.models import Response

    answered = doubled = 0
    for token in json.loads(tokens_json):
        invitation = invitation_for_token(token)
        rows = (Response.objects.filter(episode=invitation.episode, source="patient_link")
                .values("instrument", "time_point").annotate(n=Count("pk")))
        answered += 1 if rows else 0
        doubled += sum(1 for r in rows if r["n"] > 1)
    return {"answered": answered, "doubled": doubled}


if __name__ == "__main__":
    sys.exit(main())
