"""The pure core: plain dataclasses and the rules over them. No database, files, network or clock here."""
