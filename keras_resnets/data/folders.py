"""Image folders: a directory with one subfolder per class, as Keras'
``image_dataset_from_directory`` and torchvision's ``ImageFolder`` read it.

Classes are the subfolders' names, sorted; a class's images are its JPEG and PNG files, in
its subfolders too, sorted by path. `scan` lists them and checks every file before anything
trains, without decoding pixels: Pillow reads its header (format, size, colour mode) and its
last kilobyte must hold the format's end marker (else Pillow decodes it), so that non-images,
empty and truncated files are refused up front with their names. (Skipping bad files while training would change the
number of steps of an epoch, and with it what a resumed run and its seed mean.) Files with
other extensions are skipped with a warning; hidden files and folders are ignored.

The scan is kept per process, keyed by the folders' modification times, so the pipeline of
every epoch reuses it.

Example:
>>> import tempfile, numpy as np, PIL.Image
>>> root = Path(tempfile.mkdtemp())
>>> for name in ("cat", "dog"):
...     (root / name).mkdir()
...     PIL.Image.fromarray(np.zeros((8, 6, 3), "uint8")).save(root / name / "a.png")
>>> folder = scan(root)
>>> folder.class_names, folder.image_shape, [Path(f).parent.name for f in folder.files]
(('cat', 'dog'), (8, 6, 3), ['cat', 'dog'])
"""

from __future__ import annotations

import functools
import os
import warnings
from dataclasses import dataclass
from pathlib import Path

from keras_resnets.design.validation import fail

EXTENSIONS = (".jpeg", ".jpg", ".png")
_END_MARKERS = {"JPEG": b"\xff\xd9", "MPO": b"\xff\xd9", "PNG": b"IEND"}  # MPO: cameras' JPEG
_TAIL = 1024
_SHOWN = 5


@dataclass(frozen=True)
class Folder:
    """What `scan` found in an image folder.

    Attributes:
        root: The folder, absolute.
        class_names: The subfolders' names, sorted; a label is an index into them.
        files: Every image's absolute path, by class, then by path.
        labels: Each file's class index.
        image_shape: ``(height, width, channels)``; height and width are None when the images
            differ in size. Three channels unless every image is greyscale.
        sizes: How the sizes differ, naming two files, for messages; None if all agree.
    """

    root: str
    class_names: tuple[str, ...]
    files: tuple[str, ...]
    labels: tuple[int, ...]
    image_shape: tuple
    sizes: str | None = None


def is_folder(name) -> bool:
    """Whether ``name`` (a str or path) names an existing directory."""
    return isinstance(name, (str, os.PathLike)) and Path(name).expanduser().is_dir()


def scan(path, field: str = "dataset") -> Folder:
    """Lists and checks the images of the folder ``path``.

    Raises:
        ValueError: naming ``field`` when ``path`` is no directory, has fewer than two classes
            or a class without images, or holds files that are no readable JPEG or PNG.
    """
    root = Path(path).expanduser().resolve()
    if not root.is_dir():
        fail(field, str(path), "a dataset name or an existing folder")
    classes = sorted(p.name for p in root.iterdir() if p.is_dir() and not p.name.startswith("."))
    return _scan(str(root), field, tuple((c, _mtimes(root / c)) for c in classes))


def _mtimes(folder: Path) -> tuple[int, ...]:
    """The modification times of ``folder`` and its subfolders: they change when a file is
    added, removed or renamed."""
    return tuple(os.stat(d).st_mtime_ns for d, _, _ in _walk(folder))


def _walk(folder):
    for directory, subdirs, files in os.walk(folder, followlinks=True):
        subdirs[:] = sorted(d for d in subdirs if not d.startswith("."))
        yield directory, subdirs, sorted(f for f in files if not f.startswith("."))


@functools.lru_cache(maxsize=8)
def _scan(root: str, field: str, classes) -> Folder:
    names = tuple(name for name, _ in classes)
    if len(names) < 2:
        found = f"only the class {names[0]!r}" if names else "no class subfolders"
        fail(field, root, f"a folder with one subfolder of images per class, at least two "
                          f"(cats/1.jpg, dogs/2.png); it has {found}")
    files, labels, skipped = [], [], []
    for label, name in enumerate(names):
        found = _images(Path(root, name), skipped)
        if not found:
            fail(field, root, f"a folder whose class subfolders all hold JPEG or PNG images; "
                              f"{name!r} holds none (add images or remove it)")
        files += found
        labels += [label] * len(found)
    if skipped:
        warnings.warn(f"{field}={root!r}: skipped {len(skipped)} files that are not "
                      f"{'/'.join(EXTENSIONS)}: {_show(skipped, root)}", stacklevel=4)
    shape, sizes = _check_images(files, root, field)
    return Folder(root, names, tuple(files), tuple(labels), shape, sizes)


def _images(folder: Path, skipped: list) -> list[str]:
    """The image files under ``folder``, sorted; other files go to ``skipped``."""
    images = []
    for directory, _, files in _walk(folder):
        for file in files:
            is_image = file.lower().endswith(EXTENSIONS)
            (images if is_image else skipped).append(os.path.join(directory, file))
    return images


def _check_images(files, root, field):
    """The images' common shape (None for sizes that differ) and how sizes differ, or a
    `ValueError` naming the files that are not readable images."""
    image_module = _pillow()
    bad, sizes, all_grey = [], {}, True
    for file in files:
        try:
            size, grey = _header(file, image_module)
        except Exception as err:  # Pillow raises many types for a bad file
            bad.append(f"{os.path.relpath(file, root)} ({err})")
            continue
        sizes.setdefault(size, file)
        all_grey = all_grey and grey
    if bad:
        fail(field, root, f"a folder of readable JPEG and PNG images; {len(bad)} files are not "
                          f"(remove or re-save them): {'; '.join(bad[:_SHOWN])}"
                          + (", ..." if len(bad) > _SHOWN else ""))
    (width, height), *others = sizes
    channels = 1 if all_grey else 3
    if others:
        files = [os.path.relpath(sizes[size], root) for size in ((width, height), others[0])]
        return (None, None, channels), (f"{files[1]} is {others[0][0]}x{others[0][1]}, "
                                        f"{files[0]} {width}x{height}")
    return (height, width, channels), None


def _pillow():
    try:
        import PIL.Image
    except ImportError as err:
        raise ImportError("reading image folders needs Pillow: pip install pillow") from err
    return PIL.Image


def _header(file: str, image_module):
    """``((width, height), greyscale)`` of an image file, read from its header; raises for a
    file that is no complete JPEG or PNG. Only a file whose last kilobyte lacks the format's end
    marker is decoded, to tell a truncated file from one with data after its image (a phone's
    motion photo), which decoders read as they read the image alone."""
    with open(file, "rb") as f, image_module.open(f) as image:
        kind = image.format
        if kind not in _END_MARKERS:
            raise ValueError(f"a {kind} image, not JPEG or PNG")
        f.seek(max(0, os.fstat(f.fileno()).st_size - _TAIL))
        if _END_MARKERS[kind] not in f.read():
            try:
                image.load()
            except Exception as err:  # Pillow raises many types for a damaged image
                raise ValueError(f"a truncated or damaged {kind}: {err}") from err
        return image.size, image_module.getmodebase(image.mode) == "L"


def _show(files, root) -> str:
    shown = ", ".join(os.path.relpath(f, root) for f in files[:_SHOWN])
    return shown + (", ..." if len(files) > _SHOWN else "")
