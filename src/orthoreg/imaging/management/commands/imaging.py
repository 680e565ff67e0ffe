"""`orthoreg imaging ...`: radiograph tools for scripts.

    orthoreg imaging measure FILE --line X1,Y1,X2,Y2 [--spacing MM] [--search PX]
        Semi-automatic joint space width along the line (first point = medial end). Prints JSON with
        medial, central, lateral, minimum (numbers, or null where not measurable), unit ("mm" or "px"),
        the per-profile widths and the margins found. Spacing: --spacing, else the DICOM header, else pixels.
    orthoreg imaging info FILE
        What the file is: format, size, bits, photometric interpretation, calibration, header facts (JSON).
    orthoreg imaging phantom OUT [--gap-medial MM] [--gap-lateral MM] [--rotation DEG] [--bits N] ...
        Write a phantom radiograph of known joint space (DICOM with ImagerPixelSpacing, or PNG by extension).

    orthoreg imaging pull --patient MRN [--since DATE] [--until DATE] [--episode ID] [--study UID ...] [--list]
        Import the patient's radiographs from the clinic's PACS (DICOMweb: ORTHOREG_DICOMWEB_URL): every study of
        the patient (PatientID = MRN) taken on or after --since, or only the --study UIDs, into the episode (the
        patient's only episode, or --episode). Each image is checked, de-duplicated, calibrated and audited as an
        upload is. --list only lists the PACS's studies. A progress bar on stderr, one line per image on stdout.
    orthoreg imaging push-sr IMAGE_ID
        Store the image's measurement report (DICOM SR, TID 1500) on the PACS (STOW-RS).
    orthoreg imaging sr IMAGE_ID OUT
        Write the image's measurement report (DICOM SR, TID 1500) to a file.

Exit status 2, with a message on stderr, for a file that cannot be read, a bad argument, or anything refused
(an unknown patient or image, no PACS configured, a PACS that cannot be reached or refuses, an image that is not
imported because it fails the upload's checks).
"""

from __future__ import annotations

import datetime as dt
import json
import math
from pathlib import Path

from django.contrib.auth import get_user_model
from django.core.exceptions import ValidationError
from django.core.management.base import BaseCommand, CommandError
from tqdm import tqdm

from orthoreg.formats import format_date
from orthoreg.imaging import calibration, dicomio, jsw, pacs, phantoms, services, srreport
from orthoreg.imaging.models import Image
from orthoreg.registry.models import Episode, Patient


def _fail(message: str) -> CommandError:
    return CommandError(message, returncode=2)


def _read(path: str) -> dicomio.LoadedImage:
    try:
        data = Path(path).read_bytes()
    except OSError as exc:
        raise _fail(f"{path}: cannot read the file ({exc.strerror or exc}).") from None
    try:
        return dicomio.load_image(data)
    except dicomio.ImageReadError as exc:
        raise _fail(f"{path}: {exc}") from None


class Command(BaseCommand):
    help = "Radiograph tools: measure joint space width, describe a file, write a phantom."
    requires_system_checks: list = []
    requires_migrations_checks = False

    def add_arguments(self, parser):
        actions = parser.add_subparsers(dest="action", metavar="ACTION", required=True)

        measure = actions.add_parser("measure", help="Semi-automatic joint space width along a line")
        measure.add_argument("file", help="DICOM, PNG or JPEG radiograph")
        measure.add_argument("--line", required=True, help="X1,Y1,X2,Y2 in pixels; the first point is the medial end")
        measure.add_argument("--spacing", help="Pixel spacing in mm (overrides the DICOM header)")
        measure.add_argument("--search", help="Half-length of the profiles in pixels (default: a quarter of the line)")
        measure.add_argument("--compact", action="store_true", help="One line of JSON")

        info = actions.add_parser("info", help="Describe a radiograph file")
        info.add_argument("file")

        phantom = actions.add_parser("phantom", help="Write a phantom radiograph of known joint space")
        phantom.add_argument("out", help="Output file: .dcm for DICOM, .png for PNG")
        phantom.add_argument("--gap-medial", type=float, default=1.0, help="mm (default 1.0)")
        phantom.add_argument("--gap-lateral", type=float, default=2.5, help="mm (default 2.5)")
        phantom.add_argument("--spacing", type=float, default=0.1, help="mm per pixel (default 0.1)")
        phantom.add_argument("--rotation", type=float, default=0.0, help="degrees counter-clockwise")
        phantom.add_argument("--blur", type=float, default=1.0, help="Gaussian sigma in pixels")
        phantom.add_argument("--noise", type=float, default=0.01, help="fraction of full scale")
        phantom.add_argument("--bits", type=int, default=12, choices=range(8, 17), metavar="8-16")
        phantom.add_argument("--size", default="480x360", help="WIDTHxHEIGHT in pixels")
        phantom.add_argument("--anatomy", default="block", choices=["block", "mtp"])
        phantom.add_argument("--fused", action="store_true", help="No joint space")

        pull = actions.add_parser("pull", help="Import a patient's radiographs from the clinic's PACS (DICOMweb)")
        pull.add_argument("--patient", required=True, metavar="MRN", help="The patient's MRN (the PACS's PatientID)")
        pull.add_argument("--clinic", metavar="CODE", help="The clinic, when the MRN is used in more than one")
        pull.add_argument("--episode", metavar="ID", help="The episode to import into (default: the only one)")
        pull.add_argument("--since", metavar="YYYY-MM-DD", help="Only studies taken on or after this date")
        pull.add_argument("--until", metavar="YYYY-MM-DD", help="Only studies taken on or before this date")
        pull.add_argument("--study", action="append", default=[], metavar="UID",
                          help="Only this study (Study Instance UID); may be repeated")
        pull.add_argument("--list", dest="list_only", action="store_true", help="Only list the PACS's studies of the patient")
        pull.add_argument("--user", metavar="USERNAME", help="Who imports, for the audit log")

        push = actions.add_parser("push-sr", help="Store a radiograph's measurement report (DICOM SR) on the PACS")
        push.add_argument("image", metavar="IMAGE_ID")
        push.add_argument("--user", metavar="USERNAME", help="Who sends it, for the audit log and the report")

        write = actions.add_parser("sr", help="Write a radiograph's measurement report (DICOM SR) to a file")
        write.add_argument("image", metavar="IMAGE_ID")
        write.add_argument("out", help="Output .dcm file")
        write.add_argument("--user", metavar="USERNAME", help="Who exports it, for the audit log and the report")

    def handle(self, *args, action: str, **options):
        action = action.replace("-", "_")
        return getattr(self, f"_{action}")(**options)

    # --- measure ------------------------------------------------------------------------------------------
    def _measure(self, *, file: str, line: str, spacing: str | None, search: str | None, compact: bool, **_):
        try:
            points = jsw.parse_line(line)
        except jsw.JswError as exc:
            raise _fail(f"--line: {exc}") from None
        search_px = None
        if search is not None:
            try:
                search_px = float(search)
            except ValueError:
                raise _fail("--search must be a number of pixels.") from None
        loaded = _read(file)
        used, source = loaded.spacing, loaded.spacing.source if loaded.spacing else calibration.NONE
        if spacing is not None:
            try:
                mm = float(spacing)
            except ValueError:
                raise _fail("--spacing must be a number of mm.") from None
            try:
                calibration.check_spacing(mm, mm, what="--spacing")
            except calibration.CalibrationError as exc:
                raise _fail(str(exc)) from None
            used, source = calibration.Spacing(mm, mm, "command_line"), "command_line"
        try:
            result = jsw.measure(loaded.intensities, points, used, search_px=search_px)
        except jsw.JswError as exc:
            raise _fail(f"--line: {exc}") from None
        out = result.to_dict()
        out = {"file": file, "calibration": source,
               "spacing_mm": [used.row_mm, used.col_mm] if used else None,
               **{key: out[key] for key in ("medial", "central", "lateral", "minimum", "unit")},
               "measurable": out["measurable"], "count": out["count"], "notes": out["notes"],
               "line": out["line"], "search_px": out["search_px"], "widths": out["widths"],
               "profiles": out["profiles"]}
        if loaded.spacing_messages and spacing is None and not used:
            out["notes"] = out["notes"] + loaded.spacing_messages
        self.stdout.write(json.dumps(out, separators=(",", ":")) if compact else json.dumps(out, indent=2))

    # --- info ---------------------------------------------------------------------------------------------
    def _info(self, *, file: str, **_):
        loaded = _read(file)
        spacing = loaded.spacing
        out = {"file": file, "format": loaded.format, "width": loaded.width, "height": loaded.height,
               "bits": loaded.bits, "photometric": loaded.photometric, "window": loaded.window,
               "calibration": spacing.source if spacing else calibration.NONE,
               "spacing_mm": [spacing.row_mm, spacing.col_mm] if spacing else None,
               "calibration_messages": loaded.spacing_messages, "header": loaded.header}
        self.stdout.write(json.dumps(out, indent=2))

    # --- phantom ------------------------------------------------------------------------------------------
    def _phantom(self, *, out: str, gap_medial: float, gap_lateral: float, spacing: float, rotation: float,
                 blur: float, noise: float, bits: int, size: str, anatomy: str, fused: bool, **_):
        try:
            width, height = (int(v) for v in size.lower().split("x"))
        except ValueError:
            raise _fail("--size must be WIDTHxHEIGHT, e.g. 480x360.") from None
        if not (64 <= width <= 8000 and 64 <= height <= 8000):
            raise _fail("--size: each side must be 64 to 8000 pixels.")
        if not all(math.isfinite(v) for v in (gap_medial, gap_lateral, spacing, rotation, blur, noise)):
            raise _fail("Every number must be finite.")
        try:
            calibration.check_spacing(spacing, spacing, what="--spacing")
            phantom = phantoms.make_phantom(
                width_px=width, height_px=height, spacing_mm=spacing, gap_medial_mm=gap_medial,
                gap_lateral_mm=gap_lateral, joint_length_mm=0.6 * width * spacing, rotation_deg=rotation,
                blur_px=blur, noise=noise, bits=bits, anatomy=anatomy, fused=fused, supersample=2)
        except ValueError as exc:
            raise _fail(str(exc)) from None
        target = Path(out)
        data = phantom.to_png() if target.suffix.lower() == ".png" else phantom.to_dicom()
        try:
            target.write_bytes(data)
        except OSError as exc:
            raise _fail(f"{out}: cannot write ({exc.strerror or exc}).") from None
        x1, y1, x2, y2 = phantom.line
        self.stdout.write(json.dumps({"file": out, "line": f"{x1:.1f},{y1:.1f},{x2:.1f},{y2:.1f}",
                                      "gap_medial_mm": gap_medial, "gap_lateral_mm": gap_lateral,
                                      "spacing_mm": spacing, "fused": fused}))

    # --- PACS -----------------------------------------------------------------------------------------------
    def _user(self, username: str | None):
        if not username:
            return None
        user = get_user_model().objects.filter(username=username, is_active=True).first()
        if user is None:
            raise _fail(f"--user: no active user {username!r}.")
        return user

    def _episode(self, mrn: str, clinic: str | None, episode: str | None) -> Episode:
        patients = Patient.objects.filter(mrn=mrn).select_related("clinic")
        if clinic:
            patients = patients.filter(clinic__code=clinic)
        found = list(patients[:5])
        if not found:
            raise _fail(f"--patient: no patient with MRN {mrn!r}{' in clinic ' + clinic if clinic else ''}.")
        if len(found) > 1:
            raise _fail(f"--patient: MRN {mrn!r} is used in several clinics "
                        f"({', '.join(p.clinic.code for p in found)}); say which with --clinic.")
        patient = found[0]
        episodes = list(patient.episodes.order_by("pk"))
        if episode is not None:
            chosen = next((e for e in episodes if str(e.pk) == episode.strip()), None)
            if chosen is None:
                raise _fail(f"--episode: {episode!r} is not an episode of patient {mrn}; theirs are "
                            + "; ".join(f"{e.pk} ({e})" for e in episodes) + ".")
            return chosen
        if len(episodes) != 1:
            raise _fail(f"Patient {mrn} has {len(episodes) or 'no'} episode{'s' if len(episodes) != 1 else ''}: "
                        + ("say which with --episode: " + "; ".join(f"{e.pk} ({e})" for e in episodes) + "."
                           if episodes else "record one first."))
        return episodes[0]

    @staticmethod
    def _date(value: str | None, name: str) -> dt.date | None:
        if value is None:
            return None
        try:
            return dt.date.fromisoformat(value.strip())
        except ValueError:
            raise _fail(f"--{name}: {value!r} is not a date; write YYYY-MM-DD.") from None

    def _pull(self, *, patient: str, clinic: str | None, episode: str | None, since: str | None,
              until: str | None, study: list[str], list_only: bool, user: str | None, **_):
        start, end = self._date(since, "since"), self._date(until, "until")
        if start and end and start > end:
            raise _fail("--since is after --until.")
        target = self._episode(patient.strip(), clinic, episode)
        who = self._user(user)
        try:
            studies = pacs.find_studies(target.patient.mrn, since=start, until=end)
        except pacs.PacsError as exc:
            raise _fail(str(exc)) from None
        if study:
            unknown = [uid for uid in study if uid not in {s.uid for s in studies}]
            if unknown:
                raise _fail(f"--study: the PACS has no study {', '.join(unknown)} of patient {patient}"
                            f"{' in those dates' if start or end else ''}.")
            studies = [s for s in studies if s.uid in study]
        if list_only:
            for s in studies:
                self.stdout.write(f"{s.date_text}\t{s.modalities or '-'}\t{s.instances if s.instances is not None else '?'}"
                                  f" image(s)\t{s.description or '(no description)'}\t{s.uid}")
            self.stdout.write(f"{len(studies)} stud{'y' if len(studies) == 1 else 'ies'} of patient {patient} on the "
                              f"PACS.")
            return
        if not studies:
            self.stdout.write(f"The PACS has no study of patient {patient}"
                              f"{' in those dates' if start or end else ''}: nothing to import.")
            return
        bar = tqdm(total=0, unit="image", file=self.stderr._out, desc="pull", leave=True)

        def total(n):
            bar.total = n
            bar.refresh()

        def step(outcome):
            bar.update(1)
            if outcome.imported:
                image = outcome.image
                line = (f"imported\t{outcome.instance_uid}\tradiograph {image.pk}: {image.get_view_display()}, "
                        f"{image.get_side_display().lower()}, {format_date(image.date)}, {image.calibration_label}")
            else:
                line = f"not imported\t{outcome.instance_uid}\t{outcome.reason}"
            bar.write(line, file=self.stdout._out)

        try:
            outcomes = services.pacs_import(episode=target, study_uids=[s.uid for s in studies], user=who,
                                            progress=step, on_total=total)
        except pacs.PacsError as exc:
            bar.close()
            raise _fail(str(exc)) from None
        except ValidationError as exc:
            bar.close()
            raise _fail(" ".join(exc.messages)) from None
        bar.close()
        imported = sum(o.imported for o in outcomes)
        refused = [o for o in outcomes if not o.imported and not o.reason.startswith(("already on", "not an image"))]
        self.stdout.write(f"{imported} of {len(outcomes)} image(s) imported into episode {target.pk} ({target}).")
        if refused:
            raise _fail(f"{len(refused)} image(s) were refused: " + " ".join(o.reason for o in refused))

    def _image(self, image: str) -> Image:
        found = Image.objects.select_related("study__episode__patient").filter(pk=int(image)).first() \
            if image.strip().isdigit() else None
        if found is None:
            raise _fail(f"IMAGE_ID: no radiograph {image!r}.")
        return found

    def _push_sr(self, *, image: str, user: str | None, **_):
        target, who = self._image(image), self._user(user)
        try:
            report = services.sr_push(image=target, user=who)
        except (ValidationError, pacs.PacsError) as exc:
            raise _fail(" ".join(exc.messages) if isinstance(exc, ValidationError) else str(exc)) from None
        self.stdout.write(f"Measurement report {report.SOPInstanceUID} of radiograph {target.pk} stored on the PACS "
                          f"({pacs.describe()}), study {report.StudyInstanceUID}.")

    def _sr(self, *, image: str, out: str, user: str | None, **_):
        target, who = self._image(image), self._user(user)
        try:
            data = srreport.to_bytes(services.sr_export(image=target, user=who))
        except ValidationError as exc:
            raise _fail(" ".join(exc.messages)) from None
        try:
            Path(out).write_bytes(data)
        except OSError as exc:
            raise _fail(f"{out}: cannot write ({exc.strerror or exc}).") from None
        self.stdout.write(f"{out}: measurement report of radiograph {target.pk} ({len(data)} bytes).")
