"""For teaching: how each framework says the same thing, and where the same name hides different maths.

Two parts, both in the ``compare`` report and on the page of
``multistyle explain --output DIR``:

- **How each framework says it**: for each operation of the backend protocol,
  each backend's own code side by side.  The code is read from the installed
  backend modules' source files (each backend's spec lists, in its ``explain`` table, which
  of its functions implement which operation), parsed with :mod:`ast`, never
  imported, so the page cannot go stale and needs no framework; it is
  highlighted offline by Pygments, and the page has no scripts.
- **Same name, different maths**: :mod:`multistyle.maths`'s table, the places
  where the chapter's code and a framework's defaults differ from what their
  names suggest, with the size of each difference measured on a job.
"""

from __future__ import annotations

import ast
import html
import importlib.util
import os
import textwrap
import time
from typing import Any, Callable, Dict, List, Optional, Sequence, Tuple

from . import images, pages
from .backend import registry, spec_of
from .errors import MultistyleError
from .maths import maths_section

#: The operations of the backend protocol, in teaching order, each with what it is for.
OPERATIONS: List[Tuple[str, str]] = [
    ("tensor from NumPy", "a float32 array from the core becomes a tensor on the backend's device"),
    ("the VGG-19 layers", "the network built layer by layer from the portable weights"),
    ("freezing the network", "no gradients for the weights: only the image is optimised"),
    ("recording gradients", "the loss and its gradient with respect to the image"),
    ("the optimizer step", "the framework's optimizer over one image tensor"),
    ("the learning-rate schedule", "the chapter's step decay: x0.8 every 50 epochs"),
    ("device placement", "cpu / gpu:N turned into the framework's device, and the devices it sees"),
    ("seeding", "the framework's random generator (the noise start image comes from NumPy)"),
    ("the style network's layers", "training a network (multistyle train): the three operations VGG-19 does not "
                                   "have, over parameter tensors that gradients flow to"),
    ("a training step", "the loss and its gradient with respect to every parameter of the network, compiled "
                        "where the framework gains by it"),
    ("the training optimizer", "Adam over the parameter mapping: one implementation, so that a checkpoint "
                               "made by one framework resumes on another"),
]


def _source_of(module: str, what: str) -> str:
    """The source file of ``module``, found without importing it; ``what`` names it in the error."""
    try:
        found = importlib.util.find_spec(module)
    except (ImportError, ValueError):
        found = None
    if found is None or not found.origin or not found.origin.endswith(".py"):
        raise MultistyleError(f"{what}: the source of {module} is not installed")
    return found.origin


def _module_file(name: str) -> Tuple[str, str]:
    """``(module name, source file)`` of backend ``name``, found without importing the module."""
    spec = registry().get(name)
    if spec is None:
        raise MultistyleError(f"unknown backend {name!r}")
    module = spec.target.split(":")[0]
    return module, _source_of(module, f"backend {name!r}")


def _definitions(tree: ast.Module) -> Dict[str, ast.AST]:
    """Module-level functions and classes, and the methods of those classes, by qualified name."""
    found: Dict[str, ast.AST] = {}
    for node in tree.body:
        if isinstance(node, (ast.FunctionDef, ast.ClassDef)):
            found[node.name] = node
        if isinstance(node, ast.ClassDef):
            for item in node.body:
                if isinstance(item, (ast.FunctionDef, ast.AsyncFunctionDef)):
                    found[f"{node.name}.{item.name}"] = item
    return found


class _Module:
    """One parsed source file: its text, its definitions and the path the page shows."""

    def __init__(self, module: str, path: str) -> None:
        with open(path, encoding="utf-8") as handle:
            self.source = handle.read()
        self.tree = ast.parse(self.source)
        self.definitions = _definitions(self.tree)
        self.shown = os.path.join(*module.split(".")) + ".py"

    def snippet(self, qualname: str) -> Optional[Dict[str, Any]]:
        node = self.definitions.get(qualname)
        if node is None:
            return None
        first = min([node.lineno] + [d.lineno for d in getattr(node, "decorator_list", [])])  # type: ignore[attr-defined]
        lines = self.source.splitlines()[first - 1:node.end_lineno]  # type: ignore[attr-defined]
        return {"qualname": qualname, "line": first, "file": self.shown, "code": textwrap.dedent("\n".join(lines))}


def backend_code(name: str) -> Dict[str, List[Dict[str, Any]]]:
    """For each operation, the snippets of backend ``name``: ``{"qualname", "line", "code", "file"}``.

    The backend's spec (its ``explain`` table) says which functions of its
    module implement which operation (``module:qualname`` for code that lives
    elsewhere: the core's optimizers, for a backend that uses them); a backend
    without one shows the protocol's methods its class defines (``asarray``, ``conv``, ...).
    """
    own = _Module(*_module_file(name))
    table: Dict[str, List[str]] = {op: list(names) for op, names in spec_of(name).explain.items()}
    if not table:
        owner = next((n.name for n in own.tree.body if isinstance(n, ast.ClassDef)
                      and any(isinstance(b, ast.Name) and b.id == "Backend" for b in n.bases)), "")
        fallback = {"tensor from NumPy": "asarray", "the VGG-19 layers": "conv",
                    "recording gradients": "loss_and_grad", "the optimizer step": "native_optimizer",
                    "device placement": "place", "seeding": "seed"}
        table = {op: [f"{owner}.{method}"] for op, method in fallback.items()
                 if f"{owner}.{method}" in own.definitions}
    others: Dict[str, _Module] = {}
    out: Dict[str, List[Dict[str, Any]]] = {}
    for operation, names in table.items():
        for qualname in names:
            where = own
            if ":" in qualname:
                module, qualname = qualname.split(":", 1)
                if module not in others:
                    others[module] = _Module(module, _source_of(module, f"backend {name!r}"))
                where = others[module]
            found = where.snippet(qualname)
            if found is not None:
                out.setdefault(operation, []).append(found)
    return out


def _pygments() -> Tuple[Callable[[str], str], str]:
    try:
        from pygments import highlight
        from pygments.formatters import HtmlFormatter
        from pygments.lexers import PythonLexer
    except ImportError:
        raise MultistyleError("the explain page highlights code with Pygments: pip install 'multistyle[report]'") \
            from None
    formatter = HtmlFormatter(cssclass="hl")
    return (lambda code: highlight(code, PythonLexer(), formatter)), formatter.get_style_defs(".hl")


def code_section(names: Sequence[str]) -> Tuple[str, str]:
    """``(HTML, CSS)``: the "how each framework says it" table for the backends ``names``."""
    highlight, css = _pygments()
    e = html.escape
    codes = {}
    for name in names:
        try:
            codes[name] = backend_code(name)
        except MultistyleError as exc:
            codes[name] = {"": [{"qualname": "", "line": 0, "file": "", "code": f"# {exc}"}]}
    parts = ["<h2 id='how'>How each framework says it</h2>",
             "<p>Each operation of multistyle's backend protocol, as each backend implements it. The code is "
             "read from the installed backend modules (their specs' <code>explain</code> tables say where each operation "
             "lives), so it is the code that ran. Everything else, the losses, the Gram matrices, the loop, "
             "the images, is written once in the core.</p>",
             "<table class='code'><tr><th>operation</th>" + "".join(f"<th>{e(n)}</th>" for n in names) + "</tr>"]
    for operation, what in OPERATIONS:
        parts.append(f"<tr><th>{e(operation)}<div class='what'>{e(what)}</div></th>")
        for name in names:
            snippets = codes[name].get(operation) or codes[name].get("", [])
            cell = "".join(f"<div class='where'>{e(s['file'])}:{s['line']} <code>{e(s['qualname'])}</code></div>"
                           + highlight(s["code"]) for s in snippets)
            parts.append(f"<td>{cell or '<i>not in this backend</i>'}</td>")
        parts.append("</tr>")
    parts.append("</table>")
    return "\n".join(parts), css


def write_page(folder: str, names: Sequence[str]) -> str:
    """``multistyle explain --output DIR``: the page alone; returns its path."""
    try:
        os.makedirs(folder, exist_ok=True)
    except OSError as exc:
        raise MultistyleError(f"--output: cannot create folder {folder!r} ({exc.strerror or exc})") from None
    code, css = code_section(names)
    page = pages.page("multistyle explain", [
        "<p>Generated " + time.strftime("%Y-%m-%d") + " from the installed backends: "
        + ", ".join(html.escape(n) for n in names) + ".</p>", code, maths_section(None)], css)
    path = os.path.join(folder, "index.html")
    with images.atomic_write(path) as handle:
        handle.write(page.encode("utf-8"))
    return path
