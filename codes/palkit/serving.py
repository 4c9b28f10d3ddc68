"""One way to serve a WSGI app: waitress (a pure-Python production server) until Ctrl-C.

Idle or half-open connections cost waitress no thread (it reads requests asynchronously and hands complete ones to
its threads), but past `connection_limit` open connections it stops accepting new ones until some close. So the
limit is high (poll() instead of select(), which cannot watch more than 1024 sockets) and an idle connection is
closed after CHANNEL_TIMEOUT_S: 120 idle connections leave a normal request answered at once. A public deployment
puts a reverse proxy in front (README "PAL as a service": TLS, per-client limits, timeouts on slow clients).
"""
import resource

from palkit.cli import UserError

CONNECTION_LIMIT = 1000  # open connections (each one file descriptor); lowered to fit the process's descriptor limit
CHANNEL_TIMEOUT_S = 60  # an idle connection (no request in progress, nothing sent) is closed after this
CLEANUP_INTERVAL_S = 10  # how often idle connections are looked for
FILES_RESERVED = 64  # descriptors left for the app (model files, databases, logs)


def connection_limits():
    """waitress options against connection starvation (module docstring)."""
    soft, _ = resource.getrlimit(resource.RLIMIT_NOFILE)
    limit = CONNECTION_LIMIT if soft == resource.RLIM_INFINITY else max(16, min(CONNECTION_LIMIT, soft - FILES_RESERVED))
    return {"connection_limit": limit, "channel_timeout": CHANNEL_TIMEOUT_S, "cleanup_interval": CLEANUP_INTERVAL_S,
            "asyncore_use_poll": True}


def serve_wsgi(app, host, port, on_ready=None, on_stop=None, **options):
    """Listen on host:port (a busy port is one line), call on_ready(server) once listening, serve until Ctrl-C
    (then on_stop()), and close. `options` go to waitress.create_server (threads, limits, ident) over
    connection_limits()."""
    from waitress import create_server  # lazy: only a server needs it
    try:
        server = create_server(app, host=host, port=port, **{**connection_limits(), **options})
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
