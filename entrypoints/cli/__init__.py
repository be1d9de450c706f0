"""The `evidence` command line: the root command and the registration of every command.

Exit codes: 0 ok, 1 integrity problem found, 2 usage, configuration or a refused step, 3 any other
failure. The command modules (`core`, `cases`, `disclosure`, `export`, `ingest`, `redact`, `retention`,
`spool`, `stations`, `web`, `workers`) share
`support` and never import this module.
"""

from __future__ import annotations

import sys

import click

from entrypoints.cli import (
    cases,
    core,
    disclosure,
    export,
    ingest,
    redact,
    retention,
    spool,
    stations,
    web,
    workers,
)
from entrypoints.cli.support import EXIT_FAILED, EXIT_INTEGRITY, EXIT_OK, EXIT_USAGE, fail
from evidence_store.errors import (
    ConfigurationError,
    ConflictError,
    EvidenceError,
    InputError,
    IntegrityError,
    NotPermittedError,
)


@click.group(help="Evidence management for body-worn camera footage.")
def cli() -> None:
    """Settings are read lazily so that `--help` works without a configured station."""


COMMANDS: tuple[click.Command, ...] = (
    core.init,
    core.status,
    core.audit,
    core.scrub,
    core.station,
    stations.stations_group,
    spool.spool_group,
    ingest.import_command,
    ingest.dock_command,
    workers.worker_command,
    workers.process_command,
    workers.jobs_command,
    retention.retention_group,
    retention.hold_group,
    cases.cases_group,
    cases.report_group,
    cases.flags_group,
    web.web_command,
    web.users_group,
    web.clips_group,
    export.export_group,
    export.verify_command,
    redact.redact_group,
    disclosure.disclosure_group,
)
for _command in COMMANDS:
    cli.add_command(_command)


def main(argv: list[str] | None = None) -> None:
    """Entry point: one clear line and a defined exit code for every failure the user can act on."""
    try:
        cli.main(args=argv, prog_name="evidence", standalone_mode=False)
    except click.exceptions.Exit as exc:
        raise SystemExit(exc.exit_code) from None
    except click.ClickException as exc:
        exc.show()
        raise SystemExit(EXIT_USAGE if isinstance(exc, click.UsageError) else exc.exit_code) from None
    except click.exceptions.Abort:
        fail("aborted", EXIT_USAGE)
    except (ConfigurationError, InputError, NotPermittedError, ConflictError) as exc:
        fail(str(exc), EXIT_USAGE)
    except IntegrityError as exc:
        fail(str(exc), EXIT_INTEGRITY)
    except EvidenceError as exc:
        fail(str(exc), EXIT_FAILED)
    sys.exit(EXIT_OK)
