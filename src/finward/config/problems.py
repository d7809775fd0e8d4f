"""Configuration problems: locations, formatting, and keeping secrets out of them.

Every problem the loader reports reads ``<location>: <message> (<hint>)``, where the
location is a JSON-path-like address into the YAML document (``apis[0].upstream``),
so a user can find the line without a stack trace.
"""

from __future__ import annotations

import re
from collections.abc import Iterable
from dataclasses import dataclass

PathItem = str | int
Location = tuple[PathItem, ...]

# A key that can be written bare in a location; anything else (dots, spaces) is quoted
# so `upstreams['my.bank'].url` cannot be misread as three nested keys.
_BARE_KEY = re.compile(r"[A-Za-z_][A-Za-z0-9_-]{0,80}")

# Setting names whose value is a secret, or could be one by mistake (a PEM key pasted
# into `key:` instead of a path). Matched against the parts of a snake_case name.
_SECRET_NAME_PARTS = frozenset(
    {
        "token",
        "secret",
        "secrets",
        "password",
        "passwd",
        "passphrase",
        "credential",
        "credentials",
        "key",
    }
)
# Named with one of those words but holding no secret: modes, formats, key ids and
# algorithms of the auth sections. Counting `token_format: opaque` as a secret would
# hide it from problems and scrub the word "opaque" out of every message.
_NOT_SECRET_NAMES = frozenset(
    {
        "token_format",
        "token_types",
        "token_cache_entries",
        "forward_token",
        "key_id",
        "private_key_alg",
    }
)

# Shown instead of a secret everywhere (problems, `finward config show`).
MASK = "***"

# A value shorter than this is not scrubbed from messages by substring replacement:
# replacing "1" or "on" everywhere would garble messages without hiding anything useful.
_MIN_SCRUB_LENGTH = 4


def format_location(location: Location) -> str:
    """Render ``("apis", 0, "upstream")`` as ``apis[0].upstream``; ``()`` is ``(root)``."""
    text = ""
    for item in location:
        if isinstance(item, int):
            text += f"[{item}]"
        elif _BARE_KEY.fullmatch(item):
            text += f".{item}" if text else item
        else:
            text += f"[{shorten(item)!r}]"
    return text or "(root)"


def shorten(text: str, limit: int = 60) -> str:
    """Cut a user-supplied string so one problem stays one readable line."""
    text = text.replace("\n", "\\n")
    return text if len(text) <= limit else text[: limit - 1] + "…"


def is_secret_name(name: PathItem) -> bool:
    """True for settings such as ``token``, ``client_key`` or ``db_password``."""
    if not isinstance(name, str):
        return False
    return any(part in _SECRET_NAME_PARTS for part in name.lower().split("_"))


def is_secret_location(location: Location) -> bool:
    """True if the setting at ``location`` is named like a secret.

    Only the setting's own name counts (the last key; list indexes skipped), not the
    names of its parents: an upstream called ``token_service`` is not itself a secret.
    """
    names = [item for item in location if isinstance(item, str)]
    if not names or names[-1] in _NOT_SECRET_NAMES or _is_access_rule_token(location):
        return False
    if _is_rate_limit_key(location):
        return False
    return is_secret_name(names[-1])


def _is_rate_limit_key(location: Location) -> bool:
    """rate_limits.limits[i].key (and its items): key parts such as client_id or
    header:X-Api-Key, not a secret."""
    return location[:2] == ("rate_limits", "limits") and location[3:4] == ("key",)


def _is_access_rule_token(location: Location) -> bool:
    """apis[i].auth.token and the same under tags.<tag> or operations.<op>: a mode
    (required, optional, spec, off), not a secret."""
    if location[:1] != ("apis",) or location[2:3] != ("auth",) or location[-1:] != ("token",):
        return False
    return len(location) == 4 or (len(location) == 6 and location[3] in ("tags", "operations"))


def location_sort_key(location: Location) -> tuple[tuple[int, int, str], ...]:
    """Order locations as a reader expects: apis[2] before apis[10], keys alphabetically."""
    return tuple((0, item, "") if isinstance(item, int) else (1, 0, item) for item in location)


@dataclass(frozen=True, slots=True)
class Problem:
    """One thing wrong with the configuration.

    ``label`` replaces the formatted location for problems about the file itself
    (not found, too large, not YAML), which have no place inside the document.
    """

    location: Location
    message: str
    hint: str | None = None
    label: str | None = None

    def format(self) -> str:
        where = self.label if self.label is not None else format_location(self.location)
        text = f"{where}: {self.message}"
        return f"{text} ({self.hint})" if self.hint else text


def is_under(location: Location, prefixes: Iterable[Location]) -> bool:
    """True if ``location`` is one of ``prefixes`` or inside one of them."""
    return any(location[: len(prefix)] == prefix for prefix in prefixes)


def scrub(messages: Iterable[str], secrets: Iterable[str]) -> list[str]:
    """Replace every known secret value in ``messages`` with ``***``.

    The formatters already avoid echoing secret locations; this is the second line of
    defence for a secret that ends up somewhere unexpected (a token pasted into the
    wrong key, an env value reused in a URL).
    """
    # Longest first, so a secret containing a shorter one is masked whole.
    values = sorted({s for s in secrets if len(s) >= _MIN_SCRUB_LENGTH}, key=len, reverse=True)
    cleaned = []
    for message in messages:
        for value in values:
            message = message.replace(value, MASK)
        cleaned.append(message)
    return cleaned
