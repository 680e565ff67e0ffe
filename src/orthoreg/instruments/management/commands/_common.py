"""Helpers shared by the instruments commands."""

from __future__ import annotations

import json
import sys
from pathlib import Path

from django.core.management.base import CommandError

BAD_INPUT = 2  # exit status for input the command cannot use


def fail(message: str) -> CommandError:
    return CommandError(message, returncode=BAD_INPUT)


def read_text(path: str) -> str:
    """A file's text ('-' for standard input), or CommandError naming the problem."""
    if path == "-":
        return sys.stdin.read()
    try:
        return Path(path).read_text(encoding="utf-8-sig")
    except FileNotFoundError:
        raise fail(f"{path}: no such file") from None
    except IsADirectoryError:
        raise fail(f"{path}: is a directory, not a file") from None
    except UnicodeDecodeError:
        raise fail(f"{path}: not UTF-8 text") from None
    except OSError as exc:
        raise fail(f"{path}: {exc.strerror}") from None


def load_json(text: str, where: str):
    try:
        return json.loads(text)
    except json.JSONDecodeError as exc:
        raise fail(f"{where}: not valid JSON ({exc.msg} at line {exc.lineno}, column {exc.colno})") from None


def read_bytes(path: str) -> bytes:
    """A file's bytes ('-' for standard input), or CommandError naming the problem."""
    if path == "-":
        return sys.stdin.buffer.read()
    try:
        return Path(path).read_bytes()
    except FileNotFoundError:
        raise fail(f"{path}: no such file") from None
    except IsADirectoryError:
        raise fail(f"{path}: is a directory, not a file") from None
    except OSError as exc:
        raise fail(f"{path}: {exc.strerror}") from None
