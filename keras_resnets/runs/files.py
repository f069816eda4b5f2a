"""Files that a crash never corrupts: JSON and checkpoints written aside and renamed over
(`write_atomic`), read back with a `ValueError` for anything that is not what it should be.

Example:
>>> import pathlib, tempfile
>>> path = pathlib.Path(tempfile.mkdtemp()) / "status.json"
>>> write_json(path, {"state": "created"})
>>> read_json(path)
{'state': 'created'}
"""

import contextlib
import datetime
import json
import os
import re
import secrets
from pathlib import Path

from keras_resnets.design.validation import check_choice
from keras_resnets.runs.processes import process_alive

TEMP_FILE = re.compile(r"\.(\d+)-[0-9a-f]{8}\..+")
"""The name `write_atomic` gives its temporary files: ``.<pid>-<hex>.<name>``."""


def now():
    """The local time as an ISO 8601 string with microseconds and UTC offset."""
    return datetime.datetime.now().astimezone().isoformat()


def write_atomic(path, write):
    """Calls ``write(tmp_path)`` on a temporary path next to ``path``, then renames it over.

    The temporary name keeps the file's suffixes (Keras checks them) and starts with a dot.
    """
    path = Path(path)
    tmp = path.with_name(f".{os.getpid()}-{secrets.token_hex(4)}.{path.name}")
    try:
        write(tmp)
        with open(tmp, "rb+") as f:
            os.fsync(f.fileno())
        os.replace(tmp, path)
    finally:
        tmp.unlink(missing_ok=True)


def write_json(path, data):
    """Writes ``data`` as JSON to ``path`` atomically."""
    write_atomic(path, lambda tmp: tmp.write_text(json.dumps(data, indent=2) + "\n"))


def read_json(path):
    """The JSON object in ``path``; a `ValueError` if it is missing, unreadable or not an object."""
    try:
        data = json.loads(Path(path).read_text())
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as err:
        raise ValueError(f"{path} is not readable JSON: {err}") from err
    if not isinstance(data, dict):
        raise ValueError(f"{path} holds {type(data).__name__}, not a JSON object.")
    return data


def update_status(path, states, **fields):
    """Updates the status file ``path`` with ``fields`` (and the time), atomically; a
    ``state`` must be one of ``states``. A missing or unreadable file starts afresh."""
    if "state" in fields:
        check_choice("state", fields["state"], states)
    try:
        status = read_json(path)
    except ValueError:
        status = {}
    status.update(fields, updated=now())
    write_json(path, status)


def clean_temp_files(directory):
    """Removes the temporary files of `write_atomic` whose writer process is gone."""
    try:
        entries = list(Path(directory).iterdir())
    except OSError:
        return
    for entry in entries:
        match = TEMP_FILE.fullmatch(entry.name)
        if match and not process_alive(int(match.group(1))):
            with contextlib.suppress(OSError):  # a read-only store keeps them
                entry.unlink()
