"""The epoch loop: one ``fit`` call per epoch, the loop of `keras_resnets.training.train` and
of the experiments (`keras_resnets.experiments`).

A call per epoch lets each epoch read its own data: a run rebuilds its pipeline with the
epoch's order, so that a resumed run sees the order an uninterrupted one would have.
Subscribers are Keras callbacks (the run's recorder and probe, an experiment's curve).

Example:
>>> import keras, numpy as np
>>> model = keras.Sequential([keras.Input((2,)), keras.layers.Dense(1)])
>>> model.compile(optimizer="sgd", loss="mse")
>>> x, y = np.zeros((8, 2), "float32"), np.ones((8, 1), "float32")
>>> seen = keras.callbacks.LambdaCallback(on_epoch_end=lambda epoch, logs: print(epoch))
>>> fit_epochs(model, 3, lambda epoch: {"x": x, "y": y}, initial_epoch=1, callbacks=[seen])
1
2
"""


def fit_epochs(model, epochs, inputs, *, initial_epoch=0, callbacks=(), **fit_args):
    """Trains a compiled ``model`` from epoch ``initial_epoch`` to ``epochs``, silently.

    Args:
        model: a compiled `keras.Model`.
        epochs: the epoch to stop at (exclusive, counted from 0).
        inputs: ``inputs(epoch)`` -> that epoch's ``fit`` arguments (``x``, ``y``,
            ``validation_data``).
        initial_epoch: the first epoch to train.
        callbacks: Keras callbacks, for every epoch.
        **fit_args: further ``fit`` arguments for every epoch (``batch_size``, ``shuffle``).
    """
    for epoch in range(initial_epoch, epochs):
        model.fit(**inputs(epoch), initial_epoch=epoch, epochs=epoch + 1,
                  callbacks=list(callbacks), verbose=0, **fit_args)
