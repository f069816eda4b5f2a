"""What a process runs on: the environment a backend is imported with (`environment`: the
fastest CPU settings, the backend check, the share of the cores), the precision this
machine computes fastest in (`precision`) and the private Keras and PyTorch attributes the
package reads (`internals`, their one home).

Nothing here is imported with the package's modules but `environment`, which
``import keras_resnets`` reads before Keras."""
