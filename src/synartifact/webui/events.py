"""What wraps the Spaces' event functions: errors told as one sentence on the page (:func:`user_errors`) and a
ZeroGPU attachment where the ``spaces`` package is present (:func:`gpu`)."""

from __future__ import annotations

import functools
import logging
from collections.abc import Callable

import gradio as gr

__all__ = ["gpu", "user_errors"]

logger = logging.getLogger(__name__)


def user_errors(fn: Callable) -> Callable:
    """Wrap an event function: ``ValueError`` becomes a ``gr.Error`` with its message, anything else a short
    apology (logged with its traceback on the server, never shown on the page)."""

    @functools.wraps(fn)
    def wrapper(*args, **kwargs):
        try:
            return fn(*args, **kwargs)
        except gr.Error:
            raise
        except (ValueError, FileNotFoundError) as err:
            raise gr.Error(str(err)) from None
        except Exception:  # noqa: BLE001 - the page shows a sentence, the log keeps the traceback
            logger.exception("event %s failed", getattr(fn, "__name__", fn))
            raise gr.Error("Something went wrong while running the model; please try again.") from None

    return wrapper


def gpu(fn: Callable | None = None, **kwargs) -> Callable:
    """``spaces.GPU`` (ZeroGPU: a GPU is attached for the call) where the ``spaces`` package is installed,
    otherwise the function unchanged. Usable as ``@gpu`` or ``@gpu(duration=60)``."""
    try:
        import spaces  # type: ignore[import-not-found]

        decorator = spaces.GPU(**kwargs) if kwargs else spaces.GPU
    except Exception:  # noqa: BLE001 - no spaces package (or not on a Space): run as is
        decorator = None
    if fn is None:
        return (lambda f: decorator(f)) if decorator is not None else (lambda f: f)
    return decorator(fn) if decorator is not None else fn
