"""One way to serve a WSGI app: waitress (a pure-Python production server) until Ctrl-C."""
from palkit.cli import UserError


def serve_wsgi(app, host, port, on_ready=None, on_stop=None, **options):
    """Listen on host:port (a busy port is one line), call on_ready(server) once listening, serve until Ctrl-C
    (then on_stop()), and close. `options` go to waitress.create_server (threads, limits, ident)."""
    from waitress import create_server
    try:
        server = create_server(app, host=host, port=port, **options)
    except OSError as e:
        raise UserError(f"cannot listen on {host}:{port} ({e.strerror}); pass another --port")
    try:
        if on_ready:
            on_ready(server)
        server.run()
    except KeyboardInterrupt:
        if on_stop:
            on_stop()
    finally:
        server.close()


def listening_port(server):
    """The port a waitress server listens on (the first socket's when it has several, as for "localhost")."""
    return getattr(server, "effective_port", None) or server.effective_listen[0][1]
