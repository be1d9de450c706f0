"""Database adapter: tables, the imperative mapping of the domain dataclasses, engines and sessions."""
