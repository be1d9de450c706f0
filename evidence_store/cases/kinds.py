"""The table of document kinds and which of them must be on video (R7).

The defaults ship as `document_kinds.toml` beside this module; a station overrides or extends them with
`$EVIDENCE_HOME/document-kinds.toml` (or `document-kinds.json`) of the same shape.
"""

from __future__ import annotations

import json
import tomllib
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from evidence_store.errors import ConfigurationError

DEFAULT_FILE = Path(__file__).with_name("document_kinds.toml")
OVERRIDE_NAMES = ("document-kinds.toml", "document-kinds.json")


@dataclass(frozen=True)
class DocumentKind:
    code: str
    name: str
    requires_video: bool
    rule: str = ""
    aliases: tuple[str, ...] = ()


@dataclass(frozen=True)
class KindTable:
    kinds: dict[str, DocumentKind]

    def resolve(self, value: str) -> DocumentKind | None:
        """R7: the kind a document names, by code (any case), Chinese title or alias."""
        wanted = value.strip()
        if wanted.lower() in self.kinds:
            return self.kinds[wanted.lower()]
        for kind in self.kinds.values():
            if wanted == kind.name or wanted in kind.aliases:
                return kind
        return None

    def names(self) -> list[str]:
        """R7: the known kinds, for error messages."""
        return [f"{k.code} ({k.name})" for k in self.kinds.values()]


def parse_kinds(data: dict[str, Any], source: str, base: KindTable | None = None) -> KindTable:
    """R7: read a kinds table (`{"kinds": {code: {name, requires_video, aliases, rule}}}`); entries
    replace those of `base` by code, and an entry may give only `requires_video` to change a default."""
    kinds = dict(base.kinds) if base else {}
    table = data.get("kinds")
    if not isinstance(table, dict):
        raise ConfigurationError(f"{source}: expected a 'kinds' table")
    for code, entry in table.items():
        where = f"{source}: kinds.{code}"
        if not isinstance(entry, dict):
            raise ConfigurationError(f"{where}: expected a table")
        unknown = set(entry) - {"name", "aliases", "requires_video", "rule"}
        if unknown:
            raise ConfigurationError(f"{where}: unknown key(s) {', '.join(sorted(unknown))}")
        previous = kinds.get(code.lower())
        requires = entry.get("requires_video", previous.requires_video if previous else None)
        if not isinstance(requires, bool):
            raise ConfigurationError(f"{where}: requires_video must be true or false")
        name = entry.get("name", previous.name if previous else code)
        aliases = entry.get("aliases", list(previous.aliases) if previous else [])
        rule = entry.get("rule", previous.rule if previous else "")
        if not isinstance(name, str) or not isinstance(rule, str):
            raise ConfigurationError(f"{where}: name and rule must be text")
        if not isinstance(aliases, list) or not all(isinstance(a, str) for a in aliases):
            raise ConfigurationError(f"{where}: aliases must be a list of text")
        kinds[code.lower()] = DocumentKind(code.lower(), name, requires, rule, tuple(aliases))
    return KindTable(kinds)


def _read(path: Path) -> dict[str, Any]:
    try:
        if path.suffix == ".json":
            data = json.loads(path.read_text(encoding="utf-8"))
        else:
            with path.open("rb") as handle:
                data = tomllib.load(handle)
    except OSError as exc:
        raise ConfigurationError(f"cannot read {path}: {exc.strerror}") from exc
    except (tomllib.TOMLDecodeError, json.JSONDecodeError) as exc:
        raise ConfigurationError(f"{path} is not valid {path.suffix.lstrip('.').upper()}: {exc}") from exc
    if not isinstance(data, dict):
        raise ConfigurationError(f"{path}: expected a table at the top")
    return data


def load_kinds(home: Path | None) -> KindTable:
    """R7: the shipped table, overridden by the station's own file in `home` if there is one."""
    table = parse_kinds(_read(DEFAULT_FILE), str(DEFAULT_FILE))
    if home is not None:
        for name in OVERRIDE_NAMES:
            path = home / name
            if path.is_file():
                table = parse_kinds(_read(path), str(path), base=table)
    return table
