"""A real Orthanc PACS for the tests: Debian's `orthanc` with its DICOMweb plugin (`orthanc-dicomweb`), started by
the tests themselves (not the system service) on 127.0.0.1 and a free port, storage in a temporary directory,
HTTP basic authentication with a test user, no DICOM port.

Where Orthanc is not installed the tests that need it are skipped with the reason; with ORTHOREG_REQUIRE_ORTHANC=1
(set by .ci/run) they fail instead, so CI cannot skip them silently.
"""

from __future__ import annotations

import io
import json
import os
import secrets
import shutil
import socket
import subprocess
import time
from dataclasses import dataclass
from pathlib import Path

import pydicom
import pytest
import requests

from tests.imaging.real_films import film_path

ORTHANC = os.environ.get("ORTHOREG_ORTHANC", shutil.which("Orthanc") or "/usr/sbin/Orthanc")
PLUGIN = os.environ.get("ORTHOREG_ORTHANC_DICOMWEB", "/usr/share/orthanc/plugins/libOrthancDicomWeb.so")
USER = "orthoreg-test"


def unavailable() -> str | None:
    if not Path(ORTHANC).exists():
        return f"no Orthanc at {ORTHANC} (apt-get install orthanc orthanc-dicomweb)"
    if not Path(PLUGIN).exists():
        return f"no Orthanc DICOMweb plugin at {PLUGIN} (apt-get install orthanc-dicomweb)"
    return None


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


@dataclass
class Orthanc:
    url: str
    password: str
    process: subprocess.Popen

    @property
    def dicomweb(self) -> str:
        return f"{self.url}/dicom-web"

    @property
    def auth(self) -> tuple[str, str]:
        return USER, self.password

    def upload(self, dataset: pydicom.Dataset) -> dict:
        buffer = io.BytesIO()
        dataset.save_as(buffer, enforce_file_format=True)
        answer = requests.post(f"{self.url}/instances", data=buffer.getvalue(), auth=self.auth, timeout=60)
        answer.raise_for_status()
        return answer.json()

    def clear(self) -> None:
        for patient in requests.get(f"{self.url}/patients", auth=self.auth, timeout=30).json():
            requests.delete(f"{self.url}/patients/{patient}", auth=self.auth, timeout=30).raise_for_status()


def _start(root: Path) -> Orthanc:
    password = secrets.token_urlsafe(12)
    for _attempt in range(3):
        port = free_port()
        storage = root / f"storage-{port}"
        storage.mkdir(parents=True)
        config = root / f"orthanc-{port}.json"
        config.write_text(json.dumps({
            "Name": "orthoreg-test", "HttpPort": port, "DicomServerEnabled": False,
            "StorageDirectory": str(storage), "IndexDirectory": str(storage),
            "RemoteAccessAllowed": False, "AuthenticationEnabled": True, "RegisteredUsers": {USER: password},
            "Plugins": [PLUGIN], "DicomWeb": {"Enable": True, "Root": "/dicom-web/"},
            "HttpTimeout": 60, "StableAge": 1,
        }))
        log = (root / f"orthanc-{port}.log").open("wb")
        process = subprocess.Popen([ORTHANC, str(config)], stdout=log, stderr=subprocess.STDOUT, cwd=root)
        url = f"http://127.0.0.1:{port}"
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline and process.poll() is None:
            try:
                if requests.get(f"{url}/dicom-web/studies", auth=(USER, password), timeout=2).status_code == 200:
                    return Orthanc(url=url, password=password, process=process)
            except requests.RequestException:
                pass
            time.sleep(0.2)
        process.terminate()
        process.wait(timeout=10)
    raise RuntimeError(f"Orthanc did not start; see the logs in {root}")


@pytest.fixture(scope="session")
def orthanc_server(tmp_path_factory):
    reason = unavailable()
    if reason:
        if os.environ.get("ORTHOREG_REQUIRE_ORTHANC"):
            pytest.fail(f"the PACS tests are required here but cannot run: {reason}")
        pytest.skip(reason)
    server = _start(tmp_path_factory.mktemp("orthanc"))
    yield server
    server.process.terminate()
    try:
        server.process.wait(timeout=20)
    except subprocess.TimeoutExpired:
        server.process.kill()


@pytest.fixture
def orthanc(orthanc_server, settings):
    """The test Orthanc, emptied, and orthoreg configured to use it (ORTHOREG_DICOMWEB_* settings)."""
    orthanc_server.clear()
    settings.DICOMWEB_URL = orthanc_server.dicomweb
    settings.DICOMWEB_USER, settings.DICOMWEB_PASSWORD = orthanc_server.auth
    return orthanc_server


def film_for(film: str, patient_id: str) -> pydicom.Dataset:
    """A real radiograph of tests/imaging/real_films.py as the PACS holds it for patient `patient_id`."""
    dataset = pydicom.dcmread(film_path(film))
    dataset.PatientID = patient_id
    return dataset
