"""Training on PyTorch across processes: DistributedDataParallel around the Keras model.

Keras' ``fit`` on PyTorch trains one process; as in Keras' guide "Multi-GPU distributed
training with PyTorch", the model is wrapped in ``DistributedDataParallel`` and trained by a
loop of its own. `fit_epoch` is that loop, shaped like one epoch of ``model.fit``: the
compiled loss, optimizer and metrics of the model, and the Keras callbacks (the run's
recorder) with the same events and logs, averaged over the processes. DDP averages the
gradients; every process applies the same update.
"""

import keras


def wrap(model):
    """``model`` (a Keras model, a ``torch.nn.Module`` on PyTorch) in DistributedDataParallel;
    its parameters start from process 0's."""
    import torch
    from torch.nn.parallel import DistributedDataParallel

    device = [torch.cuda.current_device()] if torch.cuda.is_available() else None
    return DistributedDataParallel(model, device_ids=device)


def mean_over_processes(logs):
    """``logs`` (names to numbers) averaged over the processes."""
    import torch
    import torch.distributed as dist

    names = sorted(logs)
    values = torch.tensor([float(logs[name]) for name in names], dtype=torch.float64)
    dist.all_reduce(values)
    return {name: float(v) / dist.get_world_size() for name, v in zip(names, values)}


def fit_epoch(model, ddp, data, epoch, callbacks):
    """Trains ``model`` through ``ddp`` for epoch ``epoch`` on this process' share of
    ``data`` and evaluates its share of the held-out images, calling ``callbacks`` as
    ``model.fit(initial_epoch=epoch, epochs=epoch + 1)`` would."""
    callbacks = keras.callbacks.CallbackList(callbacks, model=model)
    callbacks.on_train_begin()
    callbacks.on_epoch_begin(epoch)
    model.reset_metrics()
    loss_mean = keras.metrics.Mean()
    logs = {}
    for step, (x, y) in enumerate(data.train.as_numpy_iterator()):
        callbacks.on_train_batch_begin(step)
        loss = _train_step(model, ddp, keras.ops.convert_to_tensor(x),
                           keras.ops.convert_to_tensor(y), loss_mean)
        logs = mean_over_processes({**loss, "loss": loss_mean.result()})
        callbacks.on_train_batch_end(step, logs)
    if data.validation is not None:
        held_out = model.evaluate(data.validation, verbose=0, return_dict=True)
        logs.update({f"val_{k}": v for k, v in mean_over_processes(held_out).items()})
    callbacks.on_epoch_end(epoch, logs)
    callbacks.on_train_end(logs)
    return logs


def _train_step(model, ddp, x, y, loss_mean):
    """One step as Keras' PyTorch ``train_step`` takes it, the forward pass through ``ddp``
    (whose backward pass averages the gradients over the processes); the metrics' logs."""
    import torch

    y_pred = ddp(x, training=True)
    model.zero_grad()
    loss = model.compute_loss(x=x, y=y, y_pred=y_pred, training=True)
    loss_mean.update_state(loss, sample_weight=x.shape[0])
    model.optimizer.scale_loss(loss).backward()
    weights = model.trainable_weights[:]
    with torch.no_grad():
        model.optimizer.apply([v.value.grad for v in weights], weights)
    return {k: v for k, v in model.compute_metrics(x, y, y_pred, None).items() if k != "loss"}
