"""The live page of ``multistyle serve``, rendered once at start-up by the one page renderer
(:mod:`multistyle.pages`), with the code side by side and the "same name, different maths" table from
:mod:`multistyle.explain`, as ``explain`` writes them.

Stable element ids, for the tests and for anyone scripting the page: ``content-file``, ``style-file``,
``mask-file``, ``mask-example`` and ``mask-none`` (the style's region, optional),
``backend-NAME`` (check boxes), ``size``, ``epochs``, ``preset``, ``optimizer``, ``style-loss``, ``parallel``, ``run``,
``stop``, ``status``, ``pane-NAME`` (each with an ``img``, a ``.pane-status``, a ``.losses``, a ``.speed``
and a ``download-NAME`` link), ``chart-epochs`` and ``chart-seconds``.
"""

from __future__ import annotations

import html
from typing import Any, Dict

from .. import explain, maths, pages
from ..errors import MultistyleError
from ..losses import STYLE_LOSSES
from ..optim import OPTIMIZERS
from ..settings import PRESETS, Settings
from .server import EPOCH_RANGE, SIZE_RANGE

#: The page's defaults: small enough that every installed backend finishes in a lesson's minute or two.
DEFAULT_SIZE, DEFAULT_EPOCHS = 150, 100

CSS = (
    "fieldset{display:inline-block;vertical-align:top;margin:4px 8px 8px 0;border:1px solid #ccc}"
    "fieldset label{display:block;margin:3px 0}.pick img{width:120px;height:90px;object-fit:contain;"
    "border:1px solid #ccc;display:block;margin-bottom:4px}.pick{display:inline-block;margin-right:12px;"
    "vertical-align:top}#status{margin:8px 0;min-height:1.3em}#status.error,.pane .error{color:#a00}"
    "#panes{display:flex;flex-wrap:wrap;gap:10px}.pane{border:1px solid #ccc;padding:8px;width:260px}"
    ".pane h3{margin:0 0 6px}.pane img{width:256px;min-height:64px;background:#f6f6f6;"
    "image-rendering:pixelated}.pane.off{opacity:.55}.pane .losses,.pane .speed{font-size:12px;"
    "font-family:monospace;white-space:pre-line}.reason{font-size:12px;color:#777}svg.chart{border:1px solid #ddd;margin:4px;"
    "background:#fff}button{font-size:15px;padding:4px 16px;margin-right:6px}"
)


def render(backends: Dict[str, Dict[str, Any]], weights: str, network: str = "", arbitrary: bool = False) -> str:
    """The whole page; ``backends`` maps each registered backend to its usable/version/reason; ``network``
    describes the trained style network offered beside them (``serve --model``), if any: with ``arbitrary``
    (an AdaIN network) one pass on every backend chosen, with the picked style and an alpha."""
    e = html.escape
    boxes, panes = [], []
    if network and arbitrary:
        boxes.append(f"<label><input type='checkbox' id='network' checked> AdaIN network (any style): one pass on "
                     f"each backend chosen, instead of optimising <span class='reason'>{e(network)}</span></label>"
                     "<label>alpha <input type='number' id='alpha' value='1' min='0' max='1' step='0.1'></label>")
    elif network:
        boxes.append(f"<label><input type='checkbox' id='network' checked> trained network, one pass on the first "
                     f"backend chosen <span class='reason'>{e(network)}</span></label>")
        panes.append("<section class='pane' id='pane-network' data-backend='network'><h3>trained network</h3>"
                     "<img alt='trained network image'><div class='pane-status'>ready</div><div class='losses'></div>"
                     "<div class='speed'></div><div class='error'></div>"
                     "<a id='download-network' class='download' hidden download>download the final image</a>"
                     "</section>")
    for name, row in backends.items():
        if row["usable"]:
            boxes.append(f"<label><input type='checkbox' id='backend-{e(name)}' value='{e(name)}' checked> "
                         f"{e(name)} <span class='reason'>{e(row['version'])}</span></label>")
        else:
            boxes.append(f"<label class='muted'><input type='checkbox' id='backend-{e(name)}' value='{e(name)}' "
                         f"disabled> {e(name)} <span class='reason'>unusable: {e(row['reason'])}</span></label>")
        panes.append(f"<section class='pane{'' if row['usable'] else ' off'}' id='pane-{e(name)}' "
                     f"data-backend='{e(name)}'><h3>{e(name)}</h3><img alt='{e(name)} image'>"
                     f"<div class='pane-status'>{'ready' if row['usable'] else 'unusable: ' + e(row['reason'])}"
                     f"</div><div class='losses'></div><div class='speed'></div><div class='error'></div>"
                     f"<a id='download-{e(name)}' class='download' hidden download>download the final image</a>"
                     "</section>")
    presets = "".join(f"<option{' selected' if p == Settings.preset else ''}>{e(p)}</option>" for p in PRESETS)
    optimizers = "<option value=''>the preset's</option>" + "".join(f"<option>{e(o)}</option>" for o in OPTIMIZERS)
    style_losses = "<option value=''>the preset's</option>" + "".join(f"<option>{e(o)}</option>" for o in STYLE_LOSSES)
    picks = "".join(
        f"<div class='pick'><b>{kind}</b><img id='{kind}-preview' src='/api/example/{kind}' alt='{kind} image'>"
        f"<input type='file' id='{kind}-file' accept='image/png,image/jpeg,image/webp,image/tiff,image/bmp,"
        f"image/gif'><br><button type='button' id='{kind}-example'>bundled example</button> "
        f"<span id='{kind}-name' class='reason'>example</span></div>" for kind in ("content", "style"))
    picks += ("<div class='pick'><b>mask</b> <span class='reason'>optional: white where the style applies</span>"
              "<img id='mask-preview' alt='mask image'><input type='file' id='mask-file' accept='image/png,"
              "image/jpeg,image/webp,image/tiff,image/bmp,image/gif'><br><button type='button' id='mask-example'>"
              "bundled example</button> <button type='button' id='mask-none'>none</button> "
              "<span id='mask-name' class='reason'>none</span></div>")
    controls = (
        "<p>Every framework optimises the same picture with the same weights "
        f"(<code>{e(weights)}</code>), live. Pick or upload two pictures, choose backends and press Run.</p>"
        f"<fieldset><legend>Pictures</legend>{picks}</fieldset>"
        f"<fieldset><legend>Backends</legend>{''.join(boxes)}</fieldset>"
        "<fieldset><legend>Job</legend>"
        f"<label>size (long edge, pixels) <input type='number' id='size' value='{DEFAULT_SIZE}' "
        f"min='{SIZE_RANGE[0]}' max='{SIZE_RANGE[1]}'></label>"
        f"<label>epochs <input type='number' id='epochs' value='{DEFAULT_EPOCHS}' min='{EPOCH_RANGE[0]}' "
        f"max='{EPOCH_RANGE[1]}'></label>"
        f"<label>preset <select id='preset'>{presets}</select></label>"
        f"<label>optimizer <select id='optimizer'>{optimizers}</select></label>"
        f"<label>style loss <select id='style-loss'>{style_losses}</select></label>"
        "<label><input type='checkbox' id='parallel'> all backends at once (their s/it then share the CPU)"
        "</label></fieldset>"
        "<div><button type='button' id='run'>Run</button><button type='button' id='stop' disabled>Stop</button>"
        "</div><div id='status' role='status'>connecting ...</div>")
    charts = ("<h2>Loss</h2><p>Total loss of every backend, against epochs and against seconds.</p>"
              "<svg class='chart' id='chart-epochs' width='560' height='300'></svg>"
              "<svg class='chart' id='chart-seconds' width='560' height='300'></svg>")
    try:
        code, css = explain.code_section(list(backends))
    except MultistyleError as exc:  # Pygments missing: the page works, without the code
        code, css = f"<p class='note'>The code side by side needs Pygments: {e(str(exc))}</p>", ""
    parts = [controls, "<h2>Backends</h2><div id='panes'>" + "".join(panes) + "</div>", charts,
             "<p>" + maths.WHY_PIXELS_DRIFT + "</p>", code, maths.maths_section(None)]
    return pages.page("multistyle serve", parts, CSS + css, scripts=["/app.js"])
