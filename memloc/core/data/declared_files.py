"""The files of declared datasets (memloc.core.data.declared): ImageFolder trees of images and .npz
arrays, read with every check that names the bad file, and ImageFolder trees written from
in-memory splits (the `export_from` of a declaration).

Readers return a Split: images uint8 [N, C, H, W] (numpy), labels int64 [N], class names.
`check_*` functions only list folders and read headers and labels (cheap enough for DAG
parse time); `read_*` decode everything and check every file.
"""

from __future__ import annotations

import os
import re
import shutil
import struct
import tempfile
import zipfile
import zlib
from pathlib import Path
from typing import NamedTuple

import numpy as np

# torchvision.datasets.folder.IMG_EXTENSIONS (not imported: torchvision is slow to import at parse time)
IMAGE_EXTENSIONS = (".jpg", ".jpeg", ".png", ".ppm", ".bmp", ".pgm", ".tif", ".tiff", ".webp")
# PIL mode -> the mode an image is decoded in: grayscale stays one channel, colour is RGB.
DECODE_MODES = {"1": "L", "L": "L", "LA": "L", "P": "RGB", "PA": "RGB", "RGB": "RGB", "RGBA": "RGB",
                "CMYK": "RGB", "YCbCr": "RGB"}
NPZ_ARRAYS = ("x_train", "y_train", "x_test", "y_test")


class DatasetError(ValueError):
    """Bad data; the message names the file or folder."""


class Split:
    """One split in memory: images uint8 [N, C, H, W], labels int64 [N], class names."""

    def __init__(self, images: np.ndarray, labels: np.ndarray, classes: list[str]):
        self.images, self.labels, self.classes = images, labels, classes


class ImageSpec(NamedTuple):
    """What one image file says of a dataset: channels, height, width, and the file."""

    channels: int
    height: int
    width: int
    path: Path


# -- ImageFolder: <root>/{train,test}/<class>/<image> ---------------------------------------

def class_folders(split_dir: Path) -> list[str]:
    """The class folders of train/ or test/, sorted (torchvision.datasets.ImageFolder's order)."""
    if not split_dir.is_dir():
        raise DatasetError(f"{split_dir}: folder missing (an imagefolder dataset has train/ and test/ folders, "
                           f"each with one folder of images per class)")
    classes = sorted(e.name for e in os.scandir(split_dir) if e.is_dir())
    if not classes:
        raise DatasetError(f"{split_dir}: no class folders")
    return classes


def _images(folder: Path):
    with os.scandir(folder) as entries:
        yield from (e.name for e in entries if e.is_file() and e.name.lower().endswith(IMAGE_EXTENSIONS))


def _empty(folder: Path) -> DatasetError:
    return DatasetError(f"{folder}: class folder with no images ({' '.join(IMAGE_EXTENSIONS)})")


def image_files(folder: Path) -> list[Path]:
    """The images of one class folder, sorted by name; none is an error."""
    names = sorted(_images(folder))
    if not names:
        raise _empty(folder)
    return [folder / n for n in names]


def check_imagefolder(root: Path) -> tuple[list[str], Path]:
    """Classes and one training image of an ImageFolder tree, from folder listings only:
    train/ and test/ have the same class folders and none is empty."""
    classes = class_folders(root / "train")
    test = class_folders(root / "test")
    if classes != test:
        raise DatasetError(f"{root}: train/ and test/ have different class folders (only in train/: "
                           f"{sorted(set(classes) - set(test))}; only in test/: {sorted(set(test) - set(classes))})")
    samples = []
    for folder in (root / split / c for split in ("train", "test") for c in classes):
        name = next(_images(folder), None)  # stops at the first image: no full listing
        if name is None:
            raise _empty(folder)
        samples.append(folder / name)
    return classes, samples[0]


def _open(path: Path):
    from PIL import Image, UnidentifiedImageError

    try:
        return Image.open(path)
    except (OSError, UnidentifiedImageError, SyntaxError, ValueError) as err:
        raise DatasetError(f"{path}: unreadable image ({err})") from err


def image_spec(path: Path) -> ImageSpec:
    """Channels and size of an image from its header."""
    with _open(path) as img:
        if img.mode not in DECODE_MODES:
            raise DatasetError(f"{path}: image mode {img.mode} is not supported (use 8-bit grayscale or colour)")
        return ImageSpec(1 if DECODE_MODES[img.mode] == "L" else 3, img.height, img.width, path)


def read_imagefolder(root: Path, train: bool) -> Split:
    """Decode a split of an ImageFolder tree; labels are the indices of the sorted class folders.

    Every image must have the size and channel count of the first training image."""
    classes, _ = check_imagefolder(root)
    ref = image_spec(image_files(root / "train" / classes[0])[0])
    paths = [f for c in classes for f in image_files(root / ("train" if train else "test") / c)]
    class_of = {root / s / c: i for s in ("train", "test") for i, c in enumerate(classes)}
    images = np.empty((len(paths), ref.height, ref.width, ref.channels), dtype=np.uint8)
    labels = np.array([class_of[p.parent] for p in paths], dtype=np.int64)
    for i, path in enumerate(paths):
        with _open(path) as img:
            mode = DECODE_MODES.get(img.mode)
            if mode is None:
                raise DatasetError(f"{path}: image mode {img.mode} is not supported (use 8-bit grayscale or colour)")
            if (img.height, img.width) != (ref.height, ref.width):
                raise DatasetError(f"{path}: {img.width}x{img.height} image, but {ref.path} is "
                                   f"{ref.width}x{ref.height}: all images of a dataset must have one size")
            if (mode == "L") != (ref.channels == 1):
                raise DatasetError(f"{path}: {img.mode} image, but {ref.path} has {ref.channels} channel(s): "
                                   f"all images of a dataset must be grayscale, or all colour")
            try:
                pixels = np.asarray(img if img.mode == mode else img.convert(mode))
            except (OSError, SyntaxError, ValueError) as err:  # truncated or corrupt image data
                raise DatasetError(f"{path}: unreadable image ({err})") from err
        images[i] = pixels.reshape(ref.height, ref.width, ref.channels)
    return Split(np.ascontiguousarray(images.transpose(0, 3, 1, 2)), labels, classes)


def class_folder_names(classes: list[str]) -> list[str]:
    """Folder names that sort in label order: zero-padded label, then the name's safe characters."""
    width = len(str(len(classes) - 1))
    return [f"{i:0{width}d}_{re.sub(r'[^A-Za-z0-9]+', '_', name).strip('_')}".rstrip("_")
            for i, name in enumerate(classes)]


def png_bytes(image: np.ndarray) -> bytes:
    """An 8-bit PNG of a uint8 image [H, W] (grayscale) or [H, W, 3] (RGB): each row with
    filter 0, deflated at level 1, or stored (level 0) up to 4 KiB, which a file's disk block
    holds either way (3-5x faster than PIL's encoder for small images)."""
    h, w = image.shape[:2]
    colour = 2 if image.ndim == 3 else 0
    rows = np.zeros((h, 1 + image[0].size), dtype=np.uint8)  # a leading 0 per row: filter "none"
    rows[:, 1:] = image.reshape(h, -1)

    def chunk(tag: bytes, data: bytes) -> bytes:
        return struct.pack(">I", len(data)) + tag + data + struct.pack(">I", zlib.crc32(tag + data))

    header = struct.pack(">IIBBBBB", w, h, 8, colour, 0, 0, 0)
    data = zlib.compress(rows.tobytes(), int(rows.size > 4096))
    return b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", header) + chunk(b"IDAT", data) + chunk(b"IEND", b"")


def write_imagefolder(root: Path, splits: dict[str, Split]) -> None:
    """Write splits ({"train": ..., "test": ...}) as PNG files <root>/<split>/<class>/<n>.png,
    n the example's position in the split (so each class folder keeps the split's order).

    Written into a temporary sibling folder, then renamed into place: a crash leaves no
    half-written tree, and a concurrent writer's copy is discarded."""
    root.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=f".{root.name}.tmp-", dir=root.parent))
    try:
        for split, data in splits.items():
            folders = [tmp / split / name for name in class_folder_names(data.classes)]
            for folder in folders:
                folder.mkdir(parents=True)
            digits = len(str(len(data.labels) - 1))
            pixels = data.images.transpose(0, 2, 3, 1)  # [N, H, W, C]
            if pixels.shape[-1] == 1:
                pixels = pixels[..., 0]
            for i, (img, label) in enumerate(zip(pixels, data.labels)):
                with open(folders[label] / f"{i:0{digits}d}.png", "wb") as f:
                    f.write(png_bytes(img))
        os.rename(tmp, root)
    except OSError:
        shutil.rmtree(tmp, ignore_errors=True)
        if not root.is_dir():  # not a concurrent writer that won the rename
            raise
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise


# -- .npz: x_train, y_train, x_test, y_test --------------------------------------------------

def npz_headers(path: Path) -> dict[str, tuple[tuple[int, ...], np.dtype]]:
    """{array: (shape, dtype)} of an .npz file, from the .npy headers (no data read)."""
    try:
        with zipfile.ZipFile(path) as zf:
            headers = {}
            for name in zf.namelist():
                with zf.open(name) as f:
                    version = np.lib.format.read_magic(f)
                    read = np.lib.format.read_array_header_1_0 if version == (1, 0) else \
                        np.lib.format.read_array_header_2_0
                    shape, _, dtype = read(f)
                headers[name.removesuffix(".npy")] = (shape, dtype)
            return headers
    except (OSError, zipfile.BadZipFile, ValueError) as err:
        raise DatasetError(f"{path}: unreadable .npz file ({err})") from err


def _load_array(path: Path, name: str) -> np.ndarray:
    try:
        with np.load(path, allow_pickle=False) as npz:
            return npz[name]
    except (OSError, ValueError, zipfile.BadZipFile) as err:
        raise DatasetError(f"{path}: cannot read array {name} ({err})") from err


def check_npz(path: Path) -> tuple[int, int, int, int]:
    """(classes, channels, height, width) of an .npz dataset, from headers and labels only.

    Checks: the four arrays exist; images are uint8 N x H x W or N x H x W x C (C 1 or 3), of
    one size in both splits; a label per image; integer labels, the training labels in
    0..K-1 (K = the largest + 1), the test labels among the training labels."""
    if not path.is_file():
        raise DatasetError(f"{path}: file missing")
    headers = npz_headers(path)
    missing = [a for a in NPZ_ARRAYS if a not in headers]
    if missing:
        raise DatasetError(f"{path}: missing arrays {missing} (an npz dataset holds {', '.join(NPZ_ARRAYS)})")
    shapes = {}
    for split in ("train", "test"):
        shape, dtype = headers[f"x_{split}"]
        if dtype != np.uint8 or len(shape) not in (3, 4) or (len(shape) == 4 and shape[3] not in (1, 3)):
            raise DatasetError(f"{path}: x_{split} is {dtype} of shape {shape}; images must be uint8 N x H x W, "
                               f"or N x H x W x C with C 1 or 3")
        shapes[split] = shape[1:3] + ((shape[3],) if len(shape) == 4 else (1,))
        y_shape, y_dtype = headers[f"y_{split}"]
        if len(y_shape) != 1 or y_shape[0] != shape[0] or not np.issubdtype(y_dtype, np.integer):
            raise DatasetError(f"{path}: y_{split} is {y_dtype} of shape {y_shape}; it must hold one integer label "
                               f"per image of x_{split} ({shape[0]})")
    if shapes["train"] != shapes["test"]:
        raise DatasetError(f"{path}: x_train images are {shapes['train']} (H, W, C) but x_test's are "
                           f"{shapes['test']}: all images of a dataset must have one size")
    y_train, y_test = _load_array(path, "y_train"), _load_array(path, "y_test")
    if not len(y_train):
        raise DatasetError(f"{path}: y_train is empty")
    if y_train.min() < 0:
        raise DatasetError(f"{path}: y_train has labels outside 0..K-1: {sorted(set(y_train[y_train < 0]))[:5]}")
    outside = ~np.isin(y_test, y_train)
    if outside.any():
        raise DatasetError(f"{path}: y_test has labels that no training example has: "
                           f"{sorted(set(y_test[outside]))[:5]}")
    h, w, c = shapes["train"]
    return int(y_train.max()) + 1, c, h, w


def read_npz(path: Path, train: bool) -> Split:
    """A split of an .npz dataset (check_npz's checks first)."""
    num_classes = check_npz(path)[0]
    split = "train" if train else "test"
    x, y = _load_array(path, f"x_{split}"), _load_array(path, f"y_{split}")
    images = x[:, None] if x.ndim == 3 else x.transpose(0, 3, 1, 2)
    return Split(np.ascontiguousarray(images), y.astype(np.int64), [str(c) for c in range(num_classes)])


def normalization_stats(images: np.ndarray) -> tuple[list[float], list[float]]:
    """Per-channel mean and std of uint8 images [N, C, H, W], in units of 255 (as
    torchvision's Normalize takes them), exact from a 256-bin histogram per channel."""
    values = np.arange(256) / 255
    mean, std = [], []
    for c in range(images.shape[1]):
        hist = np.bincount(images[:, c].ravel(), minlength=256)
        m = hist @ values / hist.sum()
        mean.append(float(m))
        std.append(float(np.sqrt(hist @ (values - m) ** 2 / hist.sum())))
    return mean, std
