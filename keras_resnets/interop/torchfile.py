"""Reads a state dict saved by ``torch.save`` (its zip format, torch >= 1.6) without torch.

The file is a zip archive: ``<root>/data.pkl`` pickles the dict, whose tensors refer to raw
little-endian storages ``<root>/data/<key>``. Only a dict of tensors is read: the unpickler
accepts nothing but the few names such a file uses, so loading runs no foreign code.

Example:
>>> import io, torch  # only to write the example's file
>>> buffer = io.BytesIO()
>>> torch.save({"w": torch.arange(3.0)}, buffer)
>>> _ = buffer.seek(0)
>>> load(buffer)
{'w': array([0., 1., 2.], dtype=float32)}
"""

import collections
import pickle
import zipfile

import numpy as np

_STORAGES = {
    "FloatStorage": "<f4", "DoubleStorage": "<f8", "HalfStorage": "<f2", "LongStorage": "<i8",
    "IntStorage": "<i4", "ShortStorage": "<i2", "CharStorage": "i1", "ByteStorage": "u1",
    "BoolStorage": "?",
}


def _rebuild_tensor(storage, offset, size, stride, *_):
    itemsize = storage.dtype.itemsize
    view = np.lib.stride_tricks.as_strided(
        storage[offset:], shape=tuple(size), strides=tuple(s * itemsize for s in stride))
    return np.array(view)


def _rebuild_parameter(data, *_):
    return data


class _Unpickler(pickle.Unpickler):
    def __init__(self, file, archive, root):
        super().__init__(file)
        self._archive = archive
        self._root = root

    def find_class(self, module, name):
        if (module, name) == ("collections", "OrderedDict"):
            return collections.OrderedDict
        if (module, name) == ("torch._utils", "_rebuild_tensor_v2"):
            return _rebuild_tensor
        if (module, name) == ("torch._utils", "_rebuild_parameter"):
            return _rebuild_parameter
        if module == "torch" and name in _STORAGES:
            return np.dtype(_STORAGES[name])
        raise pickle.UnpicklingError(
            f"{module}.{name} is not allowed in a state dict read without torch.")

    def persistent_load(self, pid):
        kind, dtype, key, _location, _numel = pid
        if kind != "storage":
            raise pickle.UnpicklingError(f"persistent id {kind!r} is not a storage.")
        return np.frombuffer(self._archive.read(f"{self._root}/data/{key}"), dtype=dtype)


def load(file):
    """The ``{name: numpy array}`` dict in a torch zip file (a path or a binary file object).

    Raises:
        ValueError: the file is not torch's zip format (e.g. torch's legacy format before
            1.6); the message says to read it with torch.
    """
    if not zipfile.is_zipfile(file):
        raise ValueError(f"{file!r} is not in torch's zip format; install torch to read it "
                         "(torch.load), or re-save it with a recent torch.")
    with zipfile.ZipFile(file) as archive:
        pickles = [n for n in archive.namelist() if n.endswith("/data.pkl")]
        if not pickles:
            raise ValueError(f"{file!r} has no data.pkl: not a file written by torch.save.")
        root = pickles[0].rsplit("/", 1)[0]
        with archive.open(pickles[0]) as data:
            return dict(_Unpickler(data, archive, root).load())
