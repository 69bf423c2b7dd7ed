"""`rag ui`, `rag serve` and `rag mcp`: the processes that own the index and the model, and
serve them (the page, the JSON API, the MCP tools) until Ctrl-C, SIGTERM or, for `rag mcp`, the
end of its stdin."""

from __future__ import annotations

import sys

from rag.cli_app import app_for


def stop_on_sigterm() -> None:
    """SIGTERM ends a server as Ctrl-C does: through its cleanup, so server.json goes too."""
    import signal

    def interrupt(signum, frame):
        raise KeyboardInterrupt

    signal.signal(signal.SIGTERM, interrupt)


def cmd_ui(args, settings) -> int:
    from rag.ui.server import serve

    stop_on_sigterm()
    app = app_for(settings)
    try:
        sys.stderr.write(f"rag ui: serving on http://{args.host}:{args.port} (Ctrl-C stops it)\n")
        serve(
            app,
            host=args.host,
            port=args.port,
            auth=args.auth or settings.ui_auth or None,
            api_port=args.api_port,
        )
    finally:
        app.close()
    return 0


def cmd_serve(args, settings) -> int:
    from rag.server import ApiServer

    stop_on_sigterm()
    app = app_for(settings)
    try:
        api = ApiServer(app, host=args.host, port=args.port)
        try:
            api.start()
            sys.stderr.write(
                f"rag serve: the API is on {api.url}, its token in {api.file} (Ctrl-C stops it)\n"
            )
            if args.host not in ("127.0.0.1", "localhost", "::1"):
                sys.stderr.write(
                    "rag serve: note: beyond this machine the token travels unencrypted "
                    "(plain HTTP)\n"
                )
            # Served already: commands that arrive meanwhile wait for the index, not fail on its
            # lock.
            report = app.ensure_index()
            if report is not None:
                sys.stderr.write(f"indexed the corpus: {report.summary()}\n")
            api.wait()
        except KeyboardInterrupt:
            sys.stderr.write("rag serve: stopped\n")
        finally:
            api.close()
    finally:
        app.close()
    return 0


def cmd_mcp(args, settings) -> int:
    """stdout is the MCP client's: everything this command says goes to stderr."""
    from rag.mcp_server import build_server

    stop_on_sigterm()
    app = app_for(settings)
    try:
        server = build_server(app)
        sys.stderr.write("rag mcp: serving the search and ask tools on stdio\n")
        server.run("stdio")
    except KeyboardInterrupt:
        sys.stderr.write("rag mcp: stopped\n")
    finally:
        app.close()
    return 0
