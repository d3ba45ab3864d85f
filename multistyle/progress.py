"""The progress bar of ``run``, ``compare``, ``bench`` and ``transfer(progress=True)``, built on tqdm.

tqdm gives the rate, the elapsed time and the ETA; the bar adds the current
losses.  The CLI enables it only when stderr is a terminal, so logs, CI and
pipes stay clean.  ``notebook=True`` uses ``tqdm.auto``: a widget in Jupyter
(where ipywidgets is installed), the same text bar elsewhere.
"""

from __future__ import annotations

import sys
from typing import Any, Dict, Optional, TextIO


class ProgressBar:
    """Epochs done out of ``total``, with the losses of the last one; silent when not ``enabled``."""

    def __init__(self, total: int, stream: Optional[TextIO] = None, enabled: bool = True, label: str = "",
                 notebook: bool = False, unit: str = "epoch", initial: int = 0) -> None:
        self.bar: Any = None
        if not enabled:
            return
        if notebook:
            from tqdm.auto import tqdm
        else:
            from tqdm import tqdm
        self.bar = tqdm(total=total, desc=label or None, unit=unit, file=stream or sys.stderr,
                        dynamic_ncols=True, mininterval=0.1, leave=True, initial=initial)

    def update(self, record: Dict[str, float]) -> None:
        if self.bar is None:
            return
        self.bar.set_postfix_str(f"total {record['total']:.4g}, content {record['content']:.3g}, "
                                 f"style {record['style']:.3g}, tv {record['tv']:.3g}", refresh=False)
        self.bar.update(int(record["epoch"]) - self.bar.n)

    def close(self) -> None:
        if self.bar is not None:
            self.bar.close()
            self.bar = None
