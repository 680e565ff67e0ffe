"""Benchmark: the follow-up worker sending invitations for 100,000 due assessments to the file backend.

    python benchmarks/followup_worker.py [--due 100000] [--database-url URL] [--data-dir DIR]

1. builds a registry with N patients whose 6-month time point is open today (one assessment each);
2. one worker pass: plans N invitations and sends N emails (one file each); prints the rate per minute
   (target: at least 2,000 a minute);
3. resets, then runs two `orthoreg worker --once` processes at the same time and checks that every
   invitation was emailed exactly once.

SQLite by default (a fresh file in a temporary data directory); pass --database-url postgresql://... for
PostgreSQL (the database is emptied first: use a scratch database).
"""

from __future__ import annotations

import argparse
import datetime as dt
import email
import os
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path


def parse() -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--due", type=int, default=100_000)
    parser.add_argument("--database-url", default="")
    parser.add_argument("--data-dir", default="")
    parser.add_argument("--batch", type=int, default=500)
    parser.add_argument("--skip-single", action="store_true", help="only the two-worker run")
    return parser.parse_args()


def main() -> None:
    args = parse()
    data_dir = Path(args.data_dir or tempfile.mkdtemp(prefix="orthoreg-bench-"))
    outbox = data_dir / "outbox"
    os.environ["ORTHOREG_DATA_DIR"] = str(data_dir)
    os.environ["ORTHOREG_EMAIL_URL"] = f"file://{outbox}"
    if args.database_url:
        os.environ["ORTHOREG_DATABASE_URL"] = args.database_url
    os.environ.setdefault("DJANGO_SETTINGS_MODULE", "orthoreg.settings")
    import django

    django.setup()
    from django.core.management import call_command
    from django.db import connection, transaction
    from django.utils import timezone
    from tqdm import tqdm

    from orthoreg.followup import services
    from orthoreg.followup.models import AccessToken, Assessment, Invitation
    from orthoreg.registry.models import Clinic, Episode, Patient

    print(f"database: {connection.vendor} ({connection.settings_dict['NAME']}); data dir {data_dir}")
    call_command("migrate", verbosity=0)
    if connection.vendor == "postgresql":
        with connection.cursor() as cur:
            cur.execute("TRUNCATE followup_accesstoken, followup_invitation, followup_assessment, "
                        "registry_episode, registry_patient, registry_clinic, followup_workerrun CASCADE")
    else:
        for model in (AccessToken, Invitation, Assessment, Episode, Patient):
            model.objects.all().delete()

    today = timezone.localdate()
    started = time.perf_counter()
    clinic = Clinic.objects.get_or_create(code="bench", defaults={"name": "Benchmark clinic"})[0]
    chunk = 5000
    with tqdm(total=args.due, unit="patient", desc="building") as bar:
        for start in range(0, args.due, chunk):
            n = min(chunk, args.due - start)
            with transaction.atomic():
                patients = Patient.objects.bulk_create([
                    Patient(clinic=clinic, mrn=f"B{start + i:07d}", given_name="Bench", family_name=f"P{start + i}",
                            initials="BP", birth_date=dt.date(1970, 1, 1), email=f"p{start + i}@example.org",
                            consent_registry=True, consent_date=dt.date(2024, 1, 1), consent_version="1")
                    for i in range(n)])
                episodes = Episode.objects.bulk_create([
                    Episode(patient=p, body_site="knee", side="left", condition="oa_primary") for p in patients])
                Assessment.objects.bulk_create([
                    Assessment(patient=e.patient, episode=e, time_point="6m", time_point_order=3, instrument="nprs",
                               due_date=today, window_start=today - dt.timedelta(days=28),
                               window_end=today + dt.timedelta(days=42)) for e in episodes])
            bar.update(n)
    print(f"built {args.due} due assessments in {time.perf_counter() - started:.1f} s")

    # 1. one worker, in process
    shutil.rmtree(outbox, ignore_errors=True)
    if args.skip_single:
        print("one worker: skipped")
    else:
        single(args, outbox, services)

    # 2. two worker processes at once
    two_workers(args, outbox, connection, transaction, AccessToken, Invitation)


def single(args, outbox, services) -> None:
    from tqdm import tqdm

    started = time.perf_counter()
    with tqdm(total=args.due, unit="email", desc="one worker") as bar:
        run = services.worker_pass(worker="bench", batch=args.batch, progress=bar.update)
    seconds = time.perf_counter() - started
    files = len(list(outbox.iterdir()))
    print(f"one worker: planned {run.invitations_created}, sent {run.sent} ({files} files), failures {run.failures} "
          f"in {seconds:.1f} s = {run.sent / seconds * 60:,.0f} invitations a minute (target >= 2,000)")


def two_workers(args, outbox, connection, transaction, AccessToken, Invitation) -> None:
    with transaction.atomic():
        AccessToken.objects.all().delete()
        Invitation.objects.all().delete()
    shutil.rmtree(outbox, ignore_errors=True)
    connection.close()
    started = time.perf_counter()
    procs = [subprocess.Popen([sys.executable, "-m", "orthoreg", "worker", "--once", "--batch", str(args.batch),
                               "--name", f"bench-{k}"], stdout=subprocess.PIPE, text=True) for k in range(2)]
    outputs = [p.communicate()[0].strip() for p in procs]
    seconds = time.perf_counter() - started
    ids: list[str] = []
    for path in outbox.iterdir():
        for part in path.read_text().split("-" * 79):
            if part.strip():
                ids.append(email.message_from_string(part.strip())["X-Orthoreg-Invitation"])
    for out in outputs:
        print("  " + out.splitlines()[-1] if out else "  (no output)")
    doubles = len(ids) - len(set(ids))
    print(f"two workers: {len(ids)} emails for {len(set(ids))} invitations, {doubles} sent twice, "
          f"{args.due - len(set(ids))} missing, in {seconds:.1f} s = {len(ids) / seconds * 60:,.0f} a minute")
    if doubles or len(set(ids)) != args.due or any(p.returncode for p in procs):
        sys.exit("FAILED: not every invitation was sent exactly once")
    print("OK: every invitation sent exactly once")


if __name__ == "__main__":
    main()
