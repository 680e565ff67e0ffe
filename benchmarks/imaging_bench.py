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
    python benchmarks/imaging_bench.py --quick [--json FILE]   # part 4 only (what benchmarks/run.py merges)

4. Memory of a ~20 MB DICOM upload (issue 17 item 4; target: at most 2x the file's size): a real
   `orthoreg serve --workers 1` process on a port of its own, one small upload first (imports, caches), then the
   20 MB DICOM POSTed as multipart; the figure is the increase of the server process's peak resident memory
   (VmHWM in /proc/PID/status), the floor the file's size.

Runs against a throwaway SQLite database in a temporary data directory; prints the median of the repeats.
"""

from __future__ import annotations

import argparse
import datetime as dt
import http.client
import json
import os
import re
import shutil
import statistics
import subprocess
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
    parser.add_argument("--quick", action="store_true", help="the upload memory scenario only")
    parser.add_argument("--json", default=None, help="save the memory row here (benchmarks/run.py's format)")
    parser.add_argument("--port", type=int, default=0,
                        help="port of the server the memory scenario starts (default: a free one)")
    args = parser.parse_args()
    data_dir = tempfile.mkdtemp(prefix="orthoreg-imaging-bench-")
    try:
        if args.quick:
            _setup(data_dir)
            rows = [upload_memory(data_dir, args.port)]
        else:
            status = run(args.repeat, data_dir, uploads=not args.jsw_only)
            rows = [] if args.jsw_only else [upload_memory(data_dir, args.port)]
            if status:
                return status
        if args.json:
            with open(args.json, "w") as fh:
                json.dump(rows, fh, indent=1)
        return 0
    finally:
        shutil.rmtree(data_dir, ignore_errors=True)


def _setup(data_dir: str) -> None:
    os.environ["ORTHOREG_DATA_DIR"] = data_dir
    os.environ.pop("ORTHOREG_DATABASE_URL", None)
    os.environ.setdefault("DJANGO_SETTINGS_MODULE", "orthoreg.settings")
    os.environ["ORTHOREG_MAX_UPLOAD_MB"] = "50"
    import django

    django.setup()
    from django.core.management import call_command

    call_command("migrate", verbosity=0)


def _peak_rss_mb(pid: int) -> float:
    with open(f"/proc/{pid}/status") as fh:
        for line in fh:
            if line.startswith("VmHWM:"):
                return int(line.split()[1]) / 1024
    raise RuntimeError("no VmHWM")


def _multipart(fields: dict, name: str, content: bytes) -> tuple[bytes, str]:
    boundary = "----orthoreg-bench-boundary"
    parts = [f'--{boundary}\r\nContent-Disposition: form-data; name="{k}"\r\n\r\n{v}\r\n'.encode()
             for k, v in fields.items()]
    parts.append(f'--{boundary}\r\nContent-Disposition: form-data; name="file"; filename="{name}"\r\n'
                 "Content-Type: application/dicom\r\n\r\n".encode() + content + b"\r\n")
    parts.append(f"--{boundary}--\r\n".encode())
    return b"".join(parts), f"multipart/form-data; boundary={boundary}"


def upload_memory(data_dir: str, port: int) -> dict:
    """Part 4: the server process's peak memory increase for a ~20 MB DICOM upload, against the file's size."""
    from django.conf import settings
    from django.test import Client as DjangoClient

    from orthoreg.accounts.models import Role
    from orthoreg.accounts.services import user_create
    from orthoreg.imaging import phantoms
    from orthoreg.registry.models import Clinic, Episode, Patient

    print("Upload memory: generating a ~20 MB DICOM and starting a server ...", file=sys.stderr)
    if not port:
        import socket

        with socket.socket() as probe:
            probe.bind(("127.0.0.1", 0))
            port = probe.getsockname()[1]
    clinic, _ = Clinic.objects.get_or_create(code="mem", defaults={"name": "Memory"})
    patient = Patient.objects.create(clinic=clinic, mrn="M-1", given_name="Memory", family_name="Bench",
                                     birth_date=dt.date(1980, 1, 1))
    episode = Episode.objects.create(patient=patient, body_site="knee", side="right", condition="oa_primary")
    user = user_create(username="membench", password="bench-password-123", clinics=[clinic], role=Role.CLINICIAN,
                       validate=False)
    small = phantoms.make_phantom(width_px=400, height_px=300, spacing_mm=0.1, bits=14, supersample=1).to_dicom()
    big = phantoms.make_phantom(width_px=3600, height_px=2800, spacing_mm=0.1, joint_length_mm=200, bits=14,
                                supersample=1, blur_px=1.2, noise=0.02).to_dicom(window=(8000, 12000))
    browser = DjangoClient()
    browser.force_login(user)
    cookies = {"sessionid": browser.cookies[settings.SESSION_COOKIE_NAME].value}
    env = {**os.environ, "ORTHOREG_DATA_DIR": data_dir, "PYTHONPATH": os.pathsep.join(sys.path)}
    server = subprocess.Popen([sys.executable, "-m", "orthoreg", "serve", "--host", "127.0.0.1", "--port", str(port),
                               "--workers", "1"], env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    try:
        from django.urls import reverse

        path = reverse("imaging:upload", args=[episode.pk])
        for _ in range(300):
            try:
                conn = http.client.HTTPConnection("127.0.0.1", port, timeout=120)
                conn.request("GET", "/healthz")
                conn.getresponse().read()
                break
            except OSError:
                time.sleep(0.1)
        else:
            raise RuntimeError("the server did not start: " + server.stderr.read().decode()[-500:] if server.stderr else "")

        def post(content: bytes, day: dt.date) -> int:
            conn = http.client.HTTPConnection("127.0.0.1", port, timeout=300)
            cookie = "; ".join(f"{k}={v}" for k, v in cookies.items())
            conn.request("GET", path, headers={"Cookie": cookie})
            response = conn.getresponse()
            page = response.read().decode()
            for header in response.headers.get_all("Set-Cookie") or []:
                match = re.match(r"([^=]+)=([^;]*)", header)
                if match:
                    cookies[match.group(1)] = match.group(2)
            token = re.search(r'name="csrfmiddlewaretoken" value="([^"]+)"', page).group(1)  # type: ignore[union-attr]
            body, content_type = _multipart({"csrfmiddlewaretoken": token, "view": "ap_wb", "side": "right",
                                             "date": day.isoformat()}, "film.dcm", content)
            cookie = "; ".join(f"{k}={v}" for k, v in cookies.items())
            conn.request("POST", path, body=body, headers={
                "Cookie": cookie, "Content-Type": content_type, "Referer": f"http://127.0.0.1:{port}{path}"})
            response = conn.getresponse()
            response.read()
            return response.status

        assert post(small, dt.date(2024, 1, 1)) == 302, "the warm-up upload failed"
        before = _peak_rss_mb(server.pid)
        status = post(big, dt.date(2024, 1, 2))
        assert status == 302, f"the 20 MB upload answered {status}"
        after = _peak_rss_mb(server.pid)
    finally:
        server.terminate()
        server.wait(timeout=30)
    size_mb = len(big) / 1048576
    increase = after - before
    ratio = increase / size_mb
    load = os.getloadavg()
    print(f"\nUpload memory: {size_mb:.1f} MB DICOM; server peak RSS {before:.0f} -> {after:.0f} MB, increase "
          f"{increase:.1f} MB; floor {size_mb:.1f} MB (the file); ratio {ratio:.2f}; target 2.0: "
          f"{'held' if ratio <= 2 else 'MISSED'}  (load average {load[0]:.2f} {load[1]:.2f} {load[2]:.2f})")
    return {"scenario": f"upload {size_mb:.0f} MB DICOM: server peak memory increase", "figure": round(increase, 1),
            "unit": "MB", "floor": round(size_mb, 1), "ratio": round(ratio, 3), "target": 2.0, "held": ratio <= 2,
            "note": f"VmHWM of `serve --workers 1`, after a small warm-up upload; load {load[0]:.2f}"}


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
    _setup(data_dir)
    from django.core.files.uploadedfile import SimpleUploadedFile
    from django.test import Client
    from django.urls import reverse

    from orthoreg.accounts.models import Role
    from orthoreg.accounts.services import user_create
    from orthoreg.imaging import dicomio, jsw, phantoms, services
    from orthoreg.imaging.calibration import Spacing
    from orthoreg.registry.models import Clinic, Episode, Patient

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
