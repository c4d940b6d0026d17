"""Train ResNet from resnet_cifar.net in plain PyTorch.

Written by `netspec emit`; needs only torch and numpy. With the same seed it trains on the
CPU to exactly the numbers of `netspec run`, into the same metrics.csv and summary.json.

    python resnet_cifar.py --data-dir DIR         # the data root (default: $NETSPEC_DATA)
    python resnet_cifar.py --epochs 1 --out runs/try
    python resnet_cifar.py --resume runs/try --epochs 5   # continue a run
"""

import argparse
import hashlib
import json
import math
import os
import platform
import sys
import tarfile
import time
import urllib.request
from dataclasses import asdict, dataclass, field
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

try:
    from safetensors.torch import save_file
except ImportError:  # without safetensors, the weights go to model.pt instead
    save_file = None

SPEC = "resnet_cifar"
SEED = 0
EPOCHS = 15
BATCH_SIZE = 128
EVAL_BATCH_SIZE = 256


# --- Model -------------------------------------------------------------------
class Residual(nn.Module):
    """A skip connection, y = x + body(x); the body keeps the shape (the checker ensures it)."""

    def __init__(self, body):
        super().__init__()
        self.body = body

    def forward(self, x):
        return x + self.body(x)


class ConvBN(nn.Sequential):
    """The spec's block ConvBN(channels, stride)."""

    def __init__(self, in_channels, channels, stride=1):
        super().__init__(
            nn.Conv2d(
                in_channels,
                channels,
                kernel_size=3,
                stride=stride,
                padding=1,
                bias=False,
            ),
            nn.BatchNorm2d(channels),
            nn.ReLU(),
        )


class Stage(nn.Sequential):
    """The body of a `repeat`, built once per iteration."""

    def __init__(self, channels):
        super().__init__(
            Residual(
                nn.Sequential(
                    ConvBN(channels, channels),
                    nn.Conv2d(channels, channels, kernel_size=3, padding=1, bias=False),
                    nn.BatchNorm2d(channels),
                ),
            ),
            nn.ReLU(),
        )


class ResNet(nn.Sequential):
    """[3, 32, 32] -> [10], 815,946 parameters."""

    def __init__(self):
        super().__init__(
            ConvBN(3, 64),  # -> [64, 32, 32]
            nn.Sequential(*[Stage(64) for _ in range(2)]),  # -> [64, 32, 32]
            ConvBN(64, 128, stride=2),  # -> [128, 16, 16]
            nn.Sequential(*[Stage(128) for _ in range(2)]),  # -> [128, 16, 16]
            nn.Sequential(nn.AdaptiveAvgPool2d(1), nn.Flatten()),  # -> [128]
            nn.Linear(128, 10),  # -> [10]
        )


# --- Data --------------------------------------------------------------------
# CIFAR-10, the binary version: downloaded (md5 checked) and extracted into the data root
CIFAR_URL = "https://www.cs.toronto.edu/~kriz/cifar-10-binary.tar.gz"
CIFAR_MD5 = "c32a1d4ab5d03f1284b67883e8d87530"
DATA_FOLDER = "cifar-10-batches-bin"
TRAIN_FILES = [
    "data_batch_1.bin",
    "data_batch_2.bin",
    "data_batch_3.bin",
    "data_batch_4.bin",
    "data_batch_5.bin",
]
TEST_FILE = "test_batch.bin"


def download(urls, path, algorithm, digest):
    """Fetch the first of `urls` that has the published checksum to `path`."""
    for url in urls:
        print(f"downloading {url} -> {path}", file=sys.stderr)
        try:
            with urllib.request.urlopen(url, timeout=60) as response:
                data = response.read()
            if hashlib.new(algorithm, data).hexdigest() != digest:
                raise OSError(f"{url} does not have the published {algorithm}")
            return write_atomic(path, data)
        except OSError as e:
            print(f"  {e}", file=sys.stderr)


def read_cifar(path, files):
    """A CIFAR-10 batch file: uint8 images [N, 3, 32, 32] and int64 labels."""
    data = path.read_bytes()
    files[f"{DATA_FOLDER}/{path.name}"] = hashlib.sha256(data).hexdigest()
    if not data or len(data) % (1 + 3 * 32 * 32):
        raise SystemExit(f"error: {path} is truncated or corrupt; delete it and rerun")
    return cifar_records(data)


def fetch_cifar(root):
    """Download the binary version of CIFAR-10 and extract its batch files."""
    archive = root / CIFAR_URL.rsplit("/", 1)[1]
    if not archive.is_file():
        download([CIFAR_URL], archive, "md5", CIFAR_MD5)
    try:
        with tarfile.open(archive) as tar:
            for member in tar:
                parts = Path(member.name).parts
                if member.isfile() and parts[0] == DATA_FOLDER and ".." not in parts:
                    path = root.joinpath(*parts)
                    path.parent.mkdir(parents=True, exist_ok=True)
                    path.write_bytes(tar.extractfile(member).read())
    except (OSError, tarfile.TarError) as e:
        raise SystemExit(f"error: CIFAR-10 is missing from {root} ({e})") from None


def load_data(root):
    """CIFAR-10: uint8 images [N, 3, 32, 32] and int64 labels, for training and testing,
    and the sha256 of each file read."""
    names = [*TRAIN_FILES, TEST_FILE]
    if not all((root / DATA_FOLDER / name).is_file() for name in names):
        fetch_cifar(root)
    files = {}
    train = [read_cifar(root / DATA_FOLDER / name, files) for name in TRAIN_FILES]
    x_test, y_test = read_cifar(root / DATA_FOLDER / TEST_FILE, files)
    x_train = np.concatenate([x for x, _ in train])
    y_train = np.concatenate([y for _, y in train])
    return x_train, y_train, x_test, y_test, files


def cifar_records(data):
    """CIFAR-10 binary records (a label byte, then the red, green and blue planes):
    uint8 images [N, 3, 32, 32] and int64 labels."""
    records = np.frombuffer(data, np.uint8).reshape(-1, 1 + 3 * 32 * 32)
    return records[:, 1:].reshape(-1, 3, 32, 32).copy(), records[:, 0].astype(np.int64)


def random_flip(x, g, p, dim):
    """Flip each image along `dim` (-1: horizontal, -2: vertical) with probability p."""
    flip = (torch.rand(x.shape[0], generator=g) < p).to(x.device)
    return torch.where(flip[:, None, None, None], x.flip(dim), x)


def _gather_windows(x, top, left, h, w):
    """Per-sample h x w windows of x starting at (top[i], left[i])."""
    rows = (top[:, None] + torch.arange(h))[:, None, :, None].to(x.device)
    cols = (left[:, None] + torch.arange(w))[:, None, None, :].to(x.device)
    n = torch.arange(x.shape[0], device=x.device)[:, None, None, None]
    c = torch.arange(x.shape[1], device=x.device)[None, :, None, None]
    return x[n, c, rows, cols]


def random_crop(x, g, size, padding):
    """Zero-pad, then crop a random size[0] x size[1] window from each image."""
    x = F.pad(x, (padding,) * 4) if padding else x
    n, _, h, w = x.shape
    top = torch.randint(0, h - size[0] + 1, (n,), generator=g)
    left = torch.randint(0, w - size[1] + 1, (n,), generator=g)
    return _gather_windows(x, top, left, size[0], size[1])


def center_crop(x, size, padding):
    """The evaluation-time counterpart of random_crop."""
    x = F.pad(x, (padding,) * 4) if padding else x
    top, left = (x.shape[2] - size[0]) // 2, (x.shape[3] - size[1]) // 2
    return x[:, :, top : top + size[0], left : left + size[1]]


def normalize(x, mean, std):
    """(x - mean) / std; mean and std broadcast over the batch."""
    return (x - mean) / std


def to_tensor(a):
    """An array as a tensor; images (uint8) scaled to [0, 1]."""
    t = torch.from_numpy(a)
    return t.float() / 255 if t.dtype == torch.uint8 else t


def hold_out(x, y, fraction, g):
    """A seeded random `fraction` of (x, y), in order, and the rest."""
    n = round(len(x) * fraction)
    if n == 0:
        return (x, y), None
    perm = torch.randperm(len(x), generator=g)
    keep, held = perm[n:].sort().values, perm[:n].sort().values
    return (x[keep], y[keep]), (x[held], y[held])


def prepare_data(root, seed, device):
    """The splits as (x, y) tensors on `device`, held out and preprocessed as the spec
    says, and the augmentation of training batches."""
    x, y, x_test, y_test, files = load_data(root)
    x, y = to_tensor(x), to_tensor(y)
    test = to_tensor(x_test), to_tensor(y_test)
    g = torch.Generator().manual_seed(seed)
    (x, y), val = hold_out(x, y, 0.1, g)
    splits = {"train": (x, y), "val": val, "test": test}
    splits = {name: split for name, split in splits.items() if split is not None}
    mean = torch.tensor([0.4914, 0.4822, 0.4465])
    std = torch.tensor([0.247, 0.2435, 0.2616])
    mean, std = mean.view(-1, 1, 1), std.view(-1, 1, 1)
    # evaluation sees the augmentation's counterpart and the preprocessing after it
    for name, (x, y) in splits.items():
        if name != "train":
            x = center_crop(x, size=(32, 32), padding=4)
            x = normalize(x, mean, std)
            splits[name] = x, y
    splits = {name: (x.to(device), y.to(device)) for name, (x, y) in splits.items()}

    def augment(x, g):
        """A training batch's random augmentation, and the preprocessing after it."""
        x = random_crop(x, g, size=(32, 32), padding=4)
        x = random_flip(x, g, p=0.5, dim=-1)
        x = normalize(x, mean.to(x.device), std.to(x.device))
        return x

    return splits, augment, files


# --- Training ----------------------------------------------------------------
class Meter:
    """Sums the loss and counts a confusion matrix, batch by batch."""

    def __init__(self, classes, top_k):
        self.count, self.loss_sum = 0, 0.0
        self.confusion = torch.zeros(classes, classes, dtype=torch.long)
        self.top_k = {k: 0 for k in top_k}  # hits: the true class among the k best

    def update(self, loss, out, y):
        self.count += len(y)
        self.loss_sum += loss.item() * len(y)
        out, y = out.reshape(-1, out.shape[-1]), y.reshape(-1).long()
        classes, pred = self.confusion.shape[0], out.argmax(-1)
        counts = torch.bincount((y * classes + pred).cpu(), minlength=classes * classes)
        self.confusion += counts.view(classes, classes)
        for k in self.top_k:
            hits = (out.topk(k, -1).indices == y[:, None]).any(-1)
            self.top_k[k] += int(hits.sum().item())

    def metrics(self):
        metrics = {name: float(f(self, arg)) for name, (f, arg) in METRICS.items()}
        return {"loss": self.loss_sum / max(1, self.count), **metrics}


def _accuracy(m, _):
    return m.confusion.diag().sum().item() / max(1, m.confusion.sum().item())


def _top_k(m, k):
    return m.top_k[k] / max(1, m.confusion.sum().item())


METRICS = {  # name: (function, what it needs besides the counts: k, or how to average)
    "accuracy": (_accuracy, None),
    "top_k": (_top_k, 5),
}
loss_fn = nn.CrossEntropyLoss(label_smoothing=0.1)


@dataclass
class State:
    """Where training stands; saved with every checkpoint, restored by --resume."""

    epoch: int = 0  # epochs completed
    step: int = 0  # optimizer steps taken
    rows: list = field(default_factory=list)  # metrics.csv: a dict per epoch


def train_epoch(model, optimizer, scheduler, train, g, state, augment):
    """One pass over the training data in a seeded random order; the mean loss."""
    model.train()
    x, y = train
    order = torch.randperm(len(x), generator=g).to(x.device)
    log_every = max(1, len(order) // (10 * BATCH_SIZE))  # about ten lines an epoch
    total, seen = 0.0, 0
    for batch, idx in enumerate(order.split(BATCH_SIZE), 1):
        inputs, targets = augment(x[idx], g), y[idx]
        loss = loss_fn(model(inputs), targets)
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        nn.utils.clip_grad_norm_(model.parameters(), 5.0)
        optimizer.step()
        scheduler.step()
        state.step += 1
        value = loss.item()
        if not math.isfinite(value):
            raise SystemExit(f"error: the loss became {value} at step {state.step}")
        total, seen = total + value * len(targets), seen + len(targets)
        if batch % log_every == 0:
            print(f"  epoch {state.epoch + 1} [{seen}/{len(order)}] loss {value:.4f}")
    return total / max(1, seen)


@torch.no_grad()
def evaluate(model, split):
    """The loss and metrics over a split, in order, in evaluation mode."""
    model.eval()
    x, y = split
    meter = Meter(10, (5,))
    for inputs, targets in zip(x.split(EVAL_BATCH_SIZE), y.split(EVAL_BATCH_SIZE)):
        output = model(inputs).float()
        meter.update(loss_fn(output, targets), output, targets)
    return meter.metrics()


def write_atomic(path, data):
    """`data` (bytes, or a function writing a path) to a temporary file renamed to `path`."""
    path.parent.mkdir(parents=True, exist_ok=True)
    part = path.with_name(path.name + ".part")
    data(part) if callable(data) else part.write_bytes(data)
    os.replace(part, path)


def save_checkpoint(out, model, optimizer, scheduler, g, state):
    """After every epoch: all --resume needs, metrics.csv and the weights so far."""
    checkpoint = {
        "model": model.state_dict(),
        "optimizer": optimizer.state_dict(),
        "scheduler": scheduler.state_dict(),
        "shuffle_rng": g.get_state(),
        "torch_rng": torch.get_rng_state(),
        "state": asdict(state),
    }
    write_atomic(out / "checkpoint.pt", lambda part: torch.save(checkpoint, part))
    lines = [",".join(state.rows[0])]  # the columns, the same in every row; then every
    lines += [",".join(map(repr, row.values())) for row in state.rows]  # value exactly
    write_atomic(out / "metrics.csv", ("\n".join(lines) + "\n").encode())
    tensors = {k: v.detach().contiguous().cpu() for k, v in model.state_dict().items()}
    weights = "model.safetensors" if save_file else "model.pt"
    write_atomic(out / weights, lambda part: (save_file or torch.save)(tensors, part))


def load_checkpoint(out, model, optimizer, scheduler, g):
    """Restore the last checkpoint in `out`; the State it was saved in."""
    if not (out / "checkpoint.pt").is_file():
        raise SystemExit(f"error: no checkpoint to resume in {out}")
    checkpoint = torch.load(out / "checkpoint.pt", weights_only=True)
    model.load_state_dict(checkpoint["model"])
    optimizer.load_state_dict(checkpoint["optimizer"])
    # what follows from the run's length comes from this run: --epochs may have grown
    fresh = scheduler.state_dict()
    length = {k: fresh[k] for k in ("total_steps", "_schedule_phases")}
    scheduler.load_state_dict({**checkpoint["scheduler"], **length})
    g.set_state(checkpoint["shuffle_rng"])
    torch.set_rng_state(checkpoint["torch_rng"])
    return State(**checkpoint["state"])


# --- Command line ------------------------------------------------------------
def main():
    raw = argparse.RawDescriptionHelpFormatter  # the docstring's usage lines as written
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=raw)
    parser.add_argument("--epochs", type=int, default=EPOCHS, help="training epochs")
    parser.add_argument("--seed", type=int, default=SEED, help="of every generator")
    parser.add_argument("--device", default="auto", help="cpu, cuda, mps or auto")
    data = os.environ.get("NETSPEC_DATA") or Path.home() / ".cache" / "netspec"
    parser.add_argument("--data-dir", type=Path, default=data, help="the data root")
    parser.add_argument("--out", type=Path, help="run directory (default: runs/...)")
    parser.add_argument("--resume", type=Path, help="continue the run in this folder")
    args = parser.parse_args()
    cuda, mps = torch.cuda.is_available(), torch.backends.mps.is_available()
    auto = "cuda" if cuda else "mps" if mps else "cpu"  # the fastest there is
    device = torch.device(auto if args.device == "auto" else args.device)
    stamp = time.strftime("%Y%m%d-%H%M%S")
    out = args.resume or args.out or Path("runs", f"{SPEC}-{stamp}")
    root = Path(args.data_dir).expanduser().resolve()
    splits, augment, files = prepare_data(root, args.seed, device)
    train = splits["train"]
    torch.manual_seed(args.seed)  # the model's initial weights
    model = ResNet().to(device)
    steps_per_epoch = math.ceil(len(train[0]) / BATCH_SIZE)
    epochs = args.epochs
    optimizer = torch.optim.SGD(
        model.parameters(), lr=0.1, momentum=0.9, nesterov=True, weight_decay=0.0005
    )
    total_steps = epochs * steps_per_epoch
    scheduler = torch.optim.lr_scheduler.OneCycleLR(
        optimizer, max_lr=0.1, total_steps=total_steps, pct_start=0.3
    )
    g = torch.Generator().manual_seed(args.seed)  # sample order and augmentation
    state = State()
    if args.resume:
        state = load_checkpoint(out, model, optimizer, scheduler, g)

    started = time.perf_counter()
    while state.epoch < epochs:
        start = time.perf_counter()
        train_loss = train_epoch(model, optimizer, scheduler, train, g, state, augment)
        seconds = time.perf_counter() - start
        state.epoch += 1
        row = {"epoch": state.epoch, "train_loss": train_loss}
        if "val" in splits:
            val = evaluate(model, splits["val"])
            row.update({f"val_{name}": value for name, value in val.items()})
        row.update(lr=optimizer.param_groups[0]["lr"], seconds=seconds)
        if not all(math.isfinite(v) for v in row.values()):
            raise SystemExit(f"error: training diverged in epoch {state.epoch}: {row}")
        state.rows.append(row)
        shown = [f"{k} {v:.4g}" for k, v in row.items() if k != "seconds"]
        print("  ".join(shown), f" seconds {seconds:.1f}s")  # as netspec run prints it
        save_checkpoint(out, model, optimizer, scheduler, g, state)

    test = evaluate(model, splits["test"])
    print("test: " + ", ".join(f"{k} {v:.4g}" for k, v in test.items()))
    versions = {"python": platform.python_version(), "torch": torch.__version__}
    summary = {
        "spec": SPEC,
        "test": test,
        "params": sum(p.numel() for p in model.parameters() if p.requires_grad),
        "seed": args.seed,
        "epochs": state.epoch,
        "steps": state.step,
        "stopped_early": False,
        "device": str(device),
        "wall_seconds": round(time.perf_counter() - started, 3),
        "versions": {**versions, "netspec": "0.1.0"},
        "data_sha256": files,
    }
    write_atomic(out / "summary.json", json.dumps(summary, indent=2).encode())


if __name__ == "__main__":
    main()
