"""Field checks: the one home of the message that names a field, its value and what is allowed.

Every input of the library (architecture fields, recipes, data arguments, layer arguments, the
command line, the explorer's links) is checked with these, so a wrong value reads the same
wherever it comes from.

Example:
>>> check_int("blocks", 3, maximum=10)
3
>>> check_int("blocks", 0)
Traceback (most recent call last):
...
ValueError: blocks=0 is not allowed: an integer >= 1.
>>> check_number("momentum", 1.5, 0, 1, high_open=True)
Traceback (most recent call last):
...
ValueError: momentum=1.5 is not allowed: a finite number in [0, 1).
"""

import math
import numbers

MAX_SEED = 2**31 - 1
"""The largest seed: every backend's random generators (and NumPy's) take it."""


def fail(name, value, allowed):
    """Raises ``ValueError("<name>=<value> is not allowed: <allowed>.")``."""
    text = repr(value)
    if len(text) > 200:  # a hostile value must not flood the message
        text = text[:200] + "..."
    raise ValueError(f"{name}={text} is not allowed: {allowed}.")


def is_int(value):
    """Whether ``value`` is an integer (NumPy's too), not a bool."""
    return isinstance(value, numbers.Integral) and not isinstance(value, bool)


def check_int(name, value, minimum=1, maximum=None, optional=False):
    """``value`` as an ``int`` if it is an integer in [minimum, maximum] (or None when
    ``optional``), else a `ValueError`."""
    if optional and value is None:
        return None
    if not is_int(value) or value < minimum or (maximum is not None and value > maximum):
        allowed = f"an integer >= {minimum}" if maximum is None else \
            f"an integer in [{minimum}, {maximum:_}]".replace("_", ",")
        fail(name, value, allowed + (" or None" if optional else ""))
    return int(value)


def check_number(name, value, low=-math.inf, high=math.inf, low_open=False, high_open=False):
    """``value`` as a ``float`` if it is a finite real number in the interval, else a
    `ValueError`."""
    ok = isinstance(value, numbers.Real) and not isinstance(value, bool) and math.isfinite(value)
    ok = ok and (value > low if low_open else value >= low)
    ok = ok and (value < high if high_open else value <= high)
    if not ok:
        fail(name, value, f"a finite number in {'(' if low_open or low == -math.inf else '['}"
                          f"{low}, {high}{')' if high_open or high == math.inf else ']'}")
    return float(value)


def check_choice(name, value, choices):
    """``value`` if it is one of ``choices``, else a `ValueError` listing them."""
    try:
        if value in choices:
            return value
    except TypeError:  # an unhashable value, e.g. a list from JSON
        pass
    fail(name, value, f"one of {tuple(choices)}")


def check_bool(name, value):
    """``value`` if it is ``True`` or ``False``, else a `ValueError`."""
    if not isinstance(value, bool):
        fail(name, value, "True or False")
    return value


def check_seed(name, value, optional=False):
    """A seed: an integer in [0, `MAX_SEED`] (or None when ``optional``)."""
    return check_int(name, value, 0, MAX_SEED, optional=optional)


def check_probability(name, value):
    """``value`` as a float; raises a `ValueError` unless it is a number in (0, 1]."""
    return check_number(name, value, 0.0, 1.0, low_open=True)
