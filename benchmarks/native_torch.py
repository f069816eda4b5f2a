"""The native PyTorch references of the benchmark.

- `ResBlock` and `ResNet`: the lecture's code exactly as on the slides ("AMMI Introduction to
  Deep Learning 6.5. Residual networks", slides 10-11), and `train_steps`, the lecture's
  training loop (``narrow`` mini-batches of in-memory tensors, ``model.zero_grad()``,
  ``loss.backward()``, ``optimizer.step()``).
- `CifarResNet`: He et al.'s CIFAR ResNet-``6n+2`` with option-A shortcuts, written in the
  same plain style (there is none in the lecture).
- `resnet50`: torchvision's ResNet-50 (v1.5: the stride on the 3x3 convolution) written by
  hand, because torchvision is not a dependency; `torchvision.models.resnet50` is used
  instead when it is installed (``prefer_torchvision=True``).

Nothing here imports Keras: this file is what a user of plain PyTorch would write.
"""

import torch
import torch.nn as nn
import torch.nn.functional as F

# ---- the lecture's code, verbatim (slides 10-11) ------------------------------------------


class ResBlock(nn.Module):
    def __init__(self, nb_channels, kernel_size):
        super(ResBlock, self).__init__()
        self.conv1 = nn.Conv2d(nb_channels, nb_channels, kernel_size, padding = (kernel_size-1)//2)
        self.bn1 = nn.BatchNorm2d(nb_channels)
        self.conv2 = nn.Conv2d(nb_channels, nb_channels, kernel_size, padding = (kernel_size-1)//2)
        self.bn2 = nn.BatchNorm2d(nb_channels)

    def forward(self, x):
        y = self.bn1(self.conv1(x))
        y = F.relu(y)
        y = self.bn2(self.conv2(y))
        y += x
        y = F.relu(y)
        return y


class ResNet(nn.Module):
    def __init__(self, nb_channels, kernel_size, nb_blocks):
        super(ResNet, self).__init__()
        self.conv0 = nn.Conv2d(1, nb_channels, kernel_size = 1)
        self.resblocks = nn.Sequential(
            # A bit of fancy Python
            *(ResBlock(nb_channels, kernel_size) for _ in range(nb_blocks))
        )
        self.avg = nn.AvgPool2d(kernel_size = 28)
        self.fc = nn.Linear(nb_channels, 10)

    def forward(self, x):
        x = F.relu(self.conv0(x))
        x = self.resblocks(x)
        x = F.relu(self.avg(x))
        x = x.view(x.size(0), -1)
        x = self.fc(x)
        return x


# ---- He et al.'s CIFAR ResNet (option A) ----------------------------------------------------


class CifarBlock(nn.Module):
    def __init__(self, in_channels, channels, stride):
        super().__init__()
        self.conv1 = nn.Conv2d(in_channels, channels, 3, stride, 1, bias=False)
        self.bn1 = nn.BatchNorm2d(channels)
        self.conv2 = nn.Conv2d(channels, channels, 3, 1, 1, bias=False)
        self.bn2 = nn.BatchNorm2d(channels)
        self.stride = stride
        self.extra = channels - in_channels

    def forward(self, x):
        y = F.relu(self.bn1(self.conv1(x)))
        y = self.bn2(self.conv2(y))
        shortcut = x
        if self.stride != 1:
            shortcut = shortcut[:, :, ::self.stride, ::self.stride]
        if self.extra:
            shortcut = F.pad(shortcut, (0, 0, 0, 0, 0, self.extra))
        return F.relu(y + shortcut)


class CifarResNet(nn.Module):
    """ResNet-``depth`` for 32x32 images: 16/32/64 channels, ``(depth - 2) / 6`` blocks a stage."""

    def __init__(self, depth=56, classes=10):
        super().__init__()
        n = (depth - 2) // 6
        self.conv0 = nn.Conv2d(3, 16, 3, padding=1, bias=False)
        self.bn0 = nn.BatchNorm2d(16)
        blocks, width = [], 16
        for stage, channels in enumerate((16, 32, 64)):
            for b in range(n):
                blocks.append(CifarBlock(width, channels, 2 if stage > 0 and b == 0 else 1))
                width = channels
        self.blocks = nn.Sequential(*blocks)
        self.fc = nn.Linear(64, classes)

    def forward(self, x):
        x = F.relu(self.bn0(self.conv0(x)))
        x = self.blocks(x)
        x = F.adaptive_avg_pool2d(x, 1).flatten(1)
        return self.fc(x)


# ---- ResNet-50 (torchvision's layout, by hand) ----------------------------------------------


class Bottleneck(nn.Module):
    expansion = 4

    def __init__(self, in_channels, channels, stride=1):
        super().__init__()
        out = channels * self.expansion
        self.conv1 = nn.Conv2d(in_channels, channels, 1, bias=False)
        self.bn1 = nn.BatchNorm2d(channels)
        self.conv2 = nn.Conv2d(channels, channels, 3, stride, 1, bias=False)
        self.bn2 = nn.BatchNorm2d(channels)
        self.conv3 = nn.Conv2d(channels, out, 1, bias=False)
        self.bn3 = nn.BatchNorm2d(out)
        self.downsample = None
        if stride != 1 or in_channels != out:
            self.downsample = nn.Sequential(
                nn.Conv2d(in_channels, out, 1, stride, bias=False), nn.BatchNorm2d(out)
            )

    def forward(self, x):
        y = F.relu(self.bn1(self.conv1(x)))
        y = F.relu(self.bn2(self.conv2(y)))
        y = self.bn3(self.conv3(y))
        return F.relu(y + (x if self.downsample is None else self.downsample(x)))


class ResNet50(nn.Module):
    def __init__(self, classes=1000, layers=(3, 4, 6, 3)):
        super().__init__()
        self.conv1 = nn.Conv2d(3, 64, 7, 2, 3, bias=False)
        self.bn1 = nn.BatchNorm2d(64)
        self.maxpool = nn.MaxPool2d(3, 2, 1)
        blocks, width = [], 64
        for i, n in enumerate(layers):
            channels = 64 * 2**i
            for b in range(n):
                blocks.append(Bottleneck(width, channels, 2 if i > 0 and b == 0 else 1))
                width = channels * Bottleneck.expansion
        self.layers = nn.Sequential(*blocks)
        self.fc = nn.Linear(width, classes)

    def forward(self, x):
        x = self.maxpool(F.relu(self.bn1(self.conv1(x))))
        x = self.layers(x)
        return self.fc(torch.flatten(F.adaptive_avg_pool2d(x, 1), 1))


def resnet50(classes=1000, prefer_torchvision=True):
    """torchvision's ResNet-50 when installed, else the hand-written `ResNet50` (same layout)."""
    if prefer_torchvision:
        try:
            import torchvision
        except ImportError:
            pass
        else:
            return torchvision.models.resnet50(num_classes=classes)
    return ResNet50(classes)


def build(model_name, *, nb_blocks=25, nb_channels=16, depth=56):
    """The native model of a benchmark scale: ``"mnist"``, ``"cifar"`` or ``"imagenet"``."""
    if model_name == "mnist":
        return ResNet(nb_channels, 3, nb_blocks)
    if model_name == "cifar":
        return CifarResNet(depth)
    if model_name == "imagenet":
        return resnet50()
    raise ValueError(f"model_name={model_name!r} is not known; choose 'mnist', 'cifar' or 'imagenet'.")


# ---- the lecture's training loop ------------------------------------------------------------


def train_steps(model, optimizer, criterion, train_input, train_target, mini_batch_size, steps,
                start=0, on_step=None, autocast=False):
    """``steps`` SGD steps over consecutive mini-batches, as in the lecture's ``train_model``;
    ``autocast``: the forward pass and the loss in bfloat16 where PyTorch's CPU autocast puts
    it (convolutions and matrix products), as a PyTorch user writes it on a CPU with bf16."""
    n = train_input.size(0) // mini_batch_size
    for i in range(start, start + steps):
        b = (i % n) * mini_batch_size
        with torch.autocast("cpu", dtype=torch.bfloat16, enabled=autocast):
            output = model(train_input.narrow(0, b, mini_batch_size))
            loss = criterion(output, train_target.narrow(0, b, mini_batch_size))
        model.zero_grad()
        loss.backward()
        optimizer.step()
        if on_step is not None:
            on_step(i)


def predict_steps(model, data_input, mini_batch_size, steps, on_step=None, autocast=False,
                  inference_mode=False):
    """``steps`` forward passes in evaluation mode, without autograd (``torch.no_grad``, or
    ``torch.inference_mode``); ``autocast`` as in `train_steps`."""
    n = data_input.size(0) // mini_batch_size
    model.eval()
    with (torch.inference_mode() if inference_mode else torch.no_grad()), \
            torch.autocast("cpu", dtype=torch.bfloat16, enabled=autocast):
        for i in range(steps):
            b = (i % n) * mini_batch_size
            model(data_input.narrow(0, b, mini_batch_size))
            if on_step is not None:
                on_step(i)
    model.train()
