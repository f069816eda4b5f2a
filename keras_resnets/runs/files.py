"""Files that a crash never corrupts: JSON and checkpoints written aside and renamed over
(`write_atomic`), and the one bounded reader of what the store, the launcher and the explorer
read back, which no file content can break.

The readers (`read_json`, `read_jsonl`, `tail_text`) open only regular files (a FIFO or a
device would block or never end), read at most a bounded number of bytes, and parse JSON
with `keras_resnets.design.validation.parse_json` (nesting checked before parsing, without
recursion; non-finite numbers refused). Whatever they cannot read is a `ValueError` naming
the file, which a reader turns into that one run's ``damaged`` reason.

Example:
>>> import pathlib, tempfile
>>> path = pathlib.Path(tempfile.mkdtemp()) / "status.json"
>>> write_json(path, {"state": "created"})
>>> read_json(path)
{'state': 'created'}
>>> _ = path.write_text("[" * 100_000)
>>> read_json(path)
Traceback (most recent call last):
...
ValueError: .../status.json is not allowed: it nests deeper than 32 levels (line 1 column 33).
"""

import contextlib
import datetime
import json
import os
import re
import secrets
import stat
from pathlib import Path

from keras_resnets.design.validation import MAX_JSON_BYTES, check_choice, parse_json
from keras_resnets.runs.processes import process_alive

TEMP_FILE = re.compile(r"\.(\d{1,10})-[0-9a-f]{8}\..+")
"""The name `write_atomic` gives its temporary files: ``.<pid>-<hex>.<name>``."""
MAX_LINE_BYTES = 2**16
"""The longest line of ``metrics.jsonl`` read: an event is a few hundred bytes."""
MAX_TAIL_BYTES = 2**16
"""How much of the end of a log `tail_text` reads."""


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


@contextlib.contextmanager
def open_regular(path, name=None):
    """``path`` opened for reading in binary; a `ValueError` naming ``name`` (default: the
    path) if it is missing or not a regular file (opened without blocking, so that a FIFO
    cannot hang the reader)."""
    name = str(path) if name is None else name
    try:
        fd = os.open(path, os.O_RDONLY | os.O_NONBLOCK)
    except OSError as err:
        raise ValueError(f"{name} cannot be read: {err.strerror}.") from None
    with os.fdopen(fd, "rb") as file:
        if not stat.S_ISREG(os.fstat(fd).st_mode):
            raise ValueError(f"{name} is not a regular file.")
        yield file


def read_json(path, name=None, max_bytes=MAX_JSON_BYTES):
    """The JSON object in the file ``path`` (at most ``max_bytes``); a `ValueError` naming
    ``name`` (default: the path) if it is missing, unreadable, too large, too deeply nested,
    not JSON or not an object."""
    name = str(path) if name is None else name
    try:
        with open_regular(path, name) as file:
            data = file.read(max_bytes + 1)
    except OSError as err:
        raise ValueError(f"{name} cannot be read: {err.strerror}.") from None
    value = parse_json(data, name, max_bytes)
    if not isinstance(value, dict):
        raise ValueError(f"{name} holds {type(value).__name__}, not a JSON object.")
    return value


def read_jsonl(path):
    """The JSON objects of the lines of ``path``, in order (``[]`` if it cannot be read),
    skipping any line that is not one: torn by a crash, too long (`MAX_LINE_BYTES`), too
    deep. NaN and infinities are kept: a diverged loss is one."""
    objects = []
    for line in _lines(path):
        try:
            value = parse_json(line, str(path), MAX_LINE_BYTES, allow_nan=True)
        except ValueError:
            continue
        if isinstance(value, dict):
            objects.append(value)
    return objects


def _lines(path):
    """The lines of ``path`` of at most `MAX_LINE_BYTES`, as bytes (none if it cannot be read)."""
    with contextlib.suppress(OSError, ValueError), open_regular(path) as file:
        while line := file.readline(MAX_LINE_BYTES + 1):
            if len(line) <= MAX_LINE_BYTES:
                yield line
                continue
            while line and not line.endswith(b"\n"):  # the rest of an overlong line
                line = file.readline(MAX_LINE_BYTES)


def tail_text(path, lines):
    """The last ``lines`` lines of the text file ``path`` (from its last `MAX_TAIL_BYTES`),
    or ``""`` if it cannot be read."""
    try:
        with open_regular(path) as file:
            file.seek(max(0, os.fstat(file.fileno()).st_size - MAX_TAIL_BYTES))
            text = file.read(MAX_TAIL_BYTES).decode(errors="replace")
    except (OSError, ValueError):
        return ""
    return "\n".join(text.splitlines()[-lines:])


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
