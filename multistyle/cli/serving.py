"""``multistyle serve``: the live page, on this machine's loopback address unless told otherwise."""

from __future__ import annotations

import argparse
import signal
import sys
from typing import Any, Dict, Tuple

from .. import images
from ..backend import parse_device
from ..errors import MultistyleError
from ..vgg import parse_weights_spec
from .common import backend_list


def add_serve_options(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--host", default="127.0.0.1",
                        help="address to listen on (default: %(default)s, this machine only); another address "
                             "lets anyone on that network use the page")
    parser.add_argument("--port", type=int, default=8000, help="port (default: %(default)s; 0: any free port)")
    parser.add_argument("--open", action="store_true", help="open the page in the default browser")
    parser.add_argument("--weights", default="imagenet", metavar="SPEC",
                        help="the VGG-19 every backend runs: imagenet (each framework's model zoo), random[:SEED] "
                             "(untrained), or a file, e.g. one converted by multistyle weights convert "
                             "(default: %(default)s)")
    parser.add_argument("--backends", default=None, metavar="NAMES",
                        help="comma-separated backends the page offers (default: every registered one)")
    parser.add_argument("--device", default="auto", help="auto, cpu, gpu or gpu:N (default: %(default)s)")
    parser.add_argument("--max-pixels", type=int, default=images.DEFAULT_MAX_PIXELS, metavar="N",
                        help="refuse uploaded images with more pixels than this (default: %(default)s)")
    parser.add_argument("--model", default=None, metavar="FILE",
                        help="also offer a trained style network (.safetensors or a PyTorch examples .pth): its one "
                             "pass races the optimisation, on the first backend chosen")
    parser.add_argument("--max-upload-mb", type=float, default=20.0, metavar="MB",
                        help="refuse uploads larger than this (default: %(default)s)")


def _terminate(signum: int, frame: Any) -> None:
    raise KeyboardInterrupt  # SIGTERM stops the server as Ctrl-C does: run stopped, uploads deleted


def cmd_serve(args: argparse.Namespace) -> int:
    from ..serve import backend_table
    from ..serve.page import render
    from ..serve.server import is_loopback, serve

    parse_device(args.device)
    parse_weights_spec(args.weights)
    if not 0 <= args.port <= 65535:
        raise MultistyleError(f"--port: expected 0 to 65535, got {args.port}")
    if args.max_pixels <= 0:
        raise MultistyleError(f"--max-pixels: expected a positive number, got {args.max_pixels}")
    if not args.max_upload_mb > 0:
        raise MultistyleError(f"--max-upload-mb: expected a positive number, got {args.max_upload_mb}")
    names = backend_list(args.backends) if args.backends is not None else []
    network, arbitrary = "", False
    if args.model:
        from ..nets.arbitrary import ArbitraryNetwork, encoder_spec
        from ..nets.stylize import load_model

        loaded = load_model(args.model, encoder_spec(args.model, args.weights))
        network, arbitrary = loaded.describe(), isinstance(loaded, ArbitraryNetwork)
    if not is_loopback(args.host):
        print(f"multistyle: warning: --host {args.host}: anyone who can reach this machine on that network can "
              "use the page, run jobs on it and upload images", file=sys.stderr)

    def prepare() -> Tuple[Dict[str, Dict[str, Any]], str]:
        print("multistyle serve: checking which backends are installed ...", file=sys.stderr, flush=True)
        backends = backend_table(names)
        return backends, render(backends, args.weights, network, arbitrary)

    signal.signal(signal.SIGTERM, _terminate)
    try:
        serve(host=args.host, port=args.port, weights=args.weights, device=args.device, max_pixels=args.max_pixels,
              max_upload=int(args.max_upload_mb * 2 ** 20), prepare=prepare, open_browser=args.open,
              model=args.model, arbitrary=arbitrary)
    except KeyboardInterrupt:
        pass
    print("multistyle serve: stopped; uploads deleted", file=sys.stderr)
    return 0
