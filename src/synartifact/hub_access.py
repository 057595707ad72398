"""Fail fast when a Hub id cannot be fetched: the one check every loader of Hub ids runs first.

Without ``HF_HUB_OFFLINE``, ``from_pretrained("org/name")`` on a machine that cannot reach the Hub retries each file
for minutes before it fails. :func:`require_hub` asks the Hub once, with a short timeout
(``SYNARTIFACT_HUB_TIMEOUT`` seconds, default :data:`DEFAULT_TIMEOUT`), and raises :class:`HubUnreachableError`
("cannot reach the Hub to fetch org/name; pass a local folder or set HF_HUB_OFFLINE=1 to use the cache") when it
does not answer. Local folders and offline mode (``HF_HUB_OFFLINE=1``, where the cache answers) are not checked.
"""

from __future__ import annotations

import logging
import os
import time
import urllib.error
import urllib.request

from synartifact.utils import is_local_path

__all__ = ["DEFAULT_TIMEOUT", "ENV_TIMEOUT", "HubUnreachableError", "hub_endpoint", "hub_offline", "require_hub"]

logger = logging.getLogger(__name__)

ENV_TIMEOUT = "SYNARTIFACT_HUB_TIMEOUT"
DEFAULT_TIMEOUT = 5.0
_TRUE = {"1", "on", "yes", "true"}
_REACHED: dict[str, float] = {}  # endpoint -> when it last answered (asked again after _REACHED_TTL seconds)
_REACHED_TTL = 300.0


class HubUnreachableError(FileNotFoundError):
    """A Hub id was given but the Hub does not answer (a ``FileNotFoundError``: the model cannot be found, and the
    command-line tool reports it as bad input, exit code 2, like a missing folder)."""


def hub_offline() -> bool:
    """Whether Hugging Face offline mode is on (``HF_HUB_OFFLINE``, or ``TRANSFORMERS_OFFLINE`` as
    ``huggingface_hub`` reads it, now or when it was imported)."""
    flag = os.environ.get("HF_HUB_OFFLINE") or os.environ.get("TRANSFORMERS_OFFLINE") or ""
    if flag.strip().lower() in _TRUE:
        return True
    try:
        from huggingface_hub import constants
    except ImportError:  # pragma: no cover - huggingface_hub is a dependency
        return False
    return bool(getattr(constants, "HF_HUB_OFFLINE", False))


def hub_endpoint() -> str:
    """The Hub's address: ``HF_ENDPOINT``, else ``huggingface_hub``'s default."""
    endpoint = os.environ.get("HF_ENDPOINT", "").strip()
    if not endpoint:
        from huggingface_hub import constants

        endpoint = constants.ENDPOINT
    return endpoint.rstrip("/")


def _timeout() -> float:
    text = os.environ.get(ENV_TIMEOUT, "").strip()
    if not text:
        return DEFAULT_TIMEOUT
    try:
        value = float(text)
    except ValueError:
        raise ValueError(f"{ENV_TIMEOUT}={text!r} is not a number of seconds (e.g. 5).") from None
    if not value > 0:
        raise ValueError(f"{ENV_TIMEOUT}={text!r} must be a positive number of seconds.")
    return value


def _probe(endpoint: str, timeout: float) -> str | None:
    """``None`` when the endpoint answers HTTP (any status), else why not. Proxies come from the environment."""
    request = urllib.request.Request(endpoint + "/api/whoami-v2", method="HEAD")
    try:
        with urllib.request.urlopen(request, timeout=timeout):
            return None
    except urllib.error.HTTPError:  # 401, 404, ...: the Hub answered
        return None
    except urllib.error.URLError as err:
        return str(err.reason)
    except (OSError, ValueError) as err:  # a timeout, a reset connection, a malformed HF_ENDPOINT
        return f"{type(err).__name__}: {err}" if str(err) else type(err).__name__


def require_hub(name: str | os.PathLike, what: str = "model") -> None:
    """Raise :class:`HubUnreachableError` when ``name`` is a Hub id and the Hub does not answer within the timeout.

    Does nothing for a local folder (:func:`~synartifact.utils.is_local_path`) or in offline mode. Call it before
    any ``from_pretrained`` / ``hf_hub_download`` of a name that may be a Hub id.
    """
    text = os.fspath(name)
    if is_local_path(text) or hub_offline():
        return
    endpoint = hub_endpoint()
    if time.monotonic() - _REACHED.get(endpoint, -_REACHED_TTL) < _REACHED_TTL:
        return
    timeout = _timeout()
    reason = _probe(endpoint, timeout)
    if reason is None:
        _REACHED[endpoint] = time.monotonic()
        return
    logger.info("Hub %s unreachable within %.1f s: %s", endpoint, timeout, reason)
    raise HubUnreachableError(
        f"cannot reach the Hub ({endpoint}: {reason}) to fetch the {what} {text}; pass a local folder or set "
        f"HF_HUB_OFFLINE=1 to use the cache (on a slow network raise {ENV_TIMEOUT}, now {timeout:g} s)."
    )
