"""Data: the npz format and its validation, synthetic data, device batches, DLN data."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from bnopt.data import (
    CIFAR_MEAN,
    CIFAR_STD,
    Batches,
    DataError,
    ImagePipeline,
    gaussian_linear,
    load_cifar10,
    load_npz,
    synthetic_images,
)

from .conftest import make_cfg


def _shard_dir(tmp_path, cifar_dir):
    """A copy of the real shard folder made of symlinks, so one file can be replaced."""
    d = tmp_path / "cifar"
    d.mkdir()
    for f in cifar_dir.glob("*.npz"):
        (d / f.name).symlink_to(f)
    return d


def _replace(d, name, **arrays):
    (d / name).unlink()
    np.savez(d / name, **arrays)


@pytest.mark.e2e
def test_real_npz_loads_with_canonical_statistics(cifar_dir):
    train, test = load_npz(cifar_dir)
    assert train.x.shape == (50_000, 3, 32, 32) and train.x.dtype == torch.uint8
    assert test.x.shape == (10_000, 3, 32, 32) and test.exact.sum() == 1000
    assert torch.bincount(train.y).tolist() == [5000] * 10
    mean = train.x[:5000].float().mean((0, 2, 3)) / 255
    np.testing.assert_allclose(mean.numpy(), CIFAR_MEAN, atol=0.01)


@pytest.mark.e2e
@pytest.mark.parametrize(
    "bad, message",
    [
        (dict(x=np.zeros((10, 32, 32, 3), np.float32), y=np.zeros(10, np.uint8)), "expected x uint8"),
        (dict(x=np.zeros((10, 3, 32, 32), np.uint8), y=np.zeros(10, np.uint8)), "expected x uint8"),
        (dict(x=np.zeros((10, 32, 32, 3), np.uint8), y=np.full(10, 12, np.uint8)), "labels must lie in"),
        (dict(x=np.zeros((10, 32, 32, 3), np.uint8), y=np.zeros(10, np.uint8)), "expected 10000 images"),
        (dict(images=np.zeros(3)), "missing array 'x'"),
    ],
)
def test_bad_npz_file_is_named_in_the_error(tmp_path, cifar_dir, bad, message):
    d = _shard_dir(tmp_path, cifar_dir)
    _replace(d, "train_3.npz", **bad)
    with pytest.raises(DataError, match=message) as err:
        load_npz(d)
    assert "train_3.npz" in str(err.value)


@pytest.mark.e2e
def test_corrupt_and_missing_files(tmp_path, cifar_dir):
    d = _shard_dir(tmp_path, cifar_dir)
    (d / "test.npz").unlink()
    (d / "test.npz").write_bytes(b"not a zip")
    with pytest.raises(DataError, match="test.npz: not a readable .npz"):
        load_npz(d)
    (d / "train_5.npz").unlink()
    with pytest.raises(DataError, match="missing train_5.npz"):
        load_npz(d)
    with pytest.raises(DataError, match="does not exist"):
        load_npz(tmp_path / "nowhere")


def test_auto_source_reports_what_it_tried(tmp_path, monkeypatch):
    monkeypatch.delenv("BNOPT_DATA", raising=False)
    cfg = make_cfg([f"data.root={tmp_path}/cifar", "data.download=false"]).data
    with pytest.raises(DataError, match="no CIFAR-10 found; tried: npz shards in .* torchvision"):
        load_cifar10(cfg)


def test_synthetic_data_is_cifar_shaped_and_seeded():
    a, b = synthetic_images(100, 5), synthetic_images(100, 5)
    assert a.x.shape == (100, 3, 32, 32) and a.x.dtype == torch.uint8
    assert torch.equal(a.x, b.x) and torch.equal(a.y, b.y)
    assert not torch.equal(a.x, synthetic_images(100, 6).x)


def test_batches_are_a_seeded_permutation_per_epoch():
    batches = Batches(10, 3, seed=4, device="cpu")
    assert batches.steps_per_epoch == 3  # last partial batch dropped
    epoch0 = torch.cat([batches.indices(s) for s in range(3)])
    assert len(set(epoch0.tolist())) == 9
    again = Batches(10, 3, seed=4, device="cpu")
    assert torch.equal(again.indices(4), batches.indices(4))  # any step rebuilt without state
    assert not torch.equal(Batches(10, 3, seed=5, device="cpu").indices(0), batches.indices(0))


def test_pipeline_normalises_with_the_paper_statistics():
    pipe = ImagePipeline(CIFAR_MEAN, CIFAR_STD, "cpu", channels_last=True, augment=False, seed=0)
    x = torch.full((2, 3, 32, 32), 128, dtype=torch.uint8)
    out = pipe(x)
    want = (128 / 255 - torch.tensor(CIFAR_MEAN)) / torch.tensor(CIFAR_STD)
    torch.testing.assert_close(out[0, :, 0, 0], want)
    assert out.is_contiguous(memory_format=torch.channels_last)


def test_augmentation_crops_and_flips():
    pipe = ImagePipeline(CIFAR_MEAN, CIFAR_STD, "cpu", channels_last=False, augment=True, seed=0)
    x = torch.randint(0, 256, (64, 3, 32, 32), dtype=torch.uint8)
    a1, a2 = pipe._augment(x, 1), pipe._augment(x, 1)
    assert torch.equal(a1, a2) and a1.shape == x.shape
    # every augmented image is a (possibly flipped) shifted window of the zero-padded original
    padded = torch.nn.functional.pad(x, (4, 4, 4, 4))
    for i in range(8):
        found = any(
            torch.equal(a1[i], img[:, dy : dy + 32, dx : dx + 32])
            for img in (padded[i], padded[i].flip(2))
            for dy in range(9)
            for dx in range(9)
        )
        assert found
    assert not torch.equal(pipe._augment(x, 2), a1)


def test_gaussian_linear_data():
    x, y, a = gaussian_linear(1000, 10, seed=0)
    assert x.shape == (1000, 10) and y.shape == (1000, 10)
    torch.testing.assert_close(y, x @ a.T)
    assert abs(x.mean().item()) < 0.05 and abs(x.std().item() - 1) < 0.05
    assert torch.equal(gaussian_linear(1000, 10, 0)[2], a)
