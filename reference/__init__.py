"""MXNet Gluon versions of the chapter's five networks, and a bridge that copies parameters to and from minicnn.

The differential tests (`pytest -m reference`) use them as the judge. MXNet 1.9.1 needs numpy 1.23.x, so in
an environment with numpy 2.x it cannot be imported; `load_mxnet()` reports that instead of raising, and
the tests skip with `MXNET_SKIP_REASON`.
"""

from __future__ import annotations

MXNET_SKIP_REASON = "mxnet not importable (needs numpy 1.23.x; this is the numpy 2.x environment)"


def load_mxnet():
    """The `mxnet` module, or None where it cannot be imported.

    Any exception counts, not only ImportError: under numpy 2.x an installed mxnet 1.9.1 fails while
    initialising (AttributeError on removed numpy aliases, or a binary-incompatibility error).
    """
    import warnings

    try:
        with warnings.catch_warnings():  # mxnet 1.9.1 touches numpy aliases deprecated since numpy 1.20
            warnings.simplefilter("ignore", DeprecationWarning)
            import mxnet
    except Exception:  # not only ImportError: see the docstring
        return None
    return mxnet
