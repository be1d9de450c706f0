"""`evidence worker`, `evidence process`, `evidence jobs`."""

from __future__ import annotations

import json
import os
import sys
from typing import Any

import click

from entrypoints.cli.support import cli_actor, close_interrupted, open_station_from, settings_from


@click.command("worker", help="Run the processing workers (dramatiq over Redis) until stopped.")
@click.option(
    "--processes", type=click.IntRange(1, 64), default=None, help="Worker processes (default: settings)."
)
@click.option(
    "--threads", type=click.IntRange(1, 64), default=None, help="Threads per process (default: settings)."
)
@click.pass_context
def worker_command(ctx: click.Context, processes: int | None, threads: int | None) -> None:
    from entrypoints.wiring import sending_actors  # lazy: dramatiq; keeps `--help` fast
    from workers.queue import offer_waiting_work  # lazy: SQLAlchemy; keeps `--help` fast

    settings = settings_from(ctx)
    station = open_station_from(ctx)  # fail here, with one clear line, if the station is not usable
    try:
        close_interrupted(station)
        planned, sent = offer_waiting_work(station, sending_actors(settings))  # ... or if Redis is down
    finally:
        station.close()
    if planned or sent:
        click.echo(f"found waiting work: {planned} job(s) planned, {sent} sent to the workers", err=True)
    argv = [
        sys.executable,
        "-m",
        "dramatiq",
        "entrypoints.worker",  # it installs the settings' broker and declares the actors on it
        "--processes",
        str(processes or settings.worker_processes),
        "--threads",
        str(threads or settings.worker_threads),
        "--queues",
        "processing",
    ]
    os.execv(sys.executable, argv)  # noqa: S606 - replace this process with dramatiq's supervisor


@click.command("process", help="Process every pending clip in this process, then exit.")
@click.option("--json", "as_json", is_flag=True)
@click.pass_context
def process_command(ctx: click.Context, as_json: bool) -> None:
    # lazy: SQLAlchemy, PyAV; keeps `--help` fast
    from workers.service import default_toolkit, failed_jobs, process_pending

    station = open_station_from(ctx)

    def show(outcome: Any) -> None:
        if not as_json:
            click.echo(
                f"job {outcome.job_id:>6} clip {outcome.clip_id:>6} {outcome.step:<11} "
                f"{outcome.status} {outcome.detail}"
            )

    outcomes = process_pending(station, default_toolkit(station), on_outcome=show)
    failed = failed_jobs(station)
    station.close()
    summary = {
        "jobs_run": len(outcomes),
        "by_status": {
            s: sum(1 for o in outcomes if str(o.status) == s) for s in {str(o.status) for o in outcomes}
        },
        "failed_jobs": failed,
    }
    if as_json:
        click.echo(json.dumps(summary, ensure_ascii=False, indent=2))
    else:
        click.echo(
            f"ran {summary['jobs_run']} jobs; {len(failed)} failed job(s) on record (evidence jobs --failed)"
        )


@click.group("jobs", invoke_without_command=True, help="Processing jobs: list failed ones, retry by id.")
@click.option("--failed", is_flag=True, help="List failed jobs (the default).")
@click.option("--json", "as_json", is_flag=True)
@click.pass_context
def jobs_command(ctx: click.Context, failed: bool, as_json: bool) -> None:
    if ctx.invoked_subcommand is not None:
        return
    from workers.service import failed_jobs  # lazy: SQLAlchemy; keeps `--help` fast

    station = open_station_from(ctx)
    jobs = failed_jobs(station)
    station.close()
    if as_json:
        click.echo(json.dumps({"failed_jobs": jobs}, ensure_ascii=False, indent=2))
        return
    if not jobs:
        click.echo("no failed jobs")
    for job in jobs:
        kind = "permanent" if job["permanent"] else "gave up"
        click.echo(
            f"job {job['job_id']} clip {job['clip_id']} {job['step']} ({kind}, {job['attempts']} attempts): "
            f"{job['error']}"
        )


@jobs_command.command("retry", help="Put a failed job back in the queue.")
@click.argument("job_id", type=int)
@click.pass_context
def jobs_retry(ctx: click.Context, job_id: int) -> None:
    from entrypoints.wiring import sending_actors  # lazy: dramatiq; keeps `--help` fast
    from workers.service import retry_job  # lazy: SQLAlchemy; keeps `--help` fast

    station = open_station_from(ctx)
    retry_job(station, job_id, actor=cli_actor())
    station.close()
    try:
        sending_actors(settings_from(ctx)).run_processing_job.send(job_id)
    except Exception as exc:  # Redis unreachable: the job waits, by status, for `evidence process`
        click.echo(
            f"job {job_id} is pending again, not sent to the workers ({exc}); "
            "run `evidence process` or start `evidence worker`"
        )
        return
    click.echo(f"job {job_id} queued again")
