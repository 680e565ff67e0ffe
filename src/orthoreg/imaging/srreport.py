"""A radiograph's annotations and joint space width measurements as a DICOM Structured Report that other
systems read: a TID 1500 Measurement Report (Comprehensive 3D SR, built with highdicom) referencing the source
image by its SOP Instance UID, and its reading back.

Pure (no database writes): services.sr_export / sr_push build it, audit it and send it.

What is in it, and in which codes (all from the DICOM standard's code tables as pydicom ships them):
- each joint space width measurement is one measurement group: its tracking identifier names it ("Joint space
  width 12: semi-automatic, accepted"); a semi-automatic one carries the line the user drew (SCOORD POLYLINE)
  and the algorithm; each value is a Width (SCT 103355008) with derivation Mean (SCT 373098007) for a third
  (finding site Joint with topographical modifier Medial / Central / Lateral) or Minimum (SCT 255605001) for the
  minimum; a third that was not measurable is left out (never 0);
- each caliper is a group with its line (POLYLINE) and its Length (SCT 410668003);
- each arrow (POLYLINE), ellipse (ELLIPSE), circle (CIRCLE) and text label (POINT) is a group with its shape and
  its label in the tracking identifier;
- units: UCUM "mm" when the image is calibrated, else UCUM "{pixels}";
- coordinates are image pixel coordinates (column, row) as the editor stores them.
"""

from __future__ import annotations

import copy
import io
import math
from dataclasses import dataclass
from typing import Any

import highdicom as hd
import numpy as np
import pydicom
from pydicom.sr.codedict import codes
from pydicom.uid import generate_uid

from . import calibration
from . import geometry as geo

MM = codes.UCUM.Millimeter
PIXELS = hd.sr.CodedConcept("{pixels}", "UCUM", "pixels")
JOINTS = {
    "ankle": codes.SCT.AnkleJoint, "knee": codes.SCT.KneeJoint, "hip": codes.SCT.HipJoint,
    "shoulder": codes.SCT.Shoulder, "elbow": codes.SCT.ElbowJoint, "wrist_hand": codes.SCT.WristJoint,
    "lumbar_spine": codes.SCT.LumbarSpine, "cervical_spine": codes.SCT.CervicalSpine,
}
THIRDS = {"medial": codes.SCT.Medial, "central": codes.SCT.Central, "lateral": codes.SCT.Lateral}
SIDES = {"left": codes.SCT.Left, "right": codes.SCT.Right}
ALGORITHM = ("orthoreg joint space width (minimal-path margins)", "1")
_UID_ROOT = "orthoreg-sr"
_package = "orthoreg"
_TYPE_2 = ("PatientName", "PatientID", "PatientBirthDate", "PatientSex", "StudyDate", "StudyTime",
           "ReferringPhysicianName", "StudyID", "AccessionNumber")


class ReportError(ValueError):
    """The image cannot have a DICOM measurement report (the message says why)."""


def _uid(*parts) -> str:
    """A UID that is the same for the same parts: re-exports keep their series and tracking identifiers."""
    return generate_uid(entropy_srcs=[_UID_ROOT, *(str(p) for p in parts)])


def unit_code(unit: str):
    return MM if unit == "mm" else PIXELS


def build(image, source: pydicom.Dataset, *, observer: str, measurements, annotations) -> hd.sr.Comprehensive3DSR:
    """The measurement report of `image` (a models.Image of a DICOM file; `source` is its dataset, pixels not
    needed) with its `measurements` (models.Measurement) and `annotations` (models.Annotation)."""
    sop_class, sop_uid = str(source.get("SOPClassUID", "")), str(source.get("SOPInstanceUID", ""))
    if not sop_class or not sop_uid or "StudyInstanceUID" not in source or "SeriesInstanceUID" not in source:
        raise ReportError("The DICOM file of this radiograph has no SOP Instance UID, series or study to reference: a "
                          "measurement report cannot point at it.")
    source = copy.deepcopy(source)
    for keyword in _TYPE_2:  # the report copies these from the image; an empty value is allowed, absence is not
        if keyword not in source:
            setattr(source, keyword, "")
    joint = JOINTS.get(image.study.episode.body_site, codes.SCT.Joint)
    side = SIDES.get(image.side)

    def site(modifier=None):
        return [hd.sr.FindingSite(anatomic_location=joint, laterality=side, topographical_modifier=modifier)]

    def region(graphic_type: str, points) -> hd.sr.ImageRegion:
        return hd.sr.ImageRegion(graphic_type=graphic_type, graphic_data=np.asarray(points, dtype=float),
                                 source_image=hd.sr.SourceImageForRegion(sop_class, sop_uid))

    referenced = [hd.sr.SourceImageForMeasurement(sop_class, sop_uid)]
    groups: list = []
    for m in measurements:
        values = []
        for name, value in m.values.items():
            if value is None:
                continue
            values.append(hd.sr.Measurement(
                name=codes.SCT.Width, value=float(value), unit=unit_code(m.unit),
                derivation=codes.SCT.Minimum if name == "minimum" else codes.SCT.Mean,
                finding_sites=site(THIRDS.get(name)), referenced_images=referenced))
        state = "accepted" if m.accepted else "draft"
        tracking = hd.sr.TrackingIdentifier(uid=_uid(sop_uid, "measurement", m.pk),
                                            identifier=f"Joint space width {m.pk}: {m.get_method_display()}, {state}")
        if m.method == m.Method.SEMI_AUTO and len(m.line or []) == 4:
            x1, y1, x2, y2 = (float(v) for v in m.line)
            groups.append(hd.sr.PlanarROIMeasurementsAndQualitativeEvaluations(
                tracking_identifier=tracking, referenced_region=region("POLYLINE", [[x1, y1], [x2, y2]]),
                algorithm_id=hd.sr.AlgorithmIdentification(*ALGORITHM), finding_sites=site(),
                measurements=values or None))
        else:
            groups.append(hd.sr.MeasurementsAndQualitativeEvaluations(
                tracking_identifier=tracking, finding_sites=site(), measurements=values or None,
                source_images=[hd.sr.SourceImageForMeasurementGroup(sop_class, sop_uid)]))
    for a in annotations:
        g = a.geometry
        label = f"{a.get_kind_display()} {a.pk}" + (f": {a.label}" if a.label else "")
        tracking = hd.sr.TrackingIdentifier(uid=_uid(sop_uid, "annotation", a.pk), identifier=label[:64])
        values = None
        if a.kind in (geo.ARROW, geo.CALIPER):
            shape = region("POLYLINE", [[g["x1"], g["y1"]], [g["x2"], g["y2"]]])
            if a.kind == geo.CALIPER:
                length, length_unit = calibration.distance((g["x1"], g["y1"]), (g["x2"], g["y2"]), image.spacing)
                values = [hd.sr.Measurement(name=codes.SCT.Length, value=round(length, 3),
                                            unit=unit_code(length_unit), referenced_images=referenced,
                                            finding_sites=site(THIRDS.get(g.get("region", ""))))]
        elif a.kind == geo.CIRCLE:
            shape = region("CIRCLE", [[g["cx"], g["cy"]], [g["cx"] + g["r"], g["cy"]]])
        elif a.kind == geo.ELLIPSE:
            angle = math.radians(g.get("angle", 0))
            c, s = math.cos(angle), math.sin(angle)
            cx, cy, rx, ry = g["cx"], g["cy"], g["rx"], g["ry"]
            shape = region("ELLIPSE", [[cx - rx * c, cy - rx * s], [cx + rx * c, cy + rx * s],
                                       [cx + ry * s, cy - ry * c], [cx - ry * s, cy + ry * c]])
        else:
            shape = region("POINT", [[g["x"], g["y"]]])
        groups.append(hd.sr.PlanarROIMeasurementsAndQualitativeEvaluations(
            tracking_identifier=tracking, referenced_region=shape, measurements=values))

    person = hd.sr.ObserverContext(observer_type=codes.DCM.Person,
                                   observer_identifying_attributes=hd.sr.PersonObserverIdentifyingAttributes(
                                       name=observer or "orthoreg"))
    device = hd.sr.ObserverContext(observer_type=codes.DCM.Device,
                                   observer_identifying_attributes=hd.sr.DeviceObserverIdentifyingAttributes(
                                       uid=_uid("device"), name=_package, manufacturer_name=_package))
    report = hd.sr.MeasurementReport(
        observation_context=hd.sr.ObservationContext(observer_person_context=person, observer_device_context=device),
        procedure_reported=codes.SCT.PlainRadiography, imaging_measurements=groups or None)
    return hd.sr.Comprehensive3DSR(
        evidence=[source], content=report, series_instance_uid=_uid(sop_uid, "series"), series_number=9901,
        sop_instance_uid=generate_uid(), instance_number=1, manufacturer=_package, is_complete=True,
        series_description="orthoreg measurements")


def to_bytes(dataset: pydicom.Dataset) -> bytes:
    buffer = io.BytesIO()
    dataset.save_as(buffer, enforce_file_format=True)
    return buffer.getvalue()


@dataclass(frozen=True)
class ReadValue:
    group: str  # the tracking identifier's text
    name: str  # "Width" or "Length"
    value: float
    unit: str  # UCUM code value: "mm" or "{pixels}"
    derivation: str  # "Mean", "Minimum" or ""
    modifier: str  # "Medial", "Central", "Lateral" or ""
    referenced_sop_instance_uid: str


def read(data: bytes | pydicom.Dataset) -> dict:
    """Read a measurement report back (highdicom): {"referenced": [SOP Instance UIDs of the evidence],
    "values": [ReadValue], "regions": {tracking identifier: (graphic type, points, SOP Instance UID)}}."""
    dataset = pydicom.dcmread(io.BytesIO(data)) if isinstance(data, bytes) else data
    report = hd.sr.Comprehensive3DSR.from_dataset(dataset)
    referenced = [str(ref.ReferencedSOPInstanceUID)
                  for study in report.get("CurrentRequestedProcedureEvidenceSequence", [])
                  for series in study.ReferencedSeriesSequence for ref in series.ReferencedSOPSequence]
    values: list[ReadValue] = []
    regions: dict = {}
    content: Any = report.content  # highdicom's MeasurementReport content (its stubs say ContentSequence)
    groups = list(content.get_planar_roi_measurement_groups()) + list(content.get_image_measurement_groups())
    for group in groups:
        name = group.tracking_identifier
        roi = getattr(group, "roi", None)
        if roi is not None:
            source = roi.ContentSequence[0].ReferencedSOPSequence[0]  # the SELECTED FROM image
            regions[name] = (str(roi.graphic_type.value), roi.value.tolist(), str(source.ReferencedSOPInstanceUID))
        for image in getattr(group, "source_images", None) or []:
            regions.setdefault(name, ("", [], str(image.referenced_sop_instance_uid)))
        for m in group.get_measurements():
            sites = m.finding_sites
            modifier = sites[0].topographical_modifier if sites else None
            images = m.referenced_images
            values.append(ReadValue(
                group=name, name=m.name.meaning, value=float(m.value), unit=m.unit.value,
                derivation=m.derivation.meaning if m.derivation else "",
                modifier=modifier.meaning if modifier else "",
                referenced_sop_instance_uid=str(images[0].referenced_sop_instance_uid) if images else ""))
    return {"referenced": referenced, "values": values, "regions": regions}
