"""Ctrl-C and SIGTERM: the one signal handler of the package (`Interrupts`), which stops
training between two steps (`deferred_interrupts`) or a command at once (`stop_on_sigterm`).

Python raises `KeyboardInterrupt` wherever the main thread happens to be when a signal comes.
If that is inside a ``tf.data`` iterator's call, closing the iterator can wait forever for one
of its threads: a training process sent SIGTERM on JAX then never exits. `deferred_interrupts`
turns the first SIGINT or SIGTERM into a request that the trainer honours before its next step
(`Interrupts.check`); a second signal raises at once, for a user who will not wait.

Example: a loop that checks before each step runs the step it was in to its end.
>>> import os, signal
>>> steps = []
>>> try:
...     with deferred_interrupts() as interrupts:
...         for step in range(3):
...             interrupts.check()
...             steps.append(step)
...             os.kill(os.getpid(), signal.SIGTERM)  # noted, not raised here
... except KeyboardInterrupt as stop:
...     print(f"{stop}; steps run: {steps}")
signal 15; steps run: [0]

A command that SIGTERM stops at once, as Ctrl-C does:
>>> try:
...     with stop_on_sigterm():
...         os.kill(os.getpid(), signal.SIGTERM)
... except KeyboardInterrupt as stop:
...     print(stop)
signal 15
"""

import contextlib
import signal
import threading

SIGNALS = (signal.SIGINT, signal.SIGTERM)


class Interrupts:
    """The signals received: ``requested`` holds the first one's number until `check` honours
    it (None when there is none). Unless ``defer``, a signal raises ``error`` at once."""

    def __init__(self, defer=True, error=KeyboardInterrupt):
        self.requested = None
        self.defer, self.error = defer, error

    def check(self):
        """Raises ``error`` if a signal came: call it where stopping is safe."""
        signum, self.requested = self.requested, None
        if signum is not None:
            raise self.error(f"signal {signum}")

    def _receive(self, signum, frame):
        if not self.defer:
            raise self.error(f"signal {signum}")
        if self.requested is not None:
            raise self.error(f"signal {signum}, a second time")
        self.requested = signum


@contextlib.contextmanager
def _handling(interrupts, signums):
    """``interrupts`` receives ``signums`` in the block; the previous handlers come back after.
    Outside the main thread, which receives no signals, it changes nothing."""
    if threading.current_thread() is not threading.main_thread():
        yield interrupts
        return
    previous = {signum: signal.signal(signum, interrupts._receive) for signum in signums}
    try:
        yield interrupts
    finally:
        for signum, handler in previous.items():  # None: a handler not set from Python
            signal.signal(signum, signal.SIG_DFL if handler is None else handler)


@contextlib.contextmanager
def deferred_interrupts():
    """Defers SIGINT and SIGTERM in its block to the next `Interrupts.check` (see the module).

    A signal that no check honoured stops the program when the block ends, as it would have
    without the block.
    """
    with _handling(Interrupts(), SIGNALS) as interrupts:
        yield interrupts
    interrupts.check()


def stop_on_sigterm(error=KeyboardInterrupt):
    """A context in which SIGTERM raises ``error`` at once (the command line's Ctrl-C;
    the experiment worker's cancel)."""
    return _handling(Interrupts(defer=False, error=error), (signal.SIGTERM,))
