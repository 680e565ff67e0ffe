"""Operations tests run the real `orthoreg` command in its own process against a data directory of its own."""

from __future__ import annotations

import os
import shutil
import socket
import subprocess
import sys
from pathlib import Path

import pytest

CLI = [sys.executable, "-m", "orthoreg"]


def cli_env(data_dir: Path, **extra) -> dict:
    """The environment of an `orthoreg` process on a SQLite data directory (whatever engine the tests use)."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("ORTHOREG_") and k != "DJANGO_SETTINGS_MODULE"}
    env.update(ORTHOREG_DATA_DIR=str(data_dir), ORTHOREG_EMAIL_URL="memory:", **extra)
    return env


def orthoreg(*args, data_dir: Path, check=True, env=None, timeout=300) -> subprocess.CompletedProcess:
    return subprocess.run([*CLI, *args], env=env or cli_env(data_dir), capture_output=True, text=True,
                          timeout=timeout, check=check)


def free_port(host="127.0.0.1") -> int:
    with socket.socket() as s:
        s.bind((host, 0))
        return s.getsockname()[1]


@pytest.fixture(scope="session")
def _migrated_template(tmp_path_factory) -> Path:
    data_dir = tmp_path_factory.mktemp("migrated") / "data"
    orthoreg("migrate", "--verbosity", "0", data_dir=data_dir)
    return data_dir


@pytest.fixture
def data_dir(_migrated_template, tmp_path) -> Path:
    """A migrated SQLite data directory, fresh for each test."""
    target = tmp_path / "data"
    shutil.copytree(_migrated_template, target)
    return target
