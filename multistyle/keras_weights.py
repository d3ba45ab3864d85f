"""Keras's VGG-19 weight files, read and written without TensorFlow: h5py, zipfile and NumPy.

Keras stores a VGG-19 in three ways: Keras 2's HDF5 layout (``save_weights('x.h5')``,
the model zoo's file, and inside a whole model saved as ``.h5``), Keras 3's
(``x.weights.h5``, and ``model.weights.h5`` inside a ``.keras`` archive).  Kernels
are HWIO.  Keras's VGG-19 expects Caffe's input (BGR, 0..255, the ImageNet means
subtracted: ``keras.applications.vgg19.preprocess_input``); multistyle feeds RGB
normalised by the ImageNet mean and std.  :func:`from_caffe_input` folds one into
the other in the first convolution.  A file multistyle wrote carries :data:`MARK`
and is not folded; any other is in Keras's convention.

Nothing here runs code from a file: no pickle, and a ``.keras`` archive's
``config.json`` (which can name Python objects) is never read.
"""

from __future__ import annotations

import io
import json
import re
import zipfile
from typing import Any, Dict, List, Sequence, Tuple

import numpy as np

from .errors import WeightsError
from .images import RGB_MEAN, RGB_STD
from .vgg import CONV_INDICES

#: The root attribute (HDF5) or archive member (``.keras``) that marks a file as holding multistyle's input convention.
MARK = "multistyle_input"
MARK_VALUE = "rgb, (x - imagenet mean) / imagenet std"
#: Keras's VGG-19 input: Caffe's BGR means, subtracted from 0..255 pixels (keras/applications/imagenet_utils.py).
CAFFE_BGR_MEAN = np.array([103.939, 116.779, 123.68], dtype=np.float64)

def from_caffe_input(kernel: np.ndarray, bias: np.ndarray) -> Tuple[np.ndarray, np.ndarray]:
    """The first convolution (HWIO kernel, bias) of a Keras VGG-19, folded from Caffe's input to multistyle's.

    Keras feeds ``255·p[bgr] − mean_bgr`` (``p`` in 0..1); multistyle feeds
    ``(p − mean) / std`` in RGB.  The kernel takes the channels in RGB order,
    scaled by ``255·std``, and the bias absorbs the difference of the means.
    Exact inside the image; at the one-pixel zero padding the two inputs differ
    by ``255·mean − mean_caffe``, at most 0.5 of 255.
    """
    k = kernel.astype(np.float64)[:, :, ::-1, :]  # BGR input channels -> RGB
    offset = 255.0 * RGB_MEAN.astype(np.float64) - CAFFE_BGR_MEAN[::-1]
    folded = k * (255.0 * RGB_STD.astype(np.float64))[None, None, :, None]
    return folded.astype(np.float32), (bias + np.einsum("hwio,i->o", k, offset)).astype(np.float32)


def mark(path: str) -> None:
    """Mark a Keras weights file (HDF5 or ``.keras``) as holding multistyle's input convention (:data:`MARK`)."""
    if path.lower().endswith(".keras"):
        with zipfile.ZipFile(path, "a") as archive:
            archive.writestr(MARK + ".json", json.dumps({MARK: MARK_VALUE}))
    else:
        with _h5py().File(path, "a") as f:
            f.attrs[MARK] = MARK_VALUE


def _natural(name: str) -> List[Any]:
    return [int(part) if part.isdigit() else part for part in re.split(r"(\d+)", name)]


def _kernels(f: Any) -> List[Tuple[np.ndarray, np.ndarray]]:
    """The (kernel, bias) pairs of the convolutions in an HDF5 weights file, in the network's order.

    Two layouts: Keras 2's (``layer_names`` at the root, ``weight_names`` per
    layer: what ``save_weights('x.h5')`` and the zoo write) and Keras 3's
    (``layers/<name>/vars/0, 1``: ``.weights.h5`` and inside ``.keras``).
    """
    pairs = []
    if "layer_names" not in f.attrs and isinstance(f.get("model_weights"), _h5py().Group):
        f = f["model_weights"]  # a whole model saved as .h5: its weights are in this group
    if "layer_names" in f.attrs:
        for layer in f.attrs["layer_names"]:
            group = f[layer.decode() if isinstance(layer, bytes) else layer]
            names = [n.decode() if isinstance(n, bytes) else str(n) for n in group.attrs.get("weight_names", [])]
            arrays = [np.asarray(group[n]) for n in names]
            if len(arrays) == 2 and arrays[0].ndim == 4:
                pairs.append((arrays[0], arrays[1]))
        return pairs
    layers = f.get("layers")
    if not isinstance(layers, _h5py().Group):
        raise WeightsError("no Keras layers in it (neither Keras 2's layer_names nor Keras 3's layers/)")
    for name in sorted(layers, key=_natural):
        stored = layers[name].get("vars")
        if isinstance(stored, _h5py().Group) and "0" in stored and "1" in stored and stored["0"].ndim == 4:
            pairs.append((np.asarray(stored["0"]), np.asarray(stored["1"])))
    return pairs


def keras_state_dict(pairs: Sequence[Tuple[np.ndarray, np.ndarray]], caffe_input: bool) -> Dict[str, np.ndarray]:
    """Keras convolutions (HWIO kernels) as ``features.{i}.weight|bias`` (OIHW), folded when in Caffe's input."""
    state: Dict[str, np.ndarray] = {}
    for number, (index, (kernel, bias)) in enumerate(zip(CONV_INDICES, pairs)):
        if number == 0 and caffe_input:
            kernel, bias = from_caffe_input(kernel, bias)
        state[f"features.{index}.weight"] = np.ascontiguousarray(np.transpose(kernel, (3, 2, 0, 1)), np.float32)
        state[f"features.{index}.bias"] = np.asarray(bias, np.float32)
    return state




def _h5py() -> Any:
    try:
        import h5py
    except ImportError:
        raise WeightsError("Keras weight files are HDF5: pip install h5py (or 'multistyle[tensorflow]')") from None
    return h5py


#: Keras's layer names for the convolutions of VGG-19 (``keras.applications.VGG19``), in order.
LAYER_NAMES = [f"block{block}_conv{conv}" for block, convs in enumerate((2, 2, 4, 4, 4), 1)
               for conv in range(1, convs + 1)]


def read(path: str) -> Dict[str, np.ndarray]:
    """A Keras VGG-19 file (``.h5``, ``.weights.h5``, ``.keras``) as ``features.{i}.weight|bias``, in multistyle's
    input convention."""
    h5py = _h5py()
    if path.lower().endswith(".keras"):
        with zipfile.ZipFile(path) as archive:
            names = archive.namelist()
            if "model.weights.h5" not in names:
                raise WeightsError(f"weights {path}: a .keras archive without model.weights.h5")
            marked = MARK + ".json" in names
            data = io.BytesIO(archive.read("model.weights.h5"))
        with h5py.File(data, "r") as f:
            return keras_state_dict(_kernels(f), caffe_input=not marked)
    with h5py.File(path, "r") as f:
        return keras_state_dict(_kernels(f), caffe_input=MARK not in f.attrs)


def write_h5(pairs: Sequence[Tuple[np.ndarray, np.ndarray]], path: str, keras_version: str) -> None:
    """HWIO (kernel, bias) pairs in Keras 2's layout, which Keras 2 and 3 both load from an ``.h5`` name, marked."""
    names = LAYER_NAMES[:len(pairs)]
    with _h5py().File(path, "w") as f:
        f.attrs["layer_names"] = [n.encode() for n in names]
        f.attrs["backend"], f.attrs["keras_version"] = b"tensorflow", keras_version.encode()
        f.attrs[MARK] = MARK_VALUE
        for name, (kernel, bias) in zip(names, pairs):
            group = f.create_group(name)
            group.attrs["weight_names"] = [f"{name}/kernel:0".encode(), f"{name}/bias:0".encode()]
            group.create_dataset(f"{name}/kernel:0", data=kernel)
            group.create_dataset(f"{name}/bias:0", data=bias)
