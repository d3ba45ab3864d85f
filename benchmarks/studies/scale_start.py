"""How the fine scale of ``--preset fast`` starts: its learning rate, and its starting image.

``--preset fast`` optimises a half-size image first (266 of its 400 epochs),
then the full size from the coarse result upsampled, with Adam restarted at
the preset's rate (0.3, ×0.8 every 30 epochs).  This runs the preset on one
backend four ways, each in a fresh process, and prints the full-size loss
after 10, 25, 50, 100 and all 133 of its epochs (an epoch costs the same in
every variant, so equal epochs are equal time):

* ``restart``: what runs now;
* ``carry``: the rate schedule carries on from where the coarse scale left
  it (0.3 × 0.8^8 = 0.05 at the switch) instead of restarting;
* ``carry, at least 0.1``: the same, with the carried rate held at 0.1 or more;
* ``content detail``: the fine start is the full-size content plus the coarse
  scale's *change* to the content, upsampled, instead of the coarse result
  upsampled (which blurs the content's own fine detail away).

The variants patch the loop from outside (the backend's ``optimizer`` and
``images.resize_array``); none is an option of multistyle.

    python benchmarks/studies/scale_start.py --backend torch --size 150x225
"""

from __future__ import annotations

import argparse
import os
import warnings
from typing import Any, Dict, List, Tuple

os.environ.setdefault("OMP_NUM_THREADS", str(len(os.sched_getaffinity(0))))

from multistyle.measure import call_isolated  # noqa: E402

EXAMPLES = os.path.join(os.path.dirname(os.path.abspath(__file__)), os.pardir, os.pardir, "examples")
VARIANTS = ("restart", "carry", "carry, at least 0.1", "content detail")
AT = (10, 25, 50, 100)


def _variant(name: str, variant: str, size: Tuple[int, int]) -> Dict[str, Any]:
    import multistyle
    from multistyle import images
    from multistyle.backend import get_backend

    B = get_backend(name, "cpu")
    content = images.load_image(os.path.join(EXAMPLES, "content.jpg"))
    done: List[int] = [0]
    native_optimizer, native_resize = B.optimizer, images.resize_array

    def optimizer(kind: str, image: Any, lr: float, decay: float, every: int, **options: Any) -> Any:
        if variant.startswith("carry") and done[0]:  # a later scale: the schedule goes on
            lr = lr * decay ** (done[0] // every)
            if variant == "carry, at least 0.1":
                lr = max(lr, 0.1)
        return native_optimizer(kind, image, lr, decay, every, **options)

    def resize(array: Any, shape: Tuple[int, int]) -> Any:
        if variant != "content detail":
            return native_resize(array, shape)
        coarse = images.preprocess(content, tuple(array.shape[-2:]))
        return images.preprocess(content, tuple(shape)) + native_resize(array - coarse, shape)

    B.optimizer = optimizer  # type: ignore[method-assign]
    images.resize_array = resize  # type: ignore[assignment]
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        result = multistyle.transfer(content, images.load_image(os.path.join(EXAMPLES, "style.jpg")), backend=B,
                                     weights="random:0", size=size, preset="fast",
                                     callback=lambda record, image: done.__setitem__(0, record["epoch"]))
    fine = [row for row in result.history if row.get("scale") == result.history[-1].get("scale")]
    return {"start": fine[0]["total"], "at": [fine[k - 1]["total"] for k in AT if k <= len(fine)],
            "final": fine[-1]["total"], "epochs": len(fine)}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--backend", default="torch")
    parser.add_argument("--size", default="150x225", help="HxW")
    args = parser.parse_args()
    size = tuple(int(v) for v in args.size.split("x"))
    print(f"{args.backend} {args.size}, --preset fast, random:0 weights; full-size total loss at its epochs "
          + ", ".join(str(k) for k in AT) + " and at the end")
    for variant in VARIANTS:
        found = call_isolated(_variant, args.backend, variant, size)
        print(f"{variant:22} start {found['start']:.4f}  " + "  ".join(f"{v:.4f}" for v in found["at"])
              + f"  final {found['final']:.4f} ({found['epochs']} epochs)", flush=True)


if __name__ == "__main__":
    main()
