"""Run the web app."""

from __future__ import annotations

import os

import click

from matcher.cli.common import App, pass_app
from matcher.cli.scan import check_device
from matcher.media import DEFAULT_MAX_PIXELS
from matcher.store import StoreError, display_name


@click.command()
@click.option("--host", default="127.0.0.1", show_default=True, help="Address to listen on.")
@click.option("--port", type=click.IntRange(1, 65535), default=8000, show_default=True)
@click.option("--max-upload-mb", type=click.IntRange(1, 2048), default=50, show_default=True,
              help="Largest request accepted (photos and videos), in MiB.")
@click.option("--max-pixels", type=click.IntRange(1, 178_956_970), default=DEFAULT_MAX_PIXELS, show_default=True,
              help="Refuse images larger than this many pixels, before decoding them.")
@click.option("--check-workers", type=click.IntRange(1, 64), default=2, show_default=True,
              help="Processes doing the face work of POST /api/check (each holds its own face models, ~300 MB).")
@click.option("--check-seconds", type=click.FloatRange(min=1), default=30, show_default=True,
              help="The longest one upload's face work may take; past it the upload is refused with the reason.")
@click.option("--device", type=click.Choice(["cpu", "cuda"]), default="cpu", show_default=True,
              help="cuda: the face work of POST /api/check on a CUDA GPU through PyTorch.")
@click.option("--workers", type=click.IntRange(1, 64), default=1, show_default=True,
              help="Server processes, each with its own face models (on a PostgreSQL database; SQLite has one writer).")
@click.option("--insecure-cookies", is_flag=True,
              help="Send cookies over plain HTTP too (only for a trial on a trusted network; behind HTTPS leave it off).")
@pass_app
def serve(app: App, host: str, port: int, max_upload_mb: int, max_pixels: int, check_workers: int,
          check_seconds: float, device: str, workers: int, insecure_cookies: bool) -> None:
    """Run the web app: self-service opt-out, the review queue and POST /api/check.

    It uses the same database and policy rules as the other commands. Put it
    behind an HTTPS reverse proxy: its cookies are marked Secure.
    """
    try:
        import uvicorn

        from matcher.web import WebSettings, create_app, factory_environment
    except ImportError as exc:
        raise click.ClickException(f"the web app needs the [web] extra: pip install 'consent-matcher[web]' ({exc})")
    check_device(device)
    settings = WebSettings(max_upload_bytes=max_upload_mb * 1024 * 1024, max_pixels=max_pixels,
                           secure_cookies=not insecure_cookies, check_workers=check_workers,
                           check_seconds=check_seconds, device=device)
    try:
        web = create_app(app.db_path, app.policy, settings, clock=app.clock)
    except (StoreError, OSError) as exc:
        raise click.ClickException(str(exc)) from None
    click.echo(f"consent-matcher web app on http://{host}:{port}/ (database {display_name(app.db_path)}, "
               f"{workers} process{'es' if workers > 1 else ''}); Ctrl-C stops it", err=True)
    if workers == 1:
        uvicorn.run(web, host=host, port=port, log_level="warning", server_header=False)
        return
    # Each worker process builds its own app (and face models) from what the environment hands it.
    os.environ.update(factory_environment(app.db_path, app.policy.path, settings))
    uvicorn.run("matcher.web:app_from_environment", factory=True, workers=workers, host=host, port=port,
                log_level="warning", server_header=False)


COMMANDS = [serve]
