"""ResNet-18 (He et al. 2016, "Deep residual learning", CIFAR-style stem) and VGG-11 with batch norm (Simonyan &
Zisserman 2015; BN after each conv as in torchvision's vgg11_bn), written here from the papers: torchvision's CPU
wheels need CUDA libraries for their C extension, and only the model definitions are wanted.

    >>> resnet18(classes=10)(torch.randn(2, 3, 32, 32)).shape
    torch.Size([2, 10])
"""

from __future__ import annotations

from torch import Tensor, nn


class BasicBlock(nn.Module):
    """Two 3x3 convs with BN, ReLU between and after the identity (or 1x1 projection) shortcut is added."""

    def __init__(self, cin: int, cout: int, stride: int):
        super().__init__()
        self.conv1 = nn.Conv2d(cin, cout, 3, stride, 1, bias=False)
        self.bn1 = nn.BatchNorm2d(cout)
        self.conv2 = nn.Conv2d(cout, cout, 3, 1, 1, bias=False)
        self.bn2 = nn.BatchNorm2d(cout)
        self.relu = nn.ReLU(inplace=True)
        self.shortcut = nn.Identity() if stride == 1 and cin == cout else nn.Sequential(
            nn.Conv2d(cin, cout, 1, stride, bias=False), nn.BatchNorm2d(cout))

    def forward(self, x: Tensor) -> Tensor:
        out = self.relu(self.bn1(self.conv1(x)))
        return self.relu(self.bn2(self.conv2(out)) + self.shortcut(x))


def resnet18(classes: int = 10, width: int = 64, blocks: int = 2) -> nn.Module:
    """ResNet-18: a 3x3 stem, four stages of `blocks` basic blocks (width, 2w, 4w, 8w), global average pool, linear;
    He (fan_out) init of the convs, BN weight 1, bias 0 — the paper's and torchvision's init. `blocks=2` is ResNet-18
    (the paper's deeper CIFAR nets stack more of the same blocks)."""
    stages, cin = [], width
    for i, cout in enumerate((width, 2 * width, 4 * width, 8 * width)):
        stages += [BasicBlock(cin, cout, 1 if i == 0 else 2)] + [BasicBlock(cout, cout, 1) for _ in range(blocks - 1)]
        cin = cout
    model = nn.Sequential(nn.Conv2d(3, width, 3, 1, 1, bias=False), nn.BatchNorm2d(width), nn.ReLU(inplace=True),
                          *stages, nn.AdaptiveAvgPool2d(1), nn.Flatten(), nn.Linear(cin, classes))
    for module in model.modules():
        if isinstance(module, nn.Conv2d):
            nn.init.kaiming_normal_(module.weight, mode="fan_out", nonlinearity="relu")
    return model


def vgg11_bn(classes: int = 10, width: int = 64) -> nn.Module:
    """VGG-11 (configuration A: 64, M, 128, M, 256, 256, M, 512, 512, M, 512, 512, M) with BN after every conv,
    for 32x32 inputs: the classifier is one hidden layer of 512 with dropout."""
    plan = [width, "M", 2 * width, "M", 4 * width, 4 * width, "M", 8 * width, 8 * width, "M", 8 * width, 8 * width, "M"]
    layers, cin = [], 3
    for item in plan:
        if item == "M":
            layers.append(nn.MaxPool2d(2))
        else:
            layers += [nn.Conv2d(cin, item, 3, padding=1), nn.BatchNorm2d(item), nn.ReLU(inplace=True)]
            cin = item
    model = nn.Sequential(*layers, nn.Flatten(), nn.Linear(cin, 512), nn.ReLU(inplace=True), nn.Dropout(0.5),
                          nn.Linear(512, classes))
    for module in model.modules():
        if isinstance(module, nn.Conv2d):
            nn.init.kaiming_normal_(module.weight, mode="fan_out", nonlinearity="relu")
            nn.init.zeros_(module.bias)
        elif isinstance(module, nn.Linear):
            nn.init.normal_(module.weight, 0, 0.01)
            nn.init.zeros_(module.bias)
    return model
