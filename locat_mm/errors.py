"""The errors locat_mm raises for arguments it cannot use (plain Python: the torch-only layers
raise them too).

Upstream's classes refuse bad values with ``assert`` (``AssertionError``) and wrong types with
``TypeError`` or ``assert``; these errors are catchable both ways, and keep a message that says
what to change.
"""


class ArgumentError(ValueError, AssertionError):
    """An argument (or input) with a value that cannot be used: a ``ValueError`` that
    upstream's ``pytest.raises(AssertionError)`` also catches."""


class ArgumentTypeError(TypeError, AssertionError):
    """An argument of a type that cannot be used: a ``TypeError`` (as mmseg raises) that is
    also an ``AssertionError`` (as mmpretrain asserts)."""
