"""File names as recorders write them: bytes that may be UTF-8, GBK, or neither."""

from __future__ import annotations

# folders an operating system makes on a removable volume: not the recorder's, never walked
SYSTEM_DIRS = {b"System Volume Information", b"$RECYCLE.BIN", b".Trashes", b".Spotlight-V100", b".fseventsd"}


def display_name(raw: bytes) -> tuple[str, bool]:
    """A readable name for raw file-name bytes, and whether it is the exact UTF-8 text.

    UTF-8 first, then GBK (common on Chinese recorders' FAT volumes); otherwise the undecodable bytes
    are shown as \\xNN escapes. The raw bytes are kept beside the name when it is not exact.
    """
    try:
        return raw.decode("utf-8"), True
    except UnicodeDecodeError:
        pass
    try:
        return raw.decode("gbk"), False
    except UnicodeDecodeError:
        return raw.decode("utf-8", errors="backslashreplace"), False
