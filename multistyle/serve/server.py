"""``multistyle serve``: a local HTTP server, from the standard library, for the live page.

Routes are a fixed table: no part of a request's path is ever joined to a file-system path.  The page's
script and the bundled examples are read once at start-up; uploads are checked as ``run`` checks its inputs
(:func:`multistyle.images.load_image`: a format allowlist, ``--max-pixels``), stored under random names in
the server's own temporary folder, decoded only by Pillow, and deleted when the server stops.
"""

from __future__ import annotations

import http.server
import ipaddress
import json
import os
import re
import secrets
import shutil
import socket
import sys
import tempfile
import threading
import urllib.parse
from importlib import resources
from typing import Any, Callable, Dict, Optional, Tuple

from .. import images
from ..errors import MultistyleError
from ..loop import scale_plan
from ..losses import STYLE_LOSSES
from ..objective import check_mrf_sizes
from ..optim import OPTIMIZERS
from ..settings import PRESETS, Settings
from ..transfer import read_masks, target_size
from .live import Busy, Live, frame_every

#: Largest JSON body (the Run request) in bytes.
MAX_JSON = 64 * 1024
#: Limits on a run started from the page.
SIZE_RANGE, EPOCH_RANGE = (16, 1024), (1, 5000)
#: Uploads kept at once; the oldest go first.
MAX_UPLOADS = 32
#: Seconds between keep-alive comments on an event stream (a closed browser is noticed at the next one).
KEEPALIVE = 10.0
_UPLOAD = re.compile(r"^/api/upload/(content|style|mask)$")
_IMAGE = re.compile(r"^/api/image/([a-z][a-z0-9_]{0,31})/(latest|final)\.png$")
_EXAMPLE = re.compile(r"^/api/example/(content|style|mask)$")
#: The bundled examples: the content, the style, and a mask (white on the left) for the style's region.
EXAMPLES = {"content": "content.jpg", "style": "style.jpg", "mask": "mask-left.png"}
_TOKEN = re.compile(r"^upload:([0-9a-f]{32})$")


class Request(MultistyleError):
    """A request the server refuses: an HTTP status and a one-line reason."""

    def __init__(self, status: int, message: str) -> None:
        super().__init__(message)
        self.status = status


def is_loopback(host: str) -> bool:
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def url_host(host: str) -> str:
    """``host`` as it goes in a URL: the wildcard addresses as the loopback one a local browser accepts."""
    if host in ("0.0.0.0", ""):
        return "127.0.0.1"
    if host == "::":
        return "[::1]"
    return f"[{host}]" if ":" in host else host


class App:
    """What the handlers share: settings, the uploads, the page and the live run."""

    def __init__(self, *, weights: str, device: str, max_pixels: int, max_upload: int,
                 backends: Dict[str, Dict[str, Any]], page: str, folder: str, model: Optional[str] = None,
                 arbitrary: bool = False) -> None:
        self.weights, self.device, self.max_pixels, self.max_upload = weights, device, max_pixels, max_upload
        #: A trained style network the page offers beside the optimisation (``serve --model``), or ``None``.
        self.model = model
        #: Whether it is an AdaIN network (any style), which runs on every backend chosen instead of optimising.
        self.arbitrary = arbitrary
        self.backends = backends
        self.page = page.encode("utf-8")
        self.folder = folder
        self.live = Live()
        self.uploads: Dict[str, Dict[str, str]] = {}
        self.lock = threading.Lock()
        package = resources.files("multistyle.serve")
        self.script = package.joinpath("app.js").read_bytes()
        self.examples = {kind: resources.files("multistyle.examples").joinpath(name)
                         for kind, name in EXAMPLES.items()}
        self.example_bytes = {kind: path.read_bytes() for kind, path in self.examples.items()}
        self.allowed_hosts: Optional[set] = None  # set by serve(): Host headers a loopback server answers

    # -- uploads ---------------------------------------------------------------------------------------------
    def upload(self, kind: str, name: str, data: bytes) -> Dict[str, Any]:
        option = f"{kind} image"
        image = images.load_image(name or "upload", option, self.max_pixels, data=data)
        token = secrets.token_hex(16)
        path = os.path.join(self.folder, f"upload-{token}")
        with images.atomic_write(path) as handle:
            handle.write(data)
        with self.lock:
            self.uploads[token] = {"path": path, "name": name, "kind": kind}
            while len(self.uploads) > MAX_UPLOADS:
                old = next(iter(self.uploads))
                os.unlink(self.uploads.pop(old)["path"])
        return {"token": f"upload:{token}", "name": name, "width": image.width, "height": image.height}

    def image_path(self, choice: Any, kind: str) -> str:
        if choice in (None, "", "example"):
            return str(self.examples[kind])
        match = _TOKEN.match(str(choice))
        with self.lock:
            upload = self.uploads.get(match.group(1)) if match else None
        if upload is None:
            raise Request(400, f"{kind}: unknown image {str(choice)[:60]!r}; upload it again, or pick the example")
        return upload["path"]

    # -- runs ----------------------------------------------------------------------------------------------
    def jobs(self, body: Dict[str, Any]) -> Tuple[list, Dict[str, Any], bool]:
        """The jobs of a Run request, every value checked; a bad one is a 400 with its one line."""
        names = body.get("backends")
        if not isinstance(names, list) or not names or not all(isinstance(n, str) for n in names):
            raise Request(400, "backends: choose at least one backend")
        for name in names:
            if name not in self.backends:
                raise Request(400, f"backends: unknown backend {name[:40]!r}")
            if not self.backends[name]["usable"]:
                raise Request(400, f"backends: {name} is not usable here: {self.backends[name]['reason']}")
        size = _integer(body, "size", SIZE_RANGE)
        epochs = _integer(body, "epochs", EPOCH_RANGE)
        preset = body.get("preset", Settings.preset)
        optimizer = body.get("optimizer") or None
        if preset not in PRESETS:
            raise Request(400, f"preset: choose one of {', '.join(PRESETS)}")
        if optimizer is not None and optimizer not in OPTIMIZERS:
            raise Request(400, f"optimizer: choose one of {', '.join(OPTIMIZERS)}, or the preset's")
        style_loss = body.get("style_loss") or None
        if style_loss is not None and style_loss not in STYLE_LOSSES:
            raise Request(400, f"style_loss: choose one of {', '.join(STYLE_LOSSES)}, or the preset's")
        settings: Dict[str, Any] = {"preset": preset, "epochs": epochs, "optimizer": optimizer,
                                    "style_loss": style_loss}
        if body.get("mask") not in (None, "", "none"):  # where the style applies (white); elsewhere content only
            settings["content_masks"] = [self.image_path(body.get("mask"), "mask")]
        try:
            read_masks(Settings(**settings).resolved(), 1, self.max_pixels)
        except MultistyleError as exc:  # the one mask is black everywhere (its path is the server's business)
            raise Request(400, "mask: " + str(exc).split(" is ", 1)[-1]) from None
        content, style = self.image_path(body.get("content"), "content"), self.image_path(body.get("style"), "style")
        resolved = Settings(**settings).resolved()
        if resolved.style_loss == "mrf":  # a picture too small for a patch is this request's 400, not a failed pane
            shape = target_size(images.load_image(content, "content", self.max_pixels), size)
            check_mrf_sizes(resolved, scale_plan(shape, resolved.scales, resolved.epochs, resolved.final_share)[0][0])
        common = {"content": content, "style": [style], "device": self.device, "weights": self.weights,
                  "size": size, "max_pixels": self.max_pixels, "settings": settings, "epochs": epochs,
                  "frame_every": frame_every(epochs)}
        parallel = bool(body.get("parallel", False))
        shown = dict(settings, size=size, content=_shown(body.get("content")), style=_shown(body.get("style")),
                     weights=self.weights)
        if "content_masks" in settings:
            shown["content_masks"] = [_shown(body.get("mask"))]
        jobs = [dict(common, backend=name) for name in dict.fromkeys(names)]
        if self.model and self.arbitrary and body.get("network"):  # any style: one pass on every backend chosen
            alpha = body.get("alpha", 1.0)
            if isinstance(alpha, bool) or not isinstance(alpha, (int, float)) or not 0 <= alpha <= 1:
                raise Request(400, f"alpha: expected a number from 0 to 1, got {alpha!r}")
            jobs = [dict(job, model=self.model, arbitrary=True, alpha=float(alpha)) for job in jobs]
            shown["network"], shown["alpha"] = "every backend", float(alpha)
        elif self.model and body.get("network"):  # the other family: one pass of the network, first, on the first
            # backend
            jobs.insert(0, dict(common, backend=names[0], pane="network", model=self.model))
            shown["network"] = names[0]
        return jobs, shown, parallel


def _shown(choice: Any) -> str:
    return "example" if choice in (None, "", "example") else "upload"


def _integer(body: Dict[str, Any], key: str, bounds: Tuple[int, int]) -> int:
    value = body.get(key)
    if isinstance(value, bool) or not isinstance(value, int) or not bounds[0] <= value <= bounds[1]:
        raise Request(400, f"{key}: expected a whole number from {bounds[0]} to {bounds[1]}, got {value!r}")
    return value


class Handler(http.server.BaseHTTPRequestHandler):
    """One request.  Every answer is a fixed route's; anything else is 404."""

    server_version = "multistyle-serve"
    app: App  # set on the subclass that serve() makes

    def log_message(self, format: str, *args: Any) -> None:  # noqa: A002 - the base class's name
        pass  # a page's requests are not the terminal's business

    # -- answers -------------------------------------------------------------------------------------------
    def _send(self, status: int, body: bytes, content_type: str, extra: Optional[Dict[str, str]] = None) -> None:
        self.send_response(status)
        self.send_header("Content-Type", content_type)
        self.send_header("Content-Length", str(len(body)))
        self.send_header("Cache-Control", "no-store")
        self.send_header("X-Content-Type-Options", "nosniff")
        # The page loads nothing from elsewhere, and the browser is told so.
        self.send_header("Content-Security-Policy", "default-src 'self'; img-src 'self' blob: data:; "
                                                    "style-src 'self' 'unsafe-inline'; connect-src 'self'")
        for key, value in (extra or {}).items():
            self.send_header(key, value)
        self.end_headers()
        if self.command != "HEAD":
            self.wfile.write(body)

    def _json(self, status: int, data: Any) -> None:
        self._send(status, json.dumps(data).encode("utf-8"), "application/json")

    def _refuse(self, status: int, message: str) -> None:
        self.close_connection = True
        self._json(status, {"error": message})

    # -- dispatch ------------------------------------------------------------------------------------------
    def do_GET(self) -> None:
        self._dispatch(self._get)

    def do_HEAD(self) -> None:
        self._dispatch(self._get)

    def do_POST(self) -> None:
        self._dispatch(self._post)

    def _dispatch(self, route: Any) -> None:
        try:
            allowed = self.app.allowed_hosts
            if allowed is not None and self.headers.get("Host", "") not in allowed:
                raise Request(421, "this server answers requests to its own loopback address only")
            route(urllib.parse.urlsplit(self.path).path)
        except Request as exc:
            self._refuse(exc.status, str(exc))
        except MultistyleError as exc:
            self._refuse(400, str(exc))
        except (BrokenPipeError, ConnectionResetError):
            self.close_connection = True
        except Exception as exc:  # a bug: the page gets a 500 and the server stays up
            print(f"multistyle serve: error in {self.command} {self.path[:80]}: {type(exc).__name__}: {exc}",
                  file=sys.stderr)
            self._refuse(500, f"internal error ({type(exc).__name__})")

    def _get(self, path: str) -> None:
        app = self.app
        if path in ("/", "/index.html"):
            return self._send(200, app.page, "text/html; charset=utf-8")
        if path == "/favicon.ico":  # browsers ask; there is none
            return self._send(204, b"", "image/x-icon")
        if path == "/app.js":
            return self._send(200, app.script, "text/javascript; charset=utf-8")
        if path == "/api/state":
            return self._json(200, dict(app.live.state(), backends=app.backends, workers=app.live.worker_pids(),
                                         warm=app.live.warm_pids()))
        if path == "/api/events":
            return self._events()
        match = _EXAMPLE.match(path)
        if match:
            kind = match.group(1)
            return self._send(200, app.example_bytes[kind], "image/png" if EXAMPLES[kind].endswith(".png")
                              else "image/jpeg")
        match = _IMAGE.match(path)
        if match:
            data = app.live.image(match.group(1), match.group(2))
            if data is None:
                raise Request(404, f"no {match.group(2)} image of {match.group(1)} in this run")
            extra = ({"Content-Disposition": f"attachment; filename=multistyle-{match.group(1)}.png"}
                     if match.group(2) == "final" else None)
            return self._send(200, data, "image/png", extra)
        raise Request(404, "not found")

    def _body(self, limit: int) -> bytes:
        length = self.headers.get("Content-Length")
        if length is None:
            raise Request(411, "the request has no Content-Length")
        try:
            size = int(length)
        except ValueError:
            raise Request(400, f"bad Content-Length {length[:20]!r}") from None
        if size < 0:
            raise Request(400, f"bad Content-Length {length[:20]!r}")
        if size > limit:
            raise Request(413, f"the request is {size} bytes; the limit is {limit} bytes"
                               + (" (--max-upload-mb)" if limit == self.app.max_upload else ""))
        return self.rfile.read(size)

    def _post(self, path: str) -> None:
        app = self.app
        match = _UPLOAD.match(path)
        if match:
            name = urllib.parse.unquote(self.headers.get("X-Filename", ""))[:120]
            data = self._body(app.max_upload)
            return self._json(200, app.upload(match.group(1), os.path.basename(name), data))
        if path == "/api/run":
            try:
                body = json.loads(self._body(MAX_JSON) or b"{}")
            except (ValueError, UnicodeDecodeError):
                raise Request(400, "the Run request is not JSON") from None
            if not isinstance(body, dict):
                raise Request(400, "the Run request is not a JSON object")
            jobs, settings, parallel = app.jobs(body)
            try:
                run = app.live.start(jobs, settings, parallel)
            except Busy as exc:
                raise Request(409, str(exc)) from None
            return self._json(202, {"run": run["id"]})
        if path == "/api/stop":
            self._body(MAX_JSON)
            app.live.stop()
            return self._json(200, {"stopped": True})
        raise Request(404, "not found")

    def _events(self) -> None:
        """Server-Sent Events: the whole state first, then every change as it happens.

        The watcher is registered before the headers go out: a client that has them is told of every change
        after that point (one that starts a run as soon as its stream answers is told of that run)."""
        watcher = self.app.live.watch()
        try:
            self.send_response(200)
            self.send_header("Content-Type", "text/event-stream")
            self.send_header("Cache-Control", "no-store")
            self.end_headers()
            self.close_connection = True
            while True:
                try:
                    item = watcher.get(timeout=KEEPALIVE)
                except Exception:  # queue.Empty: a comment, so a closed browser is noticed
                    self.wfile.write(b": keep-alive\n\n")
                    self.wfile.flush()
                    continue
                if item is None:  # dropped for falling behind, or the server is stopping
                    break
                self.wfile.write(f"event: {item[0]}\ndata: {item[1]}\n\n".encode("utf-8"))
                self.wfile.flush()
        except OSError:
            pass
        finally:
            self.app.live.unwatch(watcher)


class Server(http.server.ThreadingHTTPServer):
    daemon_threads = True  # an open event stream does not keep the process alive after Ctrl-C


def bind(host: str, port: int, app: App) -> Server:
    """The listening server; a busy port or a bad address is one line."""
    handler = type("BoundHandler", (Handler,), {"app": app})
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    server_class = type("BoundServer", (Server,), {"address_family": family})
    try:
        return server_class((host, port), handler)
    except OSError as exc:
        if exc.errno == 98 or "in use" in str(exc).lower():
            raise MultistyleError(f"--port: port {port} on {host} is already in use; choose another with "
                                  "--port N, or --port 0 for any free port") from None
        if exc.errno == 13:
            raise MultistyleError(f"--port: no permission to listen on port {port}; choose one above 1023") \
                from None
        raise MultistyleError(f"--host: cannot listen on {host}:{port} ({exc.strerror or exc})") from None


def serve(*, host: str, port: int, weights: str, device: str, max_pixels: int, max_upload: int,
          prepare: Callable[[], Tuple[Dict[str, Dict[str, Any]], str]], open_browser: bool = False,
          model: Optional[str] = None, arbitrary: bool = False) -> None:
    """Serve until Ctrl-C (or SIGTERM); the run is stopped and the uploads deleted on the way out.

    The port is taken first, so that a busy one is said at once; then ``prepare()`` gives the backends'
    table and the page, and the URL is printed when the page can be had."""
    folder = tempfile.mkdtemp(prefix="multistyle-serve-")
    try:
        app = App(weights=weights, device=device, max_pixels=max_pixels, max_upload=max_upload,
                  backends={}, page="", folder=folder, model=model, arbitrary=arbitrary)
        server = bind(host, port, app)
        try:
            app.backends, page = prepare()
            app.page = page.encode("utf-8")
            bound = server.server_address[1]
            if is_loopback(host):
                app.allowed_hosts = {f"{name}:{bound}" for name in ("127.0.0.1", "localhost", "[::1]",
                                                                     url_host(host))}
            url = f"http://{url_host(host)}:{bound}/"
            print(f"multistyle serve: {url}  (Ctrl-C stops)", flush=True)
            if open_browser:
                import webbrowser

                threading.Thread(target=webbrowser.open, args=(url,), daemon=True).start()
            server.serve_forever(poll_interval=0.2)
        finally:
            app.live.close()
            server.server_close()
    finally:
        shutil.rmtree(folder, ignore_errors=True)
