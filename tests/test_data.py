"API-level, property-based and error-path tests of mixup_lab.data."
import numpy as np
import pytest
import torch
from hypothesis import given, settings, strategies as st
from PIL import Image

from mixup_lab.data import (CORRUPTIONS, CorruptedDataset, Cutout, TwoViews, cifar, cifar_transforms, corrupt,
                            digits, half_moons, helix, image_folder, loader)


@pytest.fixture(scope="module")
def digit_split():
    return digits(seed=0)


def test_digits_shapes_and_split(digit_split):
    train, test = digit_split
    (x, y), (xt, yt) = train.tensors, test.tensors
    assert len(train) + len(test) == 1797
    assert x.shape[1:] == (1, 8, 8) and x.dtype == torch.float32 and y.dtype == torch.int64
    assert 0 <= x.min() and x.max() <= 1 and x.max() == 1
    # stratified: class shares in train and test agree to within one image per class
    share = torch.bincount(y, minlength=10) / len(y) - torch.bincount(yt, minlength=10) / len(yt)
    assert share.abs().max() < 0.01
    # train and test partition the data set: together they hold every class count of the full set
    from sklearn.datasets import load_digits
    full = torch.bincount(torch.from_numpy(load_digits().target), minlength=10)
    assert torch.equal(torch.bincount(y, minlength=10) + torch.bincount(yt, minlength=10), full)
    assert len(test) == int(np.ceil(1797 * 0.3))


@settings(deadline=None, max_examples=10)
@given(st.integers(1, 30), st.integers(0, 1000))
def test_digits_per_class(k, seed):
    train, test = digits(per_class=k, seed=seed)
    assert torch.bincount(train.tensors[1], minlength=10).tolist() == [k] * 10
    again, _ = digits(per_class=k, seed=seed)
    assert torch.equal(again.tensors[0], train.tensors[0])
    full, _ = digits(seed=seed)  # the subset is drawn from the same training split
    flat = full.tensors[0].flatten(1)
    assert all((flat == row).all(1).any() for row in train.tensors[0].flatten(1)[:5])


@pytest.mark.parametrize("kwargs, match", [
    (dict(per_class=0), "per_class must be an int >= 1"),
    (dict(per_class=1000), "per_class must be at most"),
    (dict(test_size=0.0), r"test_size must lie in the open interval \(0, 1\)"),
    (dict(test_size=1.2), r"test_size must lie in the open interval \(0, 1\)"),
])
def test_digits_errors(kwargs, match):
    with pytest.raises(ValueError, match=match): digits(**kwargs)


def test_half_moons_and_helix():
    X, y = half_moons(100, noise=0.05, seed=1)
    assert X.shape == (100, 2) and X.dtype == torch.float32 and y.dtype == torch.int64
    assert torch.equal(X, half_moons(100, noise=0.05, seed=1)[0])
    H, t = helix(500, turns=2.0, seed=3)
    assert H.shape == (500, 3) and t.shape == (500,) and H.dtype == t.dtype == torch.float32
    torch.testing.assert_close(H[:, 0], torch.cos(2 * torch.pi * 2.0 * t.double()).float(), atol=1e-5, rtol=0)
    assert 0 <= t.min() and t.max() <= 1
    Hn, tn = helix(500, turns=2.0, noise=0.1, seed=3)
    assert torch.equal(tn, t) and not torch.equal(Hn, H)
    with pytest.raises(ValueError, match="noise"): half_moons(10, noise=-0.1)
    with pytest.raises(ValueError, match="n must be an int >= 1"): helix(0)


@settings(deadline=None, max_examples=30)
@given(st.integers(1, 12), st.integers(1, 20), st.integers(1, 20), st.integers(0, 2**31 - 1))
def test_cutout_square(size, h, w, seed):
    out = Cutout(size, torch.Generator().manual_seed(seed))(torch.ones(2, h, w))
    hole = (out == 0).all(0)
    assert out.shape == (2, h, w) and ((out == 0) | (out == 1)).all()
    assert 1 <= hole.sum() <= size * size
    rows, cols = hole.nonzero().unbind(1)
    assert hole.sum() == (rows.max() - rows.min() + 1) * (cols.max() - cols.min() + 1)  # one rectangle
    assert rows.max() - rows.min() + 1 <= size and cols.max() - cols.min() + 1 <= size


def test_cutout_batch_and_errors():
    g = lambda: torch.Generator().manual_seed(0)
    batch = Cutout(3, g())(torch.ones(32, 3, 8, 8))
    assert torch.equal(batch, Cutout(3, g())(torch.ones(32, 3, 8, 8)))
    holes = (batch == 0).all(1).flatten(1)
    assert len({tuple(h.tolist()) for h in holes}) > 1  # one centre per image
    with pytest.raises(ValueError, match="size must be an int >= 1"): Cutout(0)
    with pytest.raises(ValueError, match=r"\(C, H, W\)"): Cutout(3)(torch.ones(8, 8))


def test_cifar_missing_folder(tmp_path):
    with pytest.raises(FileNotFoundError, match="cifar-10-batches-py") as info:
        cifar("cifar10", root=tmp_path)
    assert "download=True" in str(info.value) and str(tmp_path) in str(info.value)
    with pytest.raises(FileNotFoundError, match="cifar-100-python"): cifar("cifar100", root=tmp_path, train=False)
    with pytest.raises(ValueError, match=r"\['cifar10', 'cifar100'\]"): cifar("svhn", root=tmp_path)


def test_cifar_transforms():
    pil = Image.fromarray(np.random.default_rng(0).integers(0, 256, (32, 32, 3), dtype=np.uint8))
    x = cifar_transforms("cifar10", train=True)(pil)
    assert x.shape == (3, 32, 32) and x.dtype == torch.float32
    clean = cifar_transforms("cifar100", train=False, normalize=False)(pil)
    assert 0 <= clean.min() and clean.max() <= 1
    steps = [type(t).__name__ for t in cifar_transforms("cifar100", train=True, cutout=True).transforms]
    assert steps == ["RandomCrop", "RandomHorizontalFlip", "ToTensor", "Normalize", "Cutout"]
    steps = [type(t).__name__ for t in cifar_transforms(train=False, cutout=True).transforms]
    assert steps == ["ToTensor", "Normalize"]


def _tiny_folder(root, splits=("train", "val"), classes=("a", "b", "c")):
    rng = np.random.default_rng(0)
    for split in splits:
        for c in classes:
            (root / split / c).mkdir(parents=True)
            for i in range(2):
                Image.fromarray(rng.integers(0, 256, (20 + i, 30, 3), dtype=np.uint8)).save(root / split / c / f"{i}.png")


def test_image_folder(tmp_path):
    _tiny_folder(tmp_path)
    train = image_folder(tmp_path, "train", image_size=16)
    assert len(train) == 6 and train.classes == ["a", "b", "c"]
    x, y = train[3]
    assert x.shape == (3, 16, 16) and y == 1
    val = image_folder(tmp_path, "val", image_size=12, normalize=False)
    a, b = val[0][0], val[0][0]
    assert a.shape == (3, 12, 12) and torch.equal(a, b)  # evaluation transform is deterministic
    with pytest.raises(FileNotFoundError, match="ROOT/train/CLASS"): image_folder(tmp_path, "test")
    with pytest.raises(FileNotFoundError, match="does not exist"): image_folder(tmp_path / "missing")
    with pytest.raises(ValueError, match=r"\['train', 'val', 'test'\]"): image_folder(tmp_path, "dev")
    with pytest.raises(ValueError, match="image_size"): image_folder(tmp_path, image_size=0)


images = st.tuples(st.integers(1, 4), st.sampled_from([1, 3]), st.integers(4, 12), st.integers(0, 2**31 - 1))


@settings(deadline=None, max_examples=50)
@given(images, st.sampled_from(CORRUPTIONS), st.integers(1, 5))
def test_corrupt_range_shape_determinism(spec, name, severity):
    b, c, side, seed = spec
    x = torch.rand(b, c, side, side, generator=torch.Generator().manual_seed(seed))
    out = corrupt(x, name, severity, torch.Generator().manual_seed(seed + 1))
    assert out.shape == x.shape and out.dtype == x.dtype
    assert 0 <= out.min() and out.max() <= 1
    assert torch.equal(out, corrupt(x, name, severity, torch.Generator().manual_seed(seed + 1)))
    assert torch.equal(corrupt(x[0], name, severity, torch.Generator().manual_seed(0)),
                       corrupt(x[:1], name, severity, torch.Generator().manual_seed(0))[0])


@settings(deadline=None, max_examples=20)
@given(st.sampled_from(CORRUPTIONS), st.integers(0, 2**31 - 1))
def test_corrupt_severity_monotone(name, seed):
    # on average over a batch, a stronger corruption moves the images further from the clean ones
    x = torch.rand(16, 3, 16, 16, generator=torch.Generator().manual_seed(seed)) * 0.8 + 0.1
    dist = [(corrupt(x, name, s, torch.Generator().manual_seed(seed)) - x).abs().mean().item() for s in range(1, 6)]
    assert dist[0] > 0
    assert all(a <= b + 1e-6 for a, b in zip(dist, dist[1:])), dist


def test_corrupt_dtypes_and_errors():
    x = torch.rand(2, 3, 8, 8)
    for dtype in (torch.float16, torch.bfloat16, torch.float64):
        assert corrupt(x.to(dtype), "gaussian_noise", 2).dtype == dtype
    with pytest.raises(ValueError, match="name must be one of .*gaussian_noise.*contrast"): corrupt(x, "fog", 1)
    for bad in (0, 6):
        with pytest.raises(ValueError, match=r"severity must be an int in 1\.\.5, got"): corrupt(x, "contrast", bad)
    for bad in (2.5, True):  # core.check_int: a value of the wrong type is a TypeError
        with pytest.raises(TypeError, match=r"severity must be an int in 1\.\.5, got"): corrupt(x, "contrast", bad)
    with pytest.raises(ValueError, match="floating-point"): corrupt((x * 255).byte(), "contrast", 1)
    with pytest.raises(ValueError, match=r"\(C, H, W\)"): corrupt(x[0, 0], "contrast", 1)
    assert {"gaussian_noise", "shot_noise", "gaussian_blur", "contrast"} <= set(CORRUPTIONS)


def test_corrupted_dataset(digit_split):
    _, test = digit_split
    ds = CorruptedDataset(test, "shot_noise", 4, seed=3)
    assert len(ds) == len(test)
    items = [ds[i][0] for i in range(6)]
    again = [ds[i][0] for i in reversed(range(6))][::-1]
    assert all(torch.equal(a, b) for a, b in zip(items, again))
    batched = torch.cat([xb for xb, _ in loader(ds, 4, shuffle=False)][:2])[:6]  # same items through a loader
    assert torch.equal(batched, torch.stack(items))
    assert not torch.equal(ds[0][0], CorruptedDataset(test, "shot_noise", 4, seed=4)[0][0])
    normed = CorruptedDataset(test, "contrast", 2, normalize=lambda x: 2 * x - 1)
    torch.testing.assert_close(normed[1][0], 2 * corrupt(test[1][0], "contrast", 2) - 1)
    assert normed[1][1] == test[1][1]
    with pytest.raises(ValueError, match="name must be one of"): CorruptedDataset(test, "snow", 1)
    with pytest.raises(ValueError, match="severity"): CorruptedDataset(test, "contrast", 9)
    with pytest.raises(TypeError, match="normalize must be callable"): CorruptedDataset(test, "contrast", 1, normalize=3)


def test_two_views(digit_split):
    train, _ = digit_split
    (aug, clean), y = TwoViews(train, lambda x: 1 - x)[5]
    assert torch.equal(aug, 1 - train[5][0]) and torch.equal(clean, train[5][0]) and y == train[5][1]
    (a, b), _ = TwoViews(train)[0]
    assert torch.equal(a, b) and len(TwoViews(train)) == len(train)
    (xa, xc), yb = next(iter(loader(TwoViews(train, lambda x: x.flip(-1)), 16)))
    assert xa.shape == xc.shape == (16, 1, 8, 8) and torch.equal(xa, xc.flip(-1)) and yb.shape == (16,)
    with pytest.raises(TypeError, match="augment must be callable"): TwoViews(train, augment=1)


def test_loader_seeded(digit_split):
    train, _ = digit_split
    order = lambda s: torch.cat([y for _, y in loader(train, 50, True, torch.Generator().manual_seed(s))])
    assert torch.equal(order(0), order(0)) and not torch.equal(order(0), order(1))
    assert all(len(y) == 50 for _, y in loader(train, 50, drop_last=True))
    with pytest.raises(ValueError, match="shuffle must be False"): loader(train, 8, True, sampler=range(8))
    with pytest.raises(ValueError, match="batch_size must be an int >= 1"): loader(train, 0)
    with pytest.raises(TypeError, match="generator must be a torch.Generator"): loader(train, 8, generator=0)


# ---------------------------------------------------------------- normalisation options, stand-in datasets, verify
from mixup_lab.data import (CIFAR10_CLASSES, CIFAR10_MEAN, CIFAR10_STD, IMAGENET_MEAN, IMAGENET_STD, cutout_mask,
                            normalization_stats, write_cifar, write_image_folder)


def test_cifar_transforms_normalize_options_and_cutout_order():
    pil = Image.fromarray(np.random.default_rng(1).integers(0, 256, (32, 32, 3), dtype=np.uint8))
    raw = cifar_transforms("cifar10", train=False, normalize=False)(pil)
    for option, (mean, std) in (("cifar", (CIFAR10_MEAN, CIFAR10_STD)), (True, (CIFAR10_MEAN, CIFAR10_STD)),
                                ("imagenet", (IMAGENET_MEAN, IMAGENET_STD))):
        x = cifar_transforms("cifar10", train=False, normalize=option)(pil)
        torch.testing.assert_close(x, (raw - torch.tensor(mean).view(3, 1, 1)) / torch.tensor(std).view(3, 1, 1))
    names = lambda **kw: [type(t).__name__ for t in cifar_transforms("cifar100", **kw).transforms]
    assert names(cutout=True) == ["RandomCrop", "RandomHorizontalFlip", "ToTensor", "Normalize", "Cutout"]
    assert names(cutout=True, cutout_before_normalize=True) == ["RandomCrop", "RandomHorizontalFlip", "ToTensor", "Cutout", "Normalize"]
    assert names(cutout=True, normalize=False) == ["RandomCrop", "RandomHorizontalFlip", "ToTensor", "Cutout"]
    # before normalising the hole is black (-mean/std afterwards); after, it is 0 (the mean)
    torch.manual_seed(0)
    before = cifar_transforms("cifar10", augment=False, cutout=True, normalize="imagenet", cutout_before_normalize=True)(pil)
    black = (-torch.tensor(IMAGENET_MEAN) / torch.tensor(IMAGENET_STD)).view(3, 1, 1)
    hole = torch.isclose(before, black.expand_as(before), atol=1e-6).all(0)
    assert hole.sum() >= 64
    with pytest.raises(ValueError, match=r"normalize must be one of \['cifar', 'imagenet', False\]"):
        cifar_transforms(normalize="svhn")
    with pytest.raises(TypeError, match="cutout_before_normalize must be True or False"):
        cifar_transforms(cutout_before_normalize=1)
    assert normalization_stats("cifar100", "imagenet") == (IMAGENET_MEAN, IMAGENET_STD)


def test_cutout_mask_matches_the_cutout_transform():
    centres = torch.tensor([[0, 0], [5, 7], [9, 9]])
    m = cutout_mask(centres, 4, 10, 10)
    assert m.sum(dim=(1, 2)).tolist() == [4, 16, 9]  # top-left: rows/cols 0..1; whole; bottom-right: rows/cols 7..9
    assert m[1, 3:7, 5:9].all() and m[1].sum() == 16
    g = torch.Generator().manual_seed(2)  # Cutout draws the rows of the centres, then the columns
    drawn = torch.stack([torch.randint(10, (6,), generator=g), torch.randint(12, (6,), generator=g)], 1)
    holes = Cutout(5, torch.Generator().manual_seed(2))(torch.ones(6, 2, 10, 12)) == 0
    assert torch.equal(holes[:, 0], cutout_mask(drawn, 5, 10, 12)) and torch.equal(holes[:, 0], holes[:, 1])


@pytest.mark.parametrize("name, files, key", [
    ("cifar10", ["batches.meta", "data_batch_1", "data_batch_2", "data_batch_3", "data_batch_4", "data_batch_5", "test_batch"], "labels"),
    ("cifar100", ["meta", "test", "train"], "fine_labels"),
])
def test_write_cifar_is_read_by_torchvision(tmp_path, name, files, key):
    import pickle
    from torchvision import datasets
    folder = write_cifar(tmp_path, name, per_class=3, test_per_class=2, seed=4)
    assert sorted(p.name for p in folder.iterdir()) == files
    train_file = folder / ("data_batch_1" if name == "cifar10" else "train")
    with open(train_file, "rb") as f: entry = pickle.load(f, encoding="latin1")
    assert entry["data"].dtype == np.uint8 and entry["data"].shape[1] == 3072 and key in entry and "filenames" in entry
    k = 10 if name == "cifar10" else 100
    # torchvision's own class (not ours) reads the files once its md5 checks are out of the way
    cls = getattr(datasets, name.upper())
    with pytest.warns(UserWarning, match="not checked"):
        train = cifar(name, tmp_path, train=True, augment=False, normalize=False, verify=False)
    assert isinstance(train, cls) and len(train) == 3 * k and np.bincount(train.targets).tolist() == [3] * k
    assert train.data.shape == (3 * k, 32, 32, 3)
    with pytest.warns(UserWarning):
        test = cifar(name, tmp_path, train=False, verify=False)
    assert len(test) == 2 * k and test[0][0].shape == (3, 32, 32)
    if name == "cifar10": assert train.classes == list(CIFAR10_CLASSES)
    # the same seed writes the same files; the images carry their class (a learnable stand-in)
    again = write_cifar(tmp_path / "again", name, per_class=3, test_per_class=2, seed=4)
    assert all((folder / f).read_bytes() == (again / f).read_bytes() for f in files)
    data = train.data.reshape(len(train), -1).astype(float)
    labels = np.asarray(train.targets)
    centroids = np.stack([data[labels == c].mean(0) for c in range(k)])
    nearest = ((data[:, None] - centroids[None]) ** 2).sum(-1).argmin(1)
    assert (nearest == labels).mean() > 0.9
    with pytest.raises(ValueError, match="do not match the md5 checksums") as info:
        cifar(name, tmp_path)  # verify=True: the stand-ins are not the published files
    assert "verify=False" in str(info.value) and files[0] in str(info.value)


def test_cifar_corrupt_and_missing_files_are_named(tmp_path):
    folder = write_cifar(tmp_path, "cifar10", per_class=1)
    (folder / "data_batch_4").write_bytes(b"\x80\x04truncated")
    with pytest.warns(UserWarning), pytest.raises(ValueError, match=r"data_batch_4 is not a readable CIFAR-10 pickle"):
        cifar("cifar10", tmp_path, verify=False)
    write_cifar(tmp_path, "cifar10", per_class=1)
    import pickle
    with open(folder / "batches.meta", "wb") as f: pickle.dump({"num_vis": 3072}, f)
    with pytest.warns(UserWarning), pytest.raises(ValueError, match=r"batches.meta is not a readable .* no 'label_names'"):
        cifar("cifar10", tmp_path, train=False, verify=False)
    write_cifar(tmp_path, "cifar10", per_class=1)
    (folder / "data_batch_2").unlink()
    with pytest.warns(UserWarning), pytest.raises(FileNotFoundError, match=r"missing \['data_batch_2'\]"):
        cifar("cifar10", tmp_path, verify=False)
    with pytest.raises(FileNotFoundError, match=r"missing \['data_batch_2'\]"):
        cifar("cifar10", tmp_path)
    with pytest.raises(TypeError, match="verify must be True or False"): cifar("cifar10", tmp_path, verify="no")


def test_unverified_cifar_is_picklable_for_dataloader_workers(tmp_path):
    import pickle
    write_cifar(tmp_path, "cifar100", per_class=1)
    with pytest.warns(UserWarning):
        ds = cifar("cifar100", tmp_path, train=False, verify=False)
    copy = pickle.loads(pickle.dumps(ds))  # what a spawned DataLoader worker receives
    assert type(copy) is type(ds) and torch.equal(copy[3][0], ds[3][0])


def test_write_image_folder_is_read_by_build_data(tmp_path):
    from mixup_lab.experiments import Run, build_data
    root = write_image_folder(tmp_path / "cub200", classes=["001.Albatross", "002.Auklet", "003.Cormorant"],
                              per_class=4, size=(40, 52), seed=1)
    assert root == tmp_path / "cub200"
    files = sorted((root / "train" / "002.Auklet").iterdir())
    assert [f.suffix for f in files] == [".jpg"] * 4
    sizes = {Image.open(f).size for f in files}
    assert len(sizes) > 1  # slightly varying sizes, as photographs
    assert Image.open(files[0]).format == "JPEG"
    d = build_data(Run(method="erm", dataset="folder:cub200", model="resnet18", data_kwargs={"image_size": 32}), tmp_path)
    assert d["num_classes"] == 3 and len(d["train"]) == 12 and len(d["test"]) == 12
    x, y = d["train"][5]
    assert x.shape == (3, 32, 32) and y == 1
    with pytest.raises(ValueError, match="distinct folder names"): write_image_folder(tmp_path / "x", classes=["a", "a/b"])
    with pytest.raises(ValueError, match=r"split must be one of"): write_image_folder(tmp_path / "x", splits=("dev",))
