"""Imaging benchmarks (not part of the test run).

    python benchmarks/imaging_bench.py [--repeat N]

1. Semi-automatic joint space width on a 2,500 x 2,000 16-bit radiograph (target <= 0.5 s): the measurement
   alone, and as the server runs it (read the stored DICOM again, then measure).
2. Upload and rendition of a ~20 MB DICOM (target <= 2 s): the upload service (read, decode, window,
   PNG rendition and thumbnail, store the original and both renditions, database rows, audit), and the same
   through an HTTP multipart POST to the upload page.
3. Joint space width on real radiographs (pydicom-data, deid-data; the test extra): per joint, the share of
   profiles and thirds measured, the error against the hand reference (tests/data/README.md) with its target
   and the ratio to it, and the time; and the lines where there is no joint (nothing may be measured).

    python benchmarks/imaging_bench.py --jsw-only   # parts 1 and 3 only

Runs against a throwaway SQLite database in a temporary data directory; prints the median of the repeats.
"""

from __future__ import annotations

import argparse
import datetime as dt
import os
import shutil
import statistics
import sys
import tempfile
import time


def _median_time(function, repeat: int) -> tuple[float, object]:
    times, result = [], None
    for _ in range(repeat):
        start = time.perf_counter()
        result = function()
        times.append(time.perf_counter() - start)
    return statistics.median(times), result


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--repeat", type=int, default=5)
    parser.add_argument("--jsw-only", action="store_true", help="skip the upload scenarios")
    args = parser.parse_args()
    data_dir = tempfile.mkdtemp(prefix="orthoreg-imaging-bench-")
    try:
        return run(args.repeat, data_dir, uploads=not args.jsw_only)
    finally:
        shutil.rmtree(data_dir, ignore_errors=True)


def real_films_table(repeat: int) -> None:
    """Part 3: the per-joint error table on the real radiographs."""
    import numpy as np

    sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), os.pardir))
    from tests.imaging.real_films import JOINTS, NO_JOINT, film, width_errors

    from orthoreg.imaging import jsw

    print("\nJoint space width on real radiographs (errors in px against the hand reference; "
          "targets: thirds measured >= 95 %, mean |error| <= 1 px, time <= 0.5 s)")
    header = (f"{'joint':28} {'profiles':>9} {'thirds':>6} {'mean|err|':>9} {'max|err|':>8} {'target':>6} "
              f"{'ratio':>5} {'time s':>7} {'ratio':>5}")
    print(header)
    everything = []
    for joint in JOINTS:
        loaded = film(joint.film)
        seconds, result = _median_time(
            lambda loaded=loaded, joint=joint: jsw.measure(loaded.intensities, joint.line, loaded.spacing), repeat)
        errors = np.abs(width_errors(joint, result))
        everything.append(errors)
        thirds = sum(result.summary[name] is not None for name in jsw.THIRDS)
        mean = float(np.nanmean(errors)) if not np.isnan(errors).all() else float("nan")
        print(f"{joint.name:28} {result.summary['measurable']:>4}/{result.summary['count']:<4} {thirds:>4}/3 "
              f"{mean:9.2f} {np.nanmax(errors):8.2f} {1.0:6.1f} {mean / 1.0:5.2f} {seconds:7.3f} "
              f"{seconds / 0.5:5.2f}")
    pooled = np.concatenate(everything)
    print(f"{'all joints':28} {'':9} {'':6} {np.nanmean(pooled):9.2f} {np.nanmax(pooled):8.2f} {1.0:6.1f} "
          f"{np.nanmean(pooled):5.2f}")
    print(f"\n{'no joint here':28} {'profiles measured (target 0)':>28}")
    for place in NO_JOINT:
        loaded = film(place.film)
        result = jsw.measure(loaded.intensities, place.line, loaded.spacing)
        print(f"{place.name:28} {result.summary['measurable']:>4}/{result.summary['count']}")


def run(repeat: int, data_dir: str, uploads: bool = True) -> int:
    os.environ["ORTHOREG_DATA_DIR"] = data_dir
    os.environ.pop("ORTHOREG_DATABASE_URL", None)
    os.environ.setdefault("DJANGO_SETTINGS_MODULE", "orthoreg.settings")
    os.environ["ORTHOREG_MAX_UPLOAD_MB"] = "50"
    import django

    django.setup()
    from django.core.files.uploadedfile import SimpleUploadedFile
    from django.core.management import call_command
    from django.test import Client
    from django.urls import reverse

    from orthoreg.accounts.models import Role
    from orthoreg.accounts.services import user_create
    from orthoreg.imaging import dicomio, jsw, phantoms, services
    from orthoreg.imaging.calibration import Spacing
    from orthoreg.registry.models import Clinic, Episode, Patient

    call_command("migrate", verbosity=0)
    rows = []

    # 1. Joint space width on 2,500 x 2,000, 16 bits.
    print("Generating a 2,500 x 2,000 16-bit phantom ...", file=sys.stderr)
    phantom = phantoms.make_phantom(width_px=2500, height_px=2000, spacing_mm=0.1, joint_length_mm=120,
                                    gap_medial_mm=1.5, gap_lateral_mm=4.0, bits=16, blur_px=1.5, noise=0.02,
                                    texture=0.02, supersample=1, rotation_deg=8)
    dicom = phantom.to_dicom()
    spacing = Spacing(0.1, 0.1, "dicom_imager")
    jsw.measure(phantom.pixels, phantom.line, spacing)  # warm-up (imports, caches)
    seconds, result = _median_time(lambda: jsw.measure(phantom.pixels, phantom.line, spacing), repeat)
    rows.append(("JSW, 2500x2000 16-bit: measurement", seconds, 0.5,
                 f"{result.summary['count']} profiles, minimum {result.summary['minimum']} mm (true 1.5)"))
    seconds, result = _median_time(
        lambda: jsw.measure(dicomio.load_image(dicom).intensities, phantom.line, spacing), repeat)
    rows.append(("JSW, 2500x2000 16-bit: read DICOM + measure", seconds, 0.5, f"{len(dicom) / 1e6:.1f} MB DICOM"))

    if not uploads:
        _print(rows, repeat)
        real_films_table(repeat)
        return 0

    # 2. Upload and rendition of a ~20 MB DICOM.
    print("Generating ~20 MB DICOMs ...", file=sys.stderr)
    clinic = Clinic.objects.create(code="bench", name="Bench")
    patient = Patient.objects.create(clinic=clinic, mrn="B-1", given_name="Bench", family_name="Mark",
                                     birth_date=dt.date(1980, 1, 1))
    episode = Episode.objects.create(patient=patient, body_site="knee", side="right", condition="oa_primary")
    user = user_create(username="bench", password="bench-password-123", clinics=[clinic], role=Role.CLINICIAN,
                       validate=False)
    big = phantoms.make_phantom(width_px=3600, height_px=2800, spacing_mm=0.1, joint_length_mm=200, bits=14,
                                supersample=1, blur_px=1.2, noise=0.02)
    files = [big.to_dicom(window=(8000, 12000)) for _ in range(repeat * 2 + 1)]  # new UIDs: distinct files
    size_mb = len(files[0]) / 1e6
    counter = iter(range(len(files)))

    def upload_service():
        index = next(counter)
        return services.image_upload(episode=episode, file=SimpleUploadedFile(f"big{index}.dcm", files[index]),
                                     view="ap_wb", side="right", date=dt.date(2024, 1, 1) + dt.timedelta(days=index),
                                     user=user)

    upload_service()  # warm-up
    seconds, image = _median_time(upload_service, repeat)
    rows.append((f"Upload + rendition, {size_mb:.1f} MB DICOM: service", seconds, 2.0,
                 f"{image.width}x{image.height}, {image.bits}-bit"))

    client = Client(HTTP_HOST="localhost")
    client.force_login(user)
    url = reverse("imaging:upload", args=[episode.pk])

    def upload_http():
        index = next(counter)
        day = dt.date(2023, 1, 1) + dt.timedelta(days=index)
        response = client.post(url, {"file": SimpleUploadedFile(f"big{index}.dcm", files[index]), "view": "ap_wb",
                                     "side": "right", "date": day.isoformat()})
        assert response.status_code == 302, response.status_code
        return response

    seconds, _ = _median_time(upload_http, repeat)
    rows.append((f"Upload + rendition, {size_mb:.1f} MB DICOM: HTTP POST", seconds, 2.0, "multipart, redirect"))

    _print(rows, repeat)
    real_films_table(repeat)
    return 0


def _print(rows, repeat: int) -> None:
    width = max(len(r[0]) for r in rows)
    print(f"\n{'scenario'.ljust(width)}  median s  target s  ratio  result  note")
    for name, seconds, target, note in rows:
        verdict = "ok" if seconds <= target else "SLOW"
        print(f"{name.ljust(width)}  {seconds:8.3f}  {target:8.1f}  {seconds / target:5.2f}  {verdict:6}  {note}")
    print(f"\n(median of {repeat} runs each, after one warm-up)")


if __name__ == "__main__":
    sys.exit(main())
