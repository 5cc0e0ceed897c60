"""Fetch a published C-score file: download it, check it, and only then put it in place.

The check is a checksum where one is configured (sha256 and/or md5 of the published bytes)
plus the structure that memloc.atypical.cscores reads: an .npz with `scores` and `labels`,
or an .npy of bare scores; one score per training example, every score in [0, 1].  The
labels are compared with the dataset's later, by the job that reads the file (the dataset
may not be on the machine that downloads).  The file is written under a temporary name in
its own folder and renamed, so an interrupted or refused download leaves nothing behind.
"""

from __future__ import annotations

import hashlib
import os
import urllib.request
from pathlib import Path, PurePosixPath
from urllib.parse import urlparse

import numpy as np

from memloc.atypical.cscores import CScoreFileError

CHUNK = 1 << 20  # bytes read per step while downloading and hashing
# Examples in the training split of each memloc.core.data.builtin.DATASETS entry (torchvision's),
# which a published file must score one by one (a declared dataset's count is checked later,
# against its labels, by the job that reads the file).
SUFFIXES = (".npz", ".npy")  # scores + labels, or bare scores (memloc.atypical.cscores)


def url_suffix(url: str) -> str:
    """The file suffix of a URL's path ('.npz' of .../cifar10-cscores-orig-order.npz)."""
    return PurePosixPath(urlparse(url).path).suffix


def _download(url: str, tmp: Path, timeout: float) -> dict[str, str]:
    """Stream `url` into `tmp`; the sha256 and md5 hex digests of the bytes written."""
    digests = {"sha256": hashlib.sha256(), "md5": hashlib.md5()}
    with urllib.request.urlopen(url, timeout=timeout) as response, open(tmp, "wb") as f:
        while chunk := response.read(CHUNK):
            f.write(chunk)
            for h in digests.values():
                h.update(chunk)
    return {name: h.hexdigest() for name, h in digests.items()}


def check_cscore_structure(path: str | os.PathLike, n: int | None, where: str) -> None:
    """Refuse a file that memloc.atypical.cscores could not read as the scores of `n`
    training examples (None: any number; where: how the message names the file, e.g. its URL)."""
    try:
        z = np.load(path)
    except (ValueError, OSError, EOFError) as e:  # an HTML error page, a truncated file, a pickle
        raise CScoreFileError(f"{where}: not a NumPy .npy/.npz file ({e})") from e
    if isinstance(z, np.lib.npyio.NpzFile):
        with z:
            if "scores" not in z.files or "labels" not in z.files:
                raise CScoreFileError(f"{where}: expected arrays 'scores' and 'labels', found {sorted(z.files)}")
            scores, labels = z["scores"], z["labels"]
    else:
        scores = labels = z
    n = len(scores) if n is None and scores.ndim == 1 else n
    if scores.shape != (n,):
        raise CScoreFileError(f"{where}: scores of shape {scores.shape}; the training set has {n} examples")
    if labels is not scores and (labels.shape != (n,) or not np.issubdtype(labels.dtype, np.integer)):
        raise CScoreFileError(f"{where}: labels of shape {labels.shape} ({labels.dtype}); expected {n} integers")
    scores = np.asarray(scores, dtype=np.float64)
    outside = np.flatnonzero(~((scores >= 0) & (scores <= 1)))  # NaN is outside too
    if len(outside):
        raise CScoreFileError(f"{where}: {len(outside)} scores outside [0, 1] (first at {outside[:5].tolist()})")


def fetch_cscores(
    url: str,
    out: str | os.PathLike,
    n: int | None,
    sha256: str | None = None,
    md5: str | None = None,
    timeout: float = 120,
) -> Path:
    """Download the C-score file at `url` to `out`, checked (module docstring) against the
    given checksums and a training set of `n` examples (None: not known here).  Raises CScoreFileError (naming
    the URL and `out`) and leaves `out` absent when a check fails."""
    out = Path(out)
    out.parent.mkdir(parents=True, exist_ok=True)
    tmp = out.with_name(f".{out.stem}.part{out.suffix}")  # keeps the suffix: np.load reads .npz by content
    where = f"{url} (-> {out})"
    try:
        try:
            got = _download(url, tmp, timeout)
        except OSError as e:  # urllib.error.URLError included
            raise OSError(
                f"{where}: download failed ({e}); run rule fetch_cscores where the internet can be reached, "
                f"or put the file at {out} by hand"
            ) from e
        for name, want in (("sha256", sha256), ("md5", md5)):
            if want and got[name] != want.lower():
                raise CScoreFileError(f"{where}: {name} {got[name]} differs from the configured {want}")
        check_cscore_structure(tmp, n, where)
        os.replace(tmp, out)
    finally:
        tmp.unlink(missing_ok=True)
    return out
