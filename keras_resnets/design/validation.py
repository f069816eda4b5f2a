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
>>> parse_json('{"stages": [1, oops]}', "arch.json")
Traceback (most recent call last):
...
ValueError: arch.json is not valid JSON: Expecting value (line 1 column 16).
"""

import json
import math
import numbers
import re

MAX_SEED = 2**31 - 1
"""The largest seed: every backend's random generators (and NumPy's) take it."""
MAX_JSON_BYTES = 2**20
"""The largest JSON text read (1 MiB): an architecture, a run's config or status is a few KiB."""
MAX_JSON_DEPTH = 32
"""The deepest nesting of JSON read: a run's config nests 4 deep. Python's parser recurses
once per level and fails past about a thousand."""
_JSON_TOKENS = re.compile(r'"(?:[^"\\]|\\.)*"|[\[\]{}]', re.DOTALL)
"""A JSON string (skipped whole, brackets in it are text) or a bracket."""


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


def parse_json(text, name, max_bytes=MAX_JSON_BYTES, allow_nan=False):
    """The JSON value of ``text`` (a str, or UTF-8 bytes), read within bounds: at most
    ``max_bytes`` and `MAX_JSON_DEPTH` levels (checked before parsing, without recursion),
    numbers finite unless ``allow_nan``. Anything else is a `ValueError` naming ``name`` (a
    file, an option) and, for a syntax error, the line and column."""
    if not isinstance(text, (str, bytes, bytearray)):
        fail(name, text, "JSON text (a str or bytes)")
    if len(text) > max_bytes:
        raise ValueError(f"{name} is not allowed: {len(text):,} bytes, more than the "
                         f"{max_bytes:,} a JSON file may have here.")
    if not isinstance(text, str):
        try:
            text = bytes(text).decode("utf-8")
        except UnicodeDecodeError as err:
            raise ValueError(f"{name} is not UTF-8 text: byte {err.start} is "
                             f"{bytes(text)[err.start:err.start + 1]!r}.") from None
    _check_depth(text, name)
    try:
        return json.loads(text, parse_constant=None if allow_nan else _refuse_constant,
                          parse_float=float if allow_nan else _finite_float, parse_int=_short_int)
    except json.JSONDecodeError as err:
        raise ValueError(f"{name} is not valid JSON: {err.msg} (line {err.lineno} column "
                         f"{err.colno}).") from None
    except ValueError as err:  # from the parsers of numbers below
        raise ValueError(f"{name} is not valid JSON here: {err}.") from None


def _check_depth(text, name):
    depth = 0
    for token in _JSON_TOKENS.finditer(text):
        bracket = token.group()
        if bracket in "[{":
            depth += 1
            if depth > MAX_JSON_DEPTH:
                line = text.count("\n", 0, token.start()) + 1
                column = token.start() - text.rfind("\n", 0, token.start())
                raise ValueError(f"{name} is not allowed: it nests deeper than {MAX_JSON_DEPTH} "
                                 f"levels (line {line} column {column}).")
        elif bracket in "]}":
            depth -= 1


def _short_int(token):
    if len(token) > 100:  # Python converts up to 4,300 digits, slowly; no field needs 100
        raise ValueError(f"{token[:20]}... ({len(token):,} digits) is too long a number")
    return int(token)


def _refuse_constant(token):
    raise ValueError(f"{token} is not a finite number")


def _finite_float(token):
    value = float(token)
    if not math.isfinite(value):
        raise ValueError(f"{token} is not a finite number")
    return value
