"""`posttrain serve`: any posttrain backend behind an OpenAI-compatible HTTP API."""

from __future__ import annotations

import logging
import os
import socket
import sys

import typer

from posttrain.errors import InputError


def register(app: typer.Typer) -> None:
    @app.command("serve")
    def serve(
        model: str = typer.Option(
            "embedded", help="Backend spec: embedded, a local HF directory, vllm:<model>."
        ),
        host: str = typer.Option(
            "127.0.0.1", help="Address to bind (0.0.0.0: reachable from other machines)."
        ),
        port: int = typer.Option(8000, help="Port to listen on."),
        api_key: str | None = typer.Option(
            None,
            envvar="POSTTRAIN_API_KEY",
            help="Require 'Authorization: Bearer <key>' (env POSTTRAIN_API_KEY).",
        ),
        threads: int | None = typer.Option(None, help="torch threads for local models (default: all cores)."),
        max_batch: int | None = typer.Option(
            None, help="Concurrent requests per backend call (default: the backend's batch size, 16 for local models)."
        ),
        max_queue: int = typer.Option(
            512, help="Requests that may wait; beyond them a request is answered 429 (retry later) at once."
        ),
    ) -> None:
        """Serve a model at http://HOST:PORT/v1 (GET /v1/models, POST /v1/chat/completions).

        Concurrent requests are batched into one backend call; stream=true answers with server-sent events;
        Ctrl-C finishes the requests in flight, then stops.

        Example: posttrain serve --model embedded --port 8000, then posttrain sample --model openai:http://127.0.0.1:8000 ...
        """
        from posttrain.models import load_backend
        from posttrain.models.serve import make_server, run_until_interrupted

        logging.basicConfig(level=logging.INFO, format="%(asctime)s %(message)s")
        _check_address(host, port)  # before the model loads: a taken port fails in a second
        if (max_batch is not None and max_batch < 1) or max_queue < 1:
            raise InputError("--max-batch and --max-queue must be at least 1")
        backend = load_backend(model, threads=threads)
        if max_batch is not None and hasattr(backend, "batch_size"):
            setattr(backend, "batch_size", max_batch)  # noqa: B010 -- one backend call of max_batch requests is one decode batch
        try:
            server = make_server(backend, host, port, api_key, max_batch=max_batch, max_queue=max_queue)
        except OSError as err:  # taken in the meantime
            raise InputError(f"cannot listen on {host}:{port}: {_reason(err)}") from None
        typer.echo(f"serving '{server.model_id}' at {server.url}/v1 (Ctrl-C to stop)")
        if api_key is None and host not in ("127.0.0.1", "localhost", "::1"):
            typer.echo(
                "warning: no --api-key and a public address: anyone who can reach it can use it", err=True
            )
        run_until_interrupted(server)
        # Served and the port released: the process ends here, without the interpreter's teardown of native
        # libraries, which aborted after Ctrl-C in ~1 of 6 runs ("terminate called without an active exception",
        # SIGABRT with no Python frame: a library thread still joinable in a C++ static destructor).
        logging.shutdown()
        sys.stdout.flush()
        sys.stderr.flush()
        os._exit(0)


def _check_address(host: str, port: int) -> None:
    try:
        with socket.create_server((host, port)):
            pass
    except OSError as err:  # port taken, address not on this machine, a low port without privileges
        raise InputError(f"cannot listen on {host}:{port}: {_reason(err)}") from None


def _reason(err: OSError) -> str:
    return os.strerror(err.errno) if err.errno else str(err)
