"Small models several test files share: classifiers whose layout `split_model` does not know, and a hook that kills a run."
import torch.nn as nn


class Opaque(nn.Module):
    "A classifier of no layout `split_model` knows (Linear trunk, ReLU, Linear classifier): its parts must be given explicitly."
    def __init__(self, d_in=6, hidden=8, classes=3):
        super().__init__()
        self.trunk, self.classifier = nn.Linear(d_in, hidden), nn.Linear(hidden, classes)
    def forward(self, x): return self.classifier(self.trunk(x).relu())


class OpaqueConv(nn.Module):
    "The image form of `Opaque`: a conv trunk, ReLU, a spatial mean (no pool module) and a Linear classifier."
    def __init__(self, channels=3, width=4, classes=5):
        super().__init__()
        self.conv, self.classifier = nn.Conv2d(channels, width, 3), nn.Linear(width, classes)
    def forward(self, x): return self.classifier(self.conv(x).relu().mean((2, 3)))


def kill_after(model, steps):
    "Make `model` raise after `steps` training forward passes, like a process killed mid-epoch (class and weights unchanged)."
    calls = [0]
    def hook(module, args):
        if module.training:
            calls[0] += 1
            if calls[0] > steps: raise RuntimeError("killed")
    model.register_forward_pre_hook(hook)
    return model


def image_cnn(k=3):
    "A seeded nn.Sequential CNN for (B, 3, H, W) images: conv-BN-ReLU, conv-ReLU, global average pool, Linear(8, k)."
    import torch
    torch.manual_seed(0)
    return nn.Sequential(nn.Conv2d(3, 8, 3, padding=1), nn.BatchNorm2d(8), nn.ReLU(), nn.Conv2d(8, 8, 3, padding=1),
                         nn.ReLU(), nn.AdaptiveAvgPool2d(1), nn.Flatten(), nn.Linear(8, k))


def _torchvision_resnet18():
    import torchvision
    return torchvision.models.resnet18(num_classes=3)


def _timm_resnet10t():
    import timm
    return timm.create_model("resnet10t", pretrained=False, num_classes=3)


# the three layouts split_model knows, as 3-class models: pytest.mark.parametrize("make", SUPPORTED, ids=SUPPORTED_IDS)
SUPPORTED = [_torchvision_resnet18, _timm_resnet10t, image_cnn]
SUPPORTED_IDS = ["torchvision-resnet18", "timm-resnet10t", "sequential"]
