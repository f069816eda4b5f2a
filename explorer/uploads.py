"""Zips of image folders uploaded on the Train page, extracted safely into the run store (no Streamlit).

A zip is extracted once, into ``<runs>/.uploads/<its SHA-256, 16 hex digits>/``; the same zip
uploaded again reuses that folder. Nothing is written outside it: a member whose name is
absolute or climbs out (``..``) refuses the zip, and so do more files or bytes than the limits
(`MAX_FILES`, `MAX_BYTES`), read from the zip's directory before anything is written (zipfile
stops each member at its declared size and fails one whose data says otherwise). macOS's
``__MACOSX`` metadata is left out. The image folder is the extracted folder, or the single
folder it holds when that holds the class folders (a zip of ``pets/`` with ``pets/cat/``).

Example:
>>> import io, tempfile, zipfile
>>> data = io.BytesIO()
>>> with zipfile.ZipFile(data, "w") as archive:
...     for name in ("pets/cat/1.png", "pets/dog/2.png", "__MACOSX/pets/._cat"):
...         archive.writestr(name, b"...")
>>> folder = extract_zip(data.getvalue(), tempfile.mkdtemp())
>>> folder.name, sorted(p.name for p in folder.iterdir()), folder.parent.parent.name
('pets', ['cat', 'dog'], '.uploads')
"""

from __future__ import annotations

import hashlib
import io
import shutil
import tempfile
import zipfile
import zlib
from pathlib import Path, PurePosixPath

UPLOADS = ".uploads"
MAX_ZIP_MB = 200
"""The largest zip the page takes, in MB (Streamlit's default upload limit)."""
MAX_BYTES = 2**30
"""The most bytes a zip may hold once extracted."""
MAX_FILES = 100_000
"""The most files a zip may hold."""
UNREADABLE = (zipfile.BadZipFile, zlib.error, EOFError, NotImplementedError, RuntimeError)
"""What zipfile raises for a damaged, encrypted or oddly compressed zip."""


def extract_zip(data: bytes, runs_root) -> Path:
    """The image folder of the zip ``data``, extracted into ``<runs_root>/.uploads/`` (once);
    a `ValueError` says, for the user, why the zip is refused."""
    target = Path(runs_root) / UPLOADS / hashlib.sha256(data).hexdigest()[:16]
    if not target.is_dir():
        try:
            with zipfile.ZipFile(io.BytesIO(data)) as archive:
                _extract(archive, target)
        except UNREADABLE as error:
            raise ValueError(f"it cannot be read as a zip ({error}).") from None
    return image_folder(target)


def _extract(archive: zipfile.ZipFile, target: Path) -> None:
    """Writes the files of ``archive`` into ``target``, whole or not at all: a folder there is a
    finished extraction."""
    members = [m for m in archive.infolist() if not m.is_dir() and member_parts(m.filename)[0] != "__MACOSX"]
    check_size(len(members), sum(m.file_size for m in members))
    target.parent.mkdir(parents=True, exist_ok=True)
    scratch = Path(tempfile.mkdtemp(prefix=".partial-", dir=target.parent))
    try:
        for member in members:
            path = scratch.joinpath(*member_parts(member.filename))
            path.parent.mkdir(parents=True, exist_ok=True)
            with archive.open(member) as source, open(path, "wb") as sink:
                shutil.copyfileobj(source, sink)
        scratch.rename(target)
    except OSError:
        if not target.is_dir():  # else another session extracted the same zip meanwhile
            raise
    finally:
        shutil.rmtree(scratch, ignore_errors=True)


def member_parts(name: str) -> tuple[str, ...]:
    """The folders and file name of a zip member; a `ValueError` if it would leave its folder.

    >>> member_parts("pets/./cat/1.png")
    ('pets', 'cat', '1.png')
    >>> member_parts("pets/../../etc/passwd")
    Traceback (most recent call last):
    ...
    ValueError: it holds 'pets/../../etc/passwd', a path that leads out of its folder.
    """
    parts = PurePosixPath(name.replace("\\", "/")).parts  # Windows' separator too
    if not parts or parts[0] == "/" or ".." in parts:
        raise ValueError(f"it holds {name!r}, a path that leads out of its folder.")
    return parts


def check_size(files: int, size: int) -> None:
    """Raises a `ValueError` when a zip of ``files`` files and ``size`` bytes (extracted) is over
    the limits.

    >>> check_size(3, 2 * MAX_BYTES)
    Traceback (most recent call last):
    ...
    ValueError: it holds 2,048 MB once extracted, more than the 1,024 MB a zip may hold here:
    extract it yourself and choose "An image folder on this computer".
    """
    yourself = 'extract it yourself and choose "An image folder on this computer".'
    if files > MAX_FILES:
        raise ValueError(f"it holds {files:,} files, more than the {MAX_FILES:,} a zip may hold here: {yourself}")
    if size > MAX_BYTES:
        raise ValueError(f"it holds {size / 2**20:,.0f} MB once extracted, more than the {MAX_BYTES / 2**20:,.0f} "
                         f"MB a zip may hold here: {yourself}")


def image_folder(folder: Path) -> Path:
    """``folder``, or the one folder it holds (at any depth) when that holds folders itself."""
    entries = _visible(folder)
    if len(entries) == 1 and entries[0].is_dir() and any(p.is_dir() for p in _visible(entries[0])):
        return image_folder(entries[0])
    return folder


def _visible(folder: Path) -> list[Path]:
    return [p for p in folder.iterdir() if not p.name.startswith(".")]
