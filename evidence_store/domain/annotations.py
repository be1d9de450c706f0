"""Markers and tags on clips (issue 19 item 3): a custodian's or investigator's note at a moment of a
clip, and short labels to find clips again. They describe footage; they never change it (R3), and
every one is audited (R17) and travels with the clip into an export's provenance note (R12).

Pure rules: what a tag or a marker may be. Storage and audit are in `evidence_store.annotations`.
"""

from __future__ import annotations

import unicodedata
from dataclasses import dataclass

from evidence_store.errors import InputError

MAX_TAG_CHARS = 40
MAX_NOTE_CHARS = 2000
# a player's clock and the probed duration may differ by a frame or two at the very end
END_SLACK_S = 0.5


def normalise_tag(text: str) -> str:
    """A tag as stored (R17: one spelling per label, so a search finds every clip carrying it):
    Unicode NFKC (full-width letters and digits become plain ones), surrounding blanks dropped, inner
    runs of blanks one space, letters lower-cased. Refuses an empty tag, control characters, commas
    (the lists of tags are written with them) and tags longer than `MAX_TAG_CHARS`."""
    tag = " ".join(unicodedata.normalize("NFKC", text).split()).lower()
    if not tag:
        raise InputError("a tag cannot be empty")
    if len(tag) > MAX_TAG_CHARS:
        raise InputError(f"a tag is at most {MAX_TAG_CHARS} characters")
    if any(unicodedata.category(ch).startswith("C") for ch in tag) or "," in tag:
        raise InputError("a tag cannot hold commas or control characters")
    return tag


@dataclass(frozen=True)
class MarkerInput:
    offset_s: float  # seconds from the clip's first frame
    note: str


def check_marker(offset_s: float, note: str, duration_s: float | None) -> MarkerInput:
    """A marker as stored (R17, R12): a moment inside the clip (0 up to its duration, when known) and a
    note of 1 to `MAX_NOTE_CHARS` characters, blanks around it dropped."""
    text = note.strip()
    if not text:
        raise InputError("a marker needs a note")
    if len(text) > MAX_NOTE_CHARS:
        raise InputError(f"a marker's note is at most {MAX_NOTE_CHARS} characters")
    if not offset_s >= 0:  # also refuses NaN
        raise InputError("a marker's time is a moment of the clip, from 0 s on")
    if duration_s is not None and offset_s > duration_s + END_SLACK_S:
        raise InputError(f"the clip lasts {duration_s:.1f} s: a marker at {offset_s:.1f} s is after its end")
    return MarkerInput(round(float(offset_s), 3), text)
