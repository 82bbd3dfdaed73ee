"""Data on the device, no DataLoader (the cifar10-airbench way).

A split is a uint8 image tensor [N, 3, 32, 32] plus int64 labels, living on the training device.
A batch is an index slice of a permutation that is a pure function of (seed, epoch), so the batch of any
step can be rebuilt after a resume without saving sampler state. Conversion to float, normalisation with
the CIFAR-10 mean/std and the optional augmentation (random crop with 4-pixel padding, horizontal flip,
drawn from a generator seeded by (seed, step)) all happen on the device.

Sources of CIFAR-10 (`data.source`):
- npz: shards in the format of shared/data/cifar10 (train_1..5.npz, test.npz; README there), looked for
  at $BNOPT_DATA or `data.root`;
- torchvision: torchvision.datasets.CIFAR10 under `data.root` (download=True when `data.download`);
- auto: npz first, then torchvision;
- synthetic: a tiny learnable CIFAR-shaped set made in memory, for tests.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch

CIFAR_MEAN = (0.4914, 0.4822, 0.4465)
CIFAR_STD = (0.2470, 0.2435, 0.2616)
CIFAR_TRAIN_SIZE, CIFAR_TEST_SIZE = 50_000, 10_000
NPZ_TRAIN_FILES = tuple(f"train_{i}.npz" for i in range(1, 6))
NPZ_TEST_FILE = "test.npz"


class DataError(Exception):
    """Data is missing or malformed; the message is the one line shown to the user."""


@dataclass
class ImageSplit:
    x: torch.Tensor  # uint8 [N, 3, 32, 32]
    y: torch.Tensor  # int64 [N]
    exact: torch.Tensor | None = None  # bool [N]: image is bit-identical to the original (test.npz flag)

    def __len__(self) -> int:
        return len(self.y)

    def to(self, device) -> ImageSplit:
        ex = None if self.exact is None else self.exact.to(device)
        return ImageSplit(self.x.to(device), self.y.to(device), ex)

    def subset(self, idx: torch.Tensor) -> ImageSplit:
        ex = None if self.exact is None else self.exact[idx]
        return ImageSplit(self.x[idx], self.y[idx], ex)


# ----------------------------------------------------------------------------------------------- loading


def _check_images(x: np.ndarray, y: np.ndarray, name: str, num_classes: int = 10) -> None:
    if x.dtype != np.uint8 or x.ndim != 4 or x.shape[1:] != (32, 32, 3):
        raise DataError(f"{name}: expected x uint8 [N,32,32,3], got {x.dtype} {list(x.shape)}")
    if y.ndim != 1 or len(y) != len(x):
        raise DataError(f"{name}: expected y of shape [{len(x)}], got {list(y.shape)}")
    if not np.issubdtype(y.dtype, np.integer):
        raise DataError(f"{name}: labels must be integers, got {y.dtype}")
    if len(y) and (y.min() < 0 or y.max() >= num_classes):
        raise DataError(f"{name}: labels must lie in [0, {num_classes - 1}], got [{y.min()}, {y.max()}]")


def _read_npz(path: Path, expect_n: int) -> dict[str, np.ndarray]:
    try:
        with np.load(path, allow_pickle=False) as f:
            arrays = {k: f[k] for k in f.files}
    except Exception as e:  # zip/format errors: name the file
        raise DataError(f"{path}: not a readable .npz file ({type(e).__name__}: {e})") from None
    for key in ("x", "y"):
        if key not in arrays:
            raise DataError(f"{path}: missing array {key!r} (has {sorted(arrays)})")
    _check_images(arrays["x"], arrays["y"], str(path))
    if len(arrays["y"]) != expect_n:
        raise DataError(f"{path}: expected {expect_n} images, found {len(arrays['y'])}")
    return arrays


def _to_split(x_nhwc: np.ndarray, y: np.ndarray, exact: np.ndarray | None = None) -> ImageSplit:
    x = torch.from_numpy(np.ascontiguousarray(x_nhwc.transpose(0, 3, 1, 2)))
    ex = None if exact is None else torch.from_numpy(exact.astype(bool))
    return ImageSplit(x, torch.from_numpy(y.astype(np.int64)), ex)


def npz_root(cfg_root: str) -> Path:
    return Path(os.environ.get("BNOPT_DATA") or cfg_root)


def load_npz(root: Path) -> tuple[ImageSplit, ImageSplit]:
    """Read the shared/data/cifar10 format, validating every file."""
    if not root.is_dir():
        raise DataError(f"CIFAR-10 .npz directory {root} does not exist")
    missing = [f for f in (*NPZ_TRAIN_FILES, NPZ_TEST_FILE) if not (root / f).is_file()]
    if missing:
        raise DataError(f"{root}: missing {', '.join(missing)}")
    shards = [_read_npz(root / f, CIFAR_TRAIN_SIZE // 5) for f in NPZ_TRAIN_FILES]
    x = np.concatenate([s["x"] for s in shards])
    y = np.concatenate([s["y"] for s in shards])
    if "index" in shards[0]:  # restore the original order if the shards carry it
        order = np.argsort(np.concatenate([s["index"] for s in shards]), kind="stable")
        x, y = x[order], y[order]
    test = _read_npz(root / NPZ_TEST_FILE, CIFAR_TEST_SIZE)
    exact = test.get("exact")
    if exact is not None and exact.shape != test["y"].shape:
        raise DataError(f"{root / NPZ_TEST_FILE}: 'exact' must have shape [{CIFAR_TEST_SIZE}]")
    return _to_split(x, y), _to_split(test["x"], test["y"], exact)


def load_torchvision(root: Path, download: bool) -> tuple[ImageSplit, ImageSplit]:
    from torchvision.datasets import CIFAR10

    created = [p for p in (root, *root.parents) if not p.exists()]  # folders a failed download would leave
    try:
        train = CIFAR10(str(root), train=True, download=download)
        test = CIFAR10(str(root), train=False, download=download)
    except Exception as e:
        for folder in created:  # deepest first; only what we made and is still empty
            if folder.is_dir() and not any(folder.iterdir()):
                folder.rmdir()
        raise DataError(f"torchvision CIFAR10 under {root}: {type(e).__name__}: {e}") from None
    out = []
    for ds, n in ((train, CIFAR_TRAIN_SIZE), (test, CIFAR_TEST_SIZE)):
        x, y = np.asarray(ds.data), np.asarray(ds.targets)
        _check_images(x, y, f"torchvision CIFAR10 under {root}")
        if len(y) != n:
            raise DataError(f"torchvision CIFAR10 under {root}: expected {n} images, found {len(y)}")
        out.append(_to_split(x, y))
    return out[0], out[1]


def synthetic_images(n: int, seed: int, num_classes: int = 10) -> ImageSplit:
    """Learnable CIFAR-shaped images: each class is a fixed smooth colour pattern; samples add noise
    and a random shift, so a small convnet gets well above chance within a few dozen steps."""
    g = np.random.default_rng(seed)
    yy, xx = np.mgrid[0:32, 0:32] / 31.0
    protos = []
    pg = np.random.default_rng(0)  # class prototypes are the same for train and test
    for _ in range(num_classes):
        f = pg.uniform(0.5, 3.0, size=(3, 2))
        ph = pg.uniform(0, 2 * np.pi, size=3)
        protos.append(np.stack([np.sin(2 * np.pi * (f[c, 0] * xx + f[c, 1] * yy) + ph[c]) for c in range(3)]))
    protos = np.stack(protos)  # [K, 3, 32, 32] in [-1, 1]
    y = g.integers(0, num_classes, size=n)
    img = 0.5 + 0.3 * protos[y] + g.normal(0, 0.15, size=(n, 3, 32, 32))
    x = np.clip(img * 255, 0, 255).astype(np.uint8)
    return ImageSplit(torch.from_numpy(x), torch.from_numpy(y.astype(np.int64)))


def load_cifar10(cfg) -> tuple[ImageSplit, ImageSplit, str]:
    """(train, test, description of the source used), on the CPU. Raises DataError with one line."""
    source = cfg.source
    if source == "synthetic":
        train = synthetic_images(int(cfg.n_train), int(cfg.synthetic_seed))
        test = synthetic_images(int(cfg.n_test), int(cfg.synthetic_seed) + 1)
        return train, test, f"synthetic ({len(train)} train / {len(test)} test images)"
    root = npz_root(cfg.root)
    if source == "npz":
        return (*load_npz(root), f"npz shards in {root}")
    if source == "torchvision":
        return (*load_torchvision(Path(cfg.root), bool(cfg.download)), f"torchvision CIFAR10 in {cfg.root}")
    if source != "auto":
        raise DataError(f"unknown data.source {source!r}; choose auto, npz, torchvision or synthetic")
    tried = []
    if root.is_dir() and (root / NPZ_TEST_FILE).exists():
        return (*load_npz(root), f"npz shards in {root}")
    tried.append(f"npz shards in {root} (absent)")
    try:
        return (*load_torchvision(Path(cfg.root), bool(cfg.download)), f"torchvision CIFAR10 in {cfg.root}")
    except DataError as e:
        tried.append(str(e))
    raise DataError(
        "no CIFAR-10 found; tried: "
        + "; ".join(tried)
        + ". Point BNOPT_DATA at a folder of the .npz shards (e.g. BNOPT_DATA=../shared/data/cifar10 "
        "make reproduce) or allow the torchvision download (needs internet)."
    )


def gaussian_linear(n_samples: int, dim: int, seed: int) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """x ~ N(0, I_dim) [n, dim], A with i.i.d. N(0, 1) entries, y = A x. float32 (x, y, A)."""
    g = torch.Generator().manual_seed(seed)
    a = torch.randn(dim, dim, generator=g)
    x = torch.randn(n_samples, dim, generator=g)
    return x, x @ a.T, a


# ----------------------------------------------------------------------------------------------- batches


def epoch_permutation(n: int, seed: int, epoch: int) -> torch.Tensor:
    g = torch.Generator().manual_seed(seed * 1_000_003 + epoch)
    return torch.randperm(n, generator=g)


class Batches:
    """Batch of step t = slice of the permutation of epoch t // steps_per_epoch (last partial batch dropped)."""

    def __init__(self, n: int, batch_size: int, seed: int, device):
        self.n, self.batch_size, self.seed, self.device = n, batch_size, seed, device
        self.steps_per_epoch = max(1, n // batch_size)
        self._epoch, self._perm = -1, None

    def indices(self, step: int) -> torch.Tensor:
        epoch, k = divmod(step, self.steps_per_epoch)
        if epoch != self._epoch:
            self._epoch, self._perm = epoch, epoch_permutation(self.n, self.seed, epoch).to(self.device)
        return self._perm[k * self.batch_size : (k + 1) * self.batch_size]


class ImagePipeline:
    """uint8 -> normalised float on the device, with optional batched augmentation."""

    def __init__(self, mean, std, device, channels_last: bool, augment: bool, seed: int):
        self.mean = torch.tensor(mean, device=device).view(1, 3, 1, 1) * 255
        self.std = torch.tensor(std, device=device).view(1, 3, 1, 1) * 255
        self.device, self.channels_last, self.augment, self.seed = device, channels_last, augment, seed

    def __call__(self, x_uint8: torch.Tensor, step: int | None = None) -> torch.Tensor:
        if self.augment and step is not None:
            x_uint8 = self._augment(x_uint8, step)
        x = (x_uint8.float() - self.mean) / self.std
        return x.contiguous(memory_format=torch.channels_last) if self.channels_last else x

    def _augment(self, x: torch.Tensor, step: int) -> torch.Tensor:
        """Random crop (pad 4, reflect-free zero padding as torchvision's RandomCrop) and horizontal flip."""
        g = torch.Generator().manual_seed(self.seed * 7919 + step)
        n = x.shape[0]
        flip = torch.rand(n, generator=g) < 0.5
        dx = torch.randint(0, 9, (n,), generator=g)
        dy = torch.randint(0, 9, (n,), generator=g)
        padded = torch.nn.functional.pad(x, (4, 4, 4, 4))
        # gather the 32x32 window of each image with one advanced-indexing op
        ar = torch.arange(32)
        rows = (dy.view(n, 1) + ar.view(1, 32)).to(x.device)
        cols = (dx.view(n, 1) + ar.view(1, 32)).to(x.device)
        cols = torch.where(flip.to(x.device).view(n, 1), cols.flip(1), cols)
        idx_n = torch.arange(n, device=x.device).view(n, 1, 1, 1)
        idx_c = torch.arange(3, device=x.device).view(1, 3, 1, 1)
        return padded[idx_n, idx_c, rows.view(n, 1, 32, 1), cols.view(n, 1, 1, 32)]
