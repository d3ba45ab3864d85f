"""Image input and output: decoding, colour modes, resizing, normalisation, atomic saving.

Everything a backend sees is prepared here once, in NumPy and Pillow, so that
all backends receive the same bytes: RGB, resized with Pillow's bilinear
filter (what torchvision's ``Resize`` does on PIL images), scaled to [0, 1],
normalised with the ImageNet mean and standard deviation, laid out NCHW as
float32.  Shapes are always written ``(height, width)``.
"""

from __future__ import annotations

import contextlib
import io
import os
import secrets
import warnings
from typing import IO, Iterator, List, Optional, Tuple

import numpy as np
from PIL import Image, ImageOps, UnidentifiedImageError

from .errors import MultistyleError, first_line

RGB_MEAN = np.array([0.485, 0.456, 0.406], dtype=np.float32)
RGB_STD = np.array([0.229, 0.224, 0.225], dtype=np.float32)

#: Default limit on decoded pixels (``--max-pixels``): large enough for a
#: 100-megapixel photo, small enough to stop a decompression bomb.
DEFAULT_MAX_PIXELS = 100_000_000

#: The raster formats accepted as input, by Pillow's names.  An explicit list,
#: so that a file that sniffs as EPS/PostScript (rendered by running
#: Ghostscript on it) or any other exotic plugin never reaches its decoder.
INPUT_FORMATS = ("PNG", "JPEG", "WEBP", "TIFF", "BMP", "GIF")

#: Output formats by file extension.
SAVE_FORMATS = {".png": "PNG", ".jpg": "JPEG", ".jpeg": "JPEG", ".webp": "WEBP",
                ".tif": "TIFF", ".tiff": "TIFF", ".bmp": "BMP"}

Size = Tuple[int, int]


def load_image(path: str, option: str = "image", max_pixels: int = DEFAULT_MAX_PIXELS,
               data: Optional[bytes] = None) -> Image.Image:
    """Open ``path`` as an upright 8-bit RGB image.

    Applies the EXIF orientation; turns grayscale, palette, CMYK and 16-bit
    images into RGB and composites transparent ones on white.  ``option``
    names the argument in error messages.  ``data``, when given, is the file's
    content, read elsewhere (``batch`` on a Ray cluster ships bytes, not
    paths); ``path`` then only names it in messages.
    """
    if data is None:
        if not os.path.exists(path):
            raise MultistyleError(f"{option}: file {path!r} does not exist")
        if os.path.isdir(path):
            raise MultistyleError(f"{option}: {path!r} is a directory, expected an image file")
        if os.path.getsize(path) == 0:
            raise MultistyleError(f"{option}: {path!r} is an empty file, expected an image")
    elif not data:
        raise MultistyleError(f"{option}: {path!r} is an empty file, expected an image")
    if max_pixels <= 0:
        raise MultistyleError(f"--max-pixels: expected a positive number, got {max_pixels}")
    previous = Image.MAX_IMAGE_PIXELS
    Image.MAX_IMAGE_PIXELS = max_pixels
    try:
        with warnings.catch_warnings():
            # Decoders warn about damaged metadata (corrupt EXIF, truncated TIFF
            # tags) while still decoding the pixels: not the user's concern.
            warnings.simplefilter("ignore")
            # Pillow warns between 1x and 2x the limit and raises above 2x;
            # make the limit a hard one.
            warnings.simplefilter("error", Image.DecompressionBombWarning)
            with Image.open(path if data is None else io.BytesIO(data), formats=INPUT_FORMATS) as image:
                image.load()
                image = to_rgb(ImageOps.exif_transpose(image))
    except (Image.DecompressionBombError, Image.DecompressionBombWarning):
        raise MultistyleError(
            f"{option}: {path!r} has more than {max_pixels} pixels; raise --max-pixels if you trust it") from None
    except UnidentifiedImageError:
        raise MultistyleError(f"{option}: {path!r} is not an image in a supported format "
                              f"({', '.join(INPUT_FORMATS)})") from None
    except MemoryError:
        raise MultistyleError(f"{option}: {path!r} is too large to decode in memory; lower --max-pixels") from None
    except Exception as exc:  # a damaged file: decoders raise OSError, SyntaxError, ValueError, struct.error, ...
        raise MultistyleError(f"{option}: cannot read image {path!r} ({first_line(exc) or type(exc).__name__})") from None
    finally:
        Image.MAX_IMAGE_PIXELS = previous
    return image


_INTEGER_GRAY = ("I;16", "I;16B", "I;16L", "I;16N", "I")
_WITH_ALPHA = ("RGBA", "LA", "PA", "La", "RGBa")


def to_rgb(image: Image.Image) -> Image.Image:
    """Convert any Pillow mode to 8-bit RGB; transparent pixels are composited on white."""
    if image.mode in _INTEGER_GRAY or image.mode == "F":
        # 16-bit, 32-bit integer or float grayscale: scale to 8 bits rather than clip.
        array = np.asarray(image, dtype=np.float64)
        if image.mode == "F":
            top = 1.0 if array.max() <= 1.0 else 255.0
        else:
            top = 65535.0 if image.mode.startswith("I;16") or array.max() > 255 else 255.0
        image = Image.fromarray(np.clip(np.round(array * (255.0 / top)), 0, 255).astype(np.uint8))
    if image.mode in _WITH_ALPHA or "transparency" in image.info:
        background = Image.new("RGBA", image.size, (255, 255, 255, 255))
        image = Image.alpha_composite(background, image.convert("RGBA"))
    return image if image.mode == "RGB" else image.convert("RGB")


def parse_size(text: str) -> Tuple[Optional[Size], Optional[int]]:
    """Parse ``--size``: ``HxW`` gives ``((H, W), None)``, ``N`` gives ``(None, N)`` (long edge)."""
    raw = str(text).strip().lower()
    parts = raw.split("x")
    try:
        numbers = [int(part) for part in parts]
    except ValueError:
        raise MultistyleError(f"--size: expected HxW (e.g. 300x450) or one number for the long edge, got {text!r}") from None
    if len(numbers) not in (1, 2):
        raise MultistyleError(f"--size: expected HxW (e.g. 300x450) or one number for the long edge, got {text!r}")
    if any(n <= 0 for n in numbers):
        raise MultistyleError(f"--size: sizes must be positive, got {text!r}")
    if len(numbers) == 2:
        return (numbers[0], numbers[1]), None
    return None, numbers[0]


def fit_long_edge(image_size_wh: Tuple[int, int], long_edge: int) -> Size:
    """``(H, W)`` with the longer side ``long_edge`` and the aspect ratio of a PIL ``(W, H)`` size."""
    width, height = image_size_wh
    scale = long_edge / max(width, height)
    return max(1, round(height * scale)), max(1, round(width * scale))


def preprocess(image: Image.Image, size: Size, normalize: bool = True) -> np.ndarray:
    """Resize to ``size`` = ``(H, W)``, scale to [0, 1] and normalise: a ``(1, 3, H, W)`` float32 array.

    With ``normalize=False`` the pixels stay in [0, 1] (the pixel-space presets).
    """
    return to_input(resize_pixels(image, size), normalize)


def resize_pixels(image: Image.Image, size: Size) -> np.ndarray:
    """``image`` resized to ``size`` = ``(H, W)`` (Pillow bilinear) as ``(H, W, 3)`` float32 in [0, 1]."""
    height, width = size
    resized = image.resize((width, height), Image.BILINEAR)
    return np.asarray(resized, dtype=np.float32) / np.float32(255.0)


def to_input(pixels: np.ndarray, normalize: bool = True) -> np.ndarray:
    """``(H, W, 3)`` floats in [0, 1] to the ``(1, 3, H, W)`` float32 array a backend receives."""
    array = np.asarray(pixels, dtype=np.float32)
    if normalize:
        array = (array - RGB_MEAN) / RGB_STD
    return np.ascontiguousarray(array.transpose(2, 0, 1)[None], dtype=np.float32)


def postprocess(array: np.ndarray, normalized: bool = True) -> np.ndarray:
    """Undo :func:`preprocess`: ``(1, 3, H, W)`` floats to ``(H, W, 3)`` uint8.

    Pixels are clipped to [0, 1] here; whether the optimisation clamps them
    too is the preset's ``clamp`` (the d2l chapter never does).
    """
    array = np.asarray(array, dtype=np.float32)
    if array.ndim == 4:
        array = array[0]
    rgb = array.transpose(1, 2, 0)
    if normalized:
        rgb = rgb * RGB_STD + RGB_MEAN
    return np.round(np.clip(rgb, 0.0, 1.0) * 255.0).astype(np.uint8)


def resize_array(array: np.ndarray, size: Size) -> np.ndarray:
    """Resize a ``(1, 3, h, w)`` float image to ``size`` = ``(H, W)``, channel by channel, bilinear (Pillow)."""
    height, width = size
    channels = [np.asarray(Image.fromarray(np.ascontiguousarray(channel, dtype=np.float32), mode="F")
                           .resize((width, height), Image.BILINEAR)) for channel in np.asarray(array)[0]]
    return np.stack(channels)[None].astype(np.float32)


def valid_range(normalized: bool = True) -> Tuple[np.ndarray, np.ndarray]:
    """The bounds of a valid image, ``(1, 3, 1, 1)`` each: [0, 1] per channel, normalised or not."""
    low, high = np.zeros(3, np.float32), np.ones(3, np.float32)
    if normalized:
        low, high = (low - RGB_MEAN) / RGB_STD, (high - RGB_MEAN) / RGB_STD
    return low.reshape(1, 3, 1, 1), high.reshape(1, 3, 1, 1)


def output_format(path: str, option: str = "--output") -> str:
    """The Pillow format an output path's extension names; refuse unknown extensions."""
    extension = os.path.splitext(path)[1].lower()
    if extension not in SAVE_FORMATS:
        raise MultistyleError(
            f"{option}: cannot tell the image format of {path!r}; use one of {', '.join(sorted(SAVE_FORMATS))}")
    return SAVE_FORMATS[extension]


def check_writable(path: str, option: str) -> None:
    """Refuse an output file that could not be written, before any long work.

    The folder must exist and accept a new file: a probe file is created and
    removed (permission bits alone do not tell, e.g. for root or a read-only
    mount).  ``path`` itself must not be a directory.
    """
    if os.path.isdir(path):
        raise MultistyleError(f"{option}: {path!r} is a directory, expected a file name")
    folder = os.path.dirname(os.path.abspath(path))
    if not os.path.isdir(folder):
        raise MultistyleError(f"{option}: folder {folder!r} does not exist; create it first")
    try:
        os.unlink(_new_temp_file(folder, "multistyle-probe", ""))
    except OSError as exc:
        raise MultistyleError(f"{option}: cannot write in folder {folder!r} ({exc.strerror or exc}); "
                              f"choose a writable folder") from None


def check_output_path(path: str, option: str = "--output") -> str:
    """Validate an image output path (format and writable folder); return the Pillow format."""
    image_format = output_format(path, option)
    check_writable(path, option)
    return image_format


def _new_temp_file(folder: str, base: str, extension: str, tried: Optional[List[str]] = None) -> str:
    """Create an empty, new file in ``folder`` and return its path.

    Opened with mode 0o666 so that the user's umask decides the permissions,
    as for any new file (``tempfile.mkstemp`` would make it 0o600 and the
    rename would carry that over to the output).
    """
    tried = [] if tried is None else tried
    while True:
        # The whole name last: a writer that looks at a compound suffix (Keras's ``.weights.h5``) sees it.
        temp = os.path.join(folder, f".tmp-{secrets.token_hex(4)}-{base}{extension}")
        tried.append(temp)  # before it exists: see atomic_path
        try:
            os.close(os.open(temp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o666))
            return temp
        except FileExistsError:
            tried.pop()  # somebody else's: never ours to remove
            continue


@contextlib.contextmanager
def atomic_path(path: str) -> Iterator[str]:
    """A temporary file name beside ``path``, renamed to ``path`` if the block succeeds.

    For writers that want a file name (``mx.nd.save``, ``paddle.save``).  The
    temporary name keeps the extension, which some writers look at.  A failure
    part way (an exception, Ctrl-C) leaves ``path`` untouched and no temporary
    file behind; an ``OSError`` (disk full, no permission) becomes a one-line
    :class:`MultistyleError` naming the file.
    """
    folder = os.path.dirname(os.path.abspath(path))
    base, extension = os.path.splitext(os.path.basename(path))
    temp = None
    try:
        # The name is known here before the file exists, so a Ctrl-C that lands between creating it
        # and returning from the creation still finds it to remove.
        tried: List[str] = []
        try:
            _new_temp_file(folder, base, extension, tried)
        finally:
            temp = tried[-1] if tried else None
        yield temp  # type: ignore[misc]
        os.replace(temp, path)  # type: ignore[arg-type]
    except BaseException as exc:
        if temp is not None:
            with contextlib.suppress(OSError):
                os.unlink(temp)
        if isinstance(exc, OSError):
            raise MultistyleError(f"cannot write {path!r} ({exc.strerror or exc}); "
                                  f"check the folder's permissions and free space") from None
        raise


@contextlib.contextmanager
def atomic_write(path: str) -> Iterator[IO[bytes]]:
    """A binary file handle whose content replaces ``path`` only if the block succeeds."""
    with atomic_path(path) as temp, open(temp, "wb") as handle:
        yield handle


def save_image(pixels: np.ndarray, path: str) -> None:
    """Save an ``(H, W, 3)`` uint8 array atomically; the format comes from the extension."""
    image_format = output_format(path)
    options = {"quality": 95} if image_format in ("JPEG", "WEBP") else {}
    with atomic_write(path) as handle:
        Image.fromarray(np.ascontiguousarray(pixels, dtype=np.uint8)).save(handle, format=image_format, **options)


class Picture:
    """What a result whose ``image`` is ``(H, W, 3)`` uint8 offers: :meth:`save`, and a picture in Jupyter."""

    image: np.ndarray

    def save(self, path: str) -> None:
        """Save the image atomically; the format follows the extension."""
        save_image(self.image, path)

    def _repr_png_(self) -> bytes:
        """The image, for Jupyter: a result shows itself as a picture in a notebook."""
        import io

        buffer = io.BytesIO()
        Image.fromarray(self.image).save(buffer, format="PNG")
        return buffer.getvalue()
