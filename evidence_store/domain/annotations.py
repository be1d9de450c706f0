"""Markers and tags on clips (issue 19 item 3): a custodian's or investigator's note at a moment of a
clip, and short labels to find clips again. They describe footage; they never change it (R3), and
every one is audited (R17) and travels with the clip into an export's provenance note (R12).

Pure rules: what a tag or a marker may be. Storage and audit are in `evidence_store.annotations`.
"""

from __future__ import annotations

from dataclasses import dataclass

from evidence_store.errors import ConflictError, InputError

MAX_TAG_CHARS = 40
MAX_NOTE_CHARS = 2000
# a player's clock and the probed duration may differ by a frame or two at the very end
END_SLACK_S = 0.5


# Full-width ASCII (as a Chinese input method types it) and the ideographic space, to their plain forms.
_FULL_WIDTH = {code: code - 0xFEE0 for code in range(0xFF01, 0xFF5F)} | {0x3000: 0x20}


def tag_key(text: str) -> str:
    """A tag in its one spelling (R17: a search finds every clip carrying it): full-width letters,
    digits and punctuation made plain, surrounding blanks dropped, inner runs of blanks one space,
    letters lower-cased. Does not judge whether it may be a tag (see `normalise_tag`)."""
    return " ".join(text.translate(_FULL_WIDTH).split()).lower()


def normalise_tag(text: str) -> str:
    """A tag as stored (`tag_key`). Refuses an empty tag, one longer than `MAX_TAG_CHARS` as typed,
    control characters and commas (full-width ones too: lists of tags are written with commas)."""
    if len(text.strip()) > MAX_TAG_CHARS:
        raise InputError(f"a tag is at most {MAX_TAG_CHARS} characters")
    tag = tag_key(text)
    if not tag:
        raise InputError("a tag cannot be empty")
    if "," in tag or any(ord(ch) < 0x20 or 0x7F <= ord(ch) <= 0x9F for ch in tag):
        raise InputError("a tag cannot hold commas or control characters")
    return tag


class MarkerOutsideClip(ConflictError):
    """A marker's time after the end of the clip it is put on (the clip's length decides, R3)."""


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
        raise MarkerOutsideClip(
            f"the clip lasts {duration_s:.1f} s: a marker at {offset_s:.1f} s is after its end"
        )
    return MarkerInput(round(float(offset_s), 3), text)
