"""Runs: one directory per training run, written so that a crash never corrupts it (`store`:
its files, locks and readers; `files`: atomic writes and the one bounded reader; `processes`:
who is alive), what its files hold, typed and range-checked (`records`, `status`), and the
two trained runs shipped with the package (`pretrained`). Importable without Keras.

Example:
>>> import tempfile
>>> from keras_resnets.runs import RunStore
>>> RunStore(tempfile.mkdtemp()).list()
[]
"""

from keras_resnets.runs.store import Run, RunStore

__all__ = ["Run", "RunStore"]
