"""What a client sends, decoded and checked before the network sees it.

An input is a nested list of numbers of the network's input shape (pixels in [0, 1] for an image
model, token ids for a language model, values otherwise), or, for an image model, a base64 PNG or
JPEG, or, for a language model, a text. Uploaded image files are decoded with Pillow, converted to
the network's channels and resized like `netspec predict` does (`verbatim.readers.decode_image`).
Whatever does not fit is a `BadInput`: the HTTP status and a message that says what was wrong.
"""

from __future__ import annotations

import base64
import binascii
import io
from dataclasses import dataclass
from typing import Any

import numpy as np
import torch

from netspec.verbatim.readers import decode_image

MAX_PIXELS = 40_000_000  # an uploaded image larger than this (decoded) is refused before decoding
WHAT = {"U": "strings", "S": "strings", "b": "true/false values", "O": "null, objects or integers beyond 64 bits"}


class BadInput(Exception):
    """A request that cannot be answered: `status` (4xx), a message, and details for the JSON error."""

    def __init__(self, status: int, message: str, **details: Any) -> None:
        super().__init__(message)
        self.status = status
        self.message = message
        self.details = details


@dataclass(frozen=True)
class Expect:
    """What one input of the network is: its shape, whether it holds token ids (and how many there
    are), whether it is an image of pixels in [0, 1], and the characters of a language model."""

    network: str
    shape: tuple[int, ...]
    integer: bool = False
    image: bool = False
    rows: int | None = None  # token ids are 0 .. rows - 1
    vocab: tuple[str, ...] | None = None

    @property
    def grey(self) -> bool:
        return self.image and len(self.shape) == 3 and self.shape[0] == 1


def item(value: Any, index: int, expect: Expect) -> torch.Tensor:
    """One JSON input as a raw tensor of the input shape."""
    where = f"inputs[{index}]"
    if isinstance(value, str):
        return _string(value, where, expect)
    a = _shaped(_array(value, where), where, expect)
    return _ids(a, where, expect) if expect.integer else _floats(a, where, expect)


def image_file(data: bytes, where: str, expect: Expect) -> torch.Tensor:
    """An image file's bytes as pixels [C, H, W] in [0, 1], resized to the network's input."""
    if not expect.image or len(expect.shape) != 3 or expect.shape[0] not in (1, 3):
        raise BadInput(400, f"{expect.network} does not take images: send its input as JSON to /predict")
    from PIL import Image

    c, h, w = expect.shape
    try:
        with Image.open(io.BytesIO(data)) as im:
            width, height = im.size
        if width * height > MAX_PIXELS:
            raise BadInput(413, f"{where} is {width}x{height} pixels, more than {MAX_PIXELS:,}")
        pixels = decode_image(data, (h, w), c, Image)
    except BadInput:
        raise
    except Image.UnidentifiedImageError:
        raise BadInput(400, f"{where} is not an image: not a format Pillow reads (PNG, JPEG, ...)") from None
    except Exception as e:  # Pillow raises OSError, ValueError, SyntaxError, EOFError... for bytes it cannot read
        raise BadInput(400, f"{where} is not an image that can be read: {e}") from None
    return torch.from_numpy(pixels).float() / 255


def text_ids(text: str, where: str, expect: Expect, whole: bool = False) -> list[int]:
    """A text as token ids; unknown characters are a 422 that names them."""
    assert expect.vocab is not None
    index = {c: i for i, c in enumerate(expect.vocab)}
    unknown = sorted({c for c in text if c not in index})
    if unknown:
        shown = ", ".join(repr(c) for c in unknown[:8])
        raise BadInput(
            422, f"{where} has characters the model never saw: {shown}", known=len(expect.vocab), unknown=unknown[:8]
        )
    return [index[c] for c in text]


def _string(value: str, where: str, expect: Expect) -> torch.Tensor:
    if expect.vocab is not None:
        n = expect.shape[-1]
        if len(value) < n:
            raise BadInput(
                422, f"{where} has {len(value)} characters; {expect.network} reads {n} at a time", expected=n
            )
        return torch.tensor(text_ids(value[-n:], where, expect), dtype=torch.int64)
    if expect.image:
        return image_file(_base64(value, where), where, expect)
    raise BadInput(422, f"{where} is a string, but {expect.network} takes numbers of shape {list(expect.shape)}")


def _base64(value: str, where: str) -> bytes:
    payload = value.split(",", 1)[1] if value.startswith("data:") and "," in value else value
    try:
        return base64.b64decode(payload, validate=True)
    except (binascii.Error, ValueError):
        raise BadInput(400, f"{where} is a string but not base64 image data (a PNG or JPEG)") from None


def _array(value: Any, where: str) -> np.ndarray:
    if isinstance(value, bool) or not isinstance(value, (list, int, float)):
        raise BadInput(422, f"{where} is {_kind(value)}, not an array of numbers")
    try:
        a = np.asarray(value)
    except (ValueError, TypeError, RecursionError):
        raise BadInput(
            422, f"{where} is not a regular array: rows of different lengths, or nested too deeply"
        ) from None
    if a.dtype.kind not in "iuf":
        raise BadInput(422, f"{where} holds {WHAT.get(a.dtype.kind, 'values')}; an input holds numbers only")
    return a


def _kind(value: Any) -> str:
    return {dict: "an object", type(None): "null", bool: "true/false"}.get(type(value), type(value).__name__)


def _shaped(a: np.ndarray, where: str, expect: Expect) -> np.ndarray:
    shape = expect.shape
    if a.shape == shape:
        return a
    if expect.grey and a.shape == shape[1:]:
        return a.reshape(shape)
    grey = f" (or {list(shape[1:])} for a grey image)" if expect.grey else ""
    raise BadInput(
        422,
        f"{where} has shape {list(a.shape)}, but {expect.network} takes {list(shape)}{grey}",
        expected=list(shape),
        got=list(a.shape),
    )


def _floats(a: np.ndarray, where: str, expect: Expect) -> torch.Tensor:
    if not np.isfinite(a).all():
        raise BadInput(422, f"{where} holds a value that is not finite (NaN or infinity)")
    if expect.image and a.size and (a.min() < 0 or a.max() > 1):
        bad = float(a.min() if a.min() < 0 else a.max())
        raise BadInput(422, f"{where} has pixel value {bad:g}; pixels are in [0, 1] (divide 0-255 values by 255)")
    return torch.from_numpy(np.ascontiguousarray(a, dtype=np.float32))


def _ids(a: np.ndarray, where: str, expect: Expect) -> torch.Tensor:
    if a.dtype.kind == "f" and not (np.isfinite(a).all() and np.array_equal(a, np.round(a))):
        raise BadInput(422, f"{where} holds fractions, but {expect.network} takes token ids (integers)")
    rows = expect.rows
    if a.size and (a.min() < 0 or (rows is not None and a.max() >= rows)):
        bad = a.min() if a.min() < 0 else a.max()
        raise BadInput(422, f"{where} holds token id {int(bad)}; the ids are 0..{(rows or 1) - 1}", ids=rows)
    return torch.from_numpy(a.astype(np.int64))
