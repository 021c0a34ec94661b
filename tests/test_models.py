"API-level and error-path tests of mixup_lab.models: shapes, split_model on every model, the factory."
import pytest
import torch
import torch.nn as nn
from hypothesis import given, settings, strategies as st

import mixup_lab.models as models_module
from mixup_lab.core import split_model
from mixup_lab.models import (MODELS, WEIGHTS_ENV, cifar_resnet18, cifar_resnet50, count_parameters, get_model, mlp,
                              pretrained_weights_path, pretrained_weights_url, resnet18, resnet50, small_cnn, timm_model)


def _check_split(model, x, feature_map_shape=None, atol=1e-5):
    model.eval()
    parts = split_model(model)
    with torch.no_grad():
        out = model(x)
        torch.testing.assert_close(parts(x), out, atol=atol, rtol=1e-4)
        torch.testing.assert_close(parts.head(parts.features(x)), out, atol=atol, rtol=1e-4)
        feats = parts.features(x)
        assert feats.ndim == 2 and feats.shape[0] == x.shape[0]
        if feature_map_shape is not None: assert parts.body(x).shape == feature_map_shape
    return parts


@settings(deadline=None, max_examples=15)
@given(st.integers(2, 12), st.sampled_from([1, 3]), st.integers(1, 16), st.integers(1, 4))
def test_small_cnn(num_classes, in_channels, width, batch):
    model = small_cnn(num_classes, in_channels, width)
    x = torch.rand(batch, in_channels, 8, 8)
    parts = _check_split(model, x, (batch, 2 * width, 4, 4))
    assert model(x).shape == (batch, num_classes)
    assert parts.head is model.fc and parts.pool_is_average
    assert [n for n, _ in model.named_children()] == ["block1", "block2", "block3", "pool", "flatten", "fc"]


@settings(deadline=None, max_examples=15)
@given(st.integers(1, 5), st.integers(2, 5), st.integers(1, 32), st.integers(1, 4))
def test_mlp(in_features, num_classes, hidden, depth):
    model = mlp(in_features, num_classes, hidden, depth)
    x = torch.randn(3, in_features)
    parts = _check_split(model, x)
    assert parts.features(x).shape == (3, hidden) and parts.head is model.fc
    assert count_parameters(model) == (in_features + 1) * hidden + (depth - 1) * (hidden + 1) * hidden + (hidden + 1) * num_classes
    assert [n for n, _ in model.named_children()] == [f"block{i + 1}" for i in range(depth)] + ["fc"]


@pytest.mark.parametrize("build, num_classes, width", [(cifar_resnet18, 10, 512), (cifar_resnet50, 100, 2048)])
def test_cifar_resnets(build, num_classes, width):
    model = build(num_classes)
    assert model.conv1.kernel_size == (3, 3) and model.conv1.stride == (1, 1) and model.conv1.out_channels == 64
    assert model.conv1.bias is None and isinstance(model.maxpool, nn.Identity)
    x = torch.randn(2, 3, 32, 32)
    parts = _check_split(model, x, (2, width, 4, 4), atol=1e-4)
    assert model(x).shape == (2, num_classes) and parts.head is model.fc
    assert build.__defaults__[0] == num_classes


def test_cifar_resnet18_size_and_channels():
    assert count_parameters(cifar_resnet18(10)) == 11_173_962  # the usual CIFAR ResNet-18 size
    model = cifar_resnet18(10, in_channels=1).eval()
    assert model(torch.randn(2, 1, 16, 16)).shape == (2, 10)


def test_timm_model_split():
    model = timm_model("test_resnet", num_classes=3)
    _check_split(model, torch.randn(2, 3, 32, 32))
    assert model(torch.randn(2, 3, 32, 32)).shape == (2, 3)
    with pytest.raises(ValueError, match="timm architecture"): timm_model("no_such_net_42", 3)
    with pytest.raises(ValueError, match="num_classes"): timm_model("test_resnet", 1)


def test_timm_pretrained_error_gets_note(monkeypatch):
    import timm
    def offline(*args, **kwargs): raise OSError("cannot reach huggingface.co")
    monkeypatch.setattr(timm, "create_model", offline)
    with pytest.raises(OSError, match="huggingface") as info:
        timm_model("test_resnet", 3, pretrained=True)
    assert any("pretrained=False" in note for note in getattr(info.value, "__notes__", []))


def test_timm_missing(monkeypatch):
    import builtins
    real_import = builtins.__import__
    def no_timm(name, *args, **kwargs):
        if name == "timm": raise ImportError("No module named 'timm'")
        return real_import(name, *args, **kwargs)
    monkeypatch.setattr(builtins, "__import__", no_timm)
    with pytest.raises(ImportError, match="pip install timm"): timm_model("test_resnet", 3)


@pytest.mark.parametrize("name, in_channels, x", [
    ("small_cnn", 1, torch.rand(2, 1, 8, 8)),
    ("mlp", 2, torch.randn(2, 2)),
    ("cifar_resnet18", 3, torch.randn(2, 3, 32, 32)),
    ("resnet18", 3, torch.randn(2, 3, 64, 64)),
    ("resnet18", 1, torch.randn(2, 1, 64, 64)),
    ("timm:test_resnet", 1, torch.randn(2, 1, 32, 32)),
])
def test_get_model(name, in_channels, x):
    model = get_model(name, 7, in_channels=in_channels)
    assert model.eval()(x).shape == (2, 7)
    _check_split(model, x, atol=1e-4)


def test_get_model_errors_and_kwargs():
    assert get_model("small_cnn", 5, in_channels=1, width=4).fc.in_features == 8
    assert get_model("cifar_resnet50", 100).fc.out_features == 100
    for bad in ("resnet34", "timm:", None):
        with pytest.raises(ValueError, match="small_cnn.*mlp.*cifar_resnet18.*cifar_resnet50.*resnet18.*resnet50.*timm:<name>"):
            get_model(bad, 10)
    assert MODELS == ("small_cnn", "mlp", "cifar_resnet18", "cifar_resnet50", "resnet18", "resnet50", "timm:<name>")


@pytest.mark.parametrize("bad, exc, match", [
    (lambda: small_cnn(1), ValueError, "num_classes"),
    (lambda: small_cnn(10, in_channels=0), ValueError, "in_channels must be an int >= 1"),
    (lambda: small_cnn(10, width=2.5), TypeError, "width must be an int"),
    (lambda: mlp(depth=0), ValueError, "depth must be an int >= 1"),
    (lambda: cifar_resnet18(0), ValueError, "num_classes"),
])
def test_builder_errors(bad, exc, match):
    with pytest.raises(exc, match=match): bad()


def test_count_parameters_shared_and_trainable():
    shared = nn.Linear(4, 4)
    model = nn.Sequential(shared, nn.ReLU(), shared)
    assert count_parameters(model) == 20
    shared.weight.requires_grad_(False)
    assert count_parameters(model, trainable_only=True) == 4


# ---------------------------------------------------------------- ImageNet ResNets and their weights, offline
@pytest.fixture
def empty_hub(tmp_path, monkeypatch):
    "torch's hub cache pointed at an empty folder, no MIXUP_LAB_WEIGHTS: an offline machine without the files."
    hub = torch.hub.get_dir()
    torch.hub.set_dir(str(tmp_path / "hub"))
    monkeypatch.delenv(WEIGHTS_ENV, raising=False)
    yield tmp_path / "hub"
    torch.hub.set_dir(hub)


def _save_imagenet_resnet18(folder, seed=0):
    from torchvision.models import resnet18 as tv_resnet18
    torch.manual_seed(seed)
    model = tv_resnet18(num_classes=1000)
    folder.mkdir(parents=True, exist_ok=True)
    torch.save(model.state_dict(), folder / "resnet18-f37072fd.pth")
    return model


def test_pretrained_weights_load_from_a_local_state_dict(tmp_path, empty_hub):
    saved = _save_imagenet_resnet18(tmp_path / "weights")
    model = get_model("resnet18", 5, pretrained=True, weights_dir=tmp_path / "weights")
    state, reference = model.state_dict(), saved.state_dict()
    assert all(torch.equal(state[k], reference[k]) for k in reference if not k.startswith("fc."))
    assert model.fc.out_features == 5 and model.fc.in_features == 512
    assert model.conv1.kernel_size == (7, 7) and isinstance(model.maxpool, nn.MaxPool2d)  # the ImageNet stem
    _check_split(model, torch.randn(2, 3, 64, 64), (2, 512, 2, 2), atol=1e-4)


@pytest.mark.parametrize("where", ["hub", "env"])
def test_pretrained_weights_found_in_the_hub_cache_or_the_environment(tmp_path, empty_hub, monkeypatch, where):
    folder = empty_hub / "checkpoints" if where == "hub" else tmp_path / "from_env"
    if where == "env": monkeypatch.setenv(WEIGHTS_ENV, str(folder))
    saved = _save_imagenet_resnet18(folder, seed=3)
    assert pretrained_weights_path("resnet18") == folder / "resnet18-f37072fd.pth"
    assert torch.equal(resnet18(10, pretrained=True).layer1[0].conv1.weight, saved.layer1[0].conv1.weight)


def test_missing_weights_error_names_the_file_the_url_and_the_places(tmp_path, empty_hub):
    with pytest.raises(FileNotFoundError) as info:
        pretrained_weights_path("resnet50", tmp_path / "nowhere")
    text = str(info.value)
    assert "resnet50-0676ba61.pth" in text and pretrained_weights_url("resnet50") in text
    assert str(tmp_path / "nowhere") in text and str(empty_hub / "checkpoints") in text and WEIGHTS_ENV in text
    with pytest.raises(FileNotFoundError, match="resnet18-f37072fd.pth"):
        get_model("resnet18", 200, pretrained=True)
    assert not empty_hub.exists() or not any(empty_hub.rglob("*.pth"))  # nothing was downloaded


def test_bad_weight_files_and_arguments(tmp_path, empty_hub):
    folder = tmp_path / "weights"
    folder.mkdir()
    (folder / "resnet18-f37072fd.pth").write_bytes(b"garbage")
    with pytest.raises(ValueError, match="is not a state dict of torchvision's resnet18"):
        resnet18(3, pretrained=True, weights_dir=folder)
    torch.save({"conv1.weight": torch.zeros(1)}, folder / "resnet18-f37072fd.pth")
    with pytest.raises(ValueError, match="is not a state dict"): resnet18(3, pretrained=True, weights_dir=folder)
    with pytest.raises(ValueError, match="3-channel"): resnet50(3, in_channels=1, pretrained=True)
    with pytest.raises(TypeError, match="pretrained must be True or False"): resnet18(3, pretrained="yes")
    with pytest.raises(ValueError, match=r"\['resnet18', 'resnet50'\]"): pretrained_weights_path("resnet101")
