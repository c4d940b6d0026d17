"""Train FashionNet from fashion.net in plain PyTorch.

Written by `netspec emit`; needs only torch and numpy. With the same seed it trains on the
CPU to exactly the numbers of `netspec run`, into the same metrics.csv and summary.json.

    python fashion.py --data-dir DIR         # the data root (default: $NETSPEC_DATA)
    python fashion.py --epochs 1 --out runs/try
    python fashion.py --resume runs/try --epochs 5   # continue a run
"""

import argparse
import gzip
import hashlib
import json
import math
import os
import platform
import sys
import time
import urllib.request
from dataclasses import asdict, dataclass, field
from pathlib import Path

import numpy as np
import torch
from torch import nn

try:
    from safetensors.torch import save_file
except ImportError:  # without safetensors, the weights go to model.pt instead
    save_file = None

SPEC = "fashion"
SEED = 1
EPOCHS = 8
BATCH_SIZE = 128
EVAL_BATCH_SIZE = 256


# --- Model -------------------------------------------------------------------
class FashionNet(nn.Sequential):
    """[1, 28, 28] -> [10], 225,098 parameters."""

    def __init__(self):
        super().__init__(
            nn.Conv2d(1, 32, kernel_size=3),  # -> [32, 26, 26]
            nn.BatchNorm2d(32),  # -> [32, 26, 26]
            nn.ReLU(),  # -> [32, 26, 26]
            nn.MaxPool2d(2),  # -> [32, 13, 13]
            nn.Conv2d(32, 64, kernel_size=3),  # -> [64, 11, 11]
            nn.ReLU(),  # -> [64, 11, 11]
            nn.MaxPool2d(2),  # -> [64, 5, 5]
            nn.Flatten(),  # -> [1600]
            nn.Dropout(0.25),  # -> [1600]
            nn.Linear(1600, 128),  # -> [128]
            nn.ReLU(),  # -> [128]
            nn.Linear(128, 10),  # -> [10]
        )


# --- Data --------------------------------------------------------------------
# Fashion-MNIST: the original files under the data root, and their published sha256
DATA_FOLDER = "fashion-mnist"
MIRRORS = ("http://fashion-mnist.s3-website.eu-central-1.amazonaws.com/",)
SHA256 = {
    "train-images-idx3-ubyte.gz": "3aede38d61863908ad78613f6a32ed271626dd12800ba2636569512369268a84",
    "train-labels-idx1-ubyte.gz": "a04f17134ac03560a47e3764e11b92fc97de4d1bfaf8ba1a3aa29af54cc90845",
    "t10k-images-idx3-ubyte.gz": "346e55b948d973a97e58d2351dde16a484bd415d4595297633bb08f03db6a073",
    "t10k-labels-idx1-ubyte.gz": "67da17c76eaffca5446c3361aaab5c3cd6d1c2608764d35dfb1850b086bf8dd5",
}


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


def load_data(root):
    """The four IDX files, each checked by its sha256: training images [N, 1, 28, 28]
    (uint8) and labels (int64), test images and labels, and the checksums."""
    arrays, files = [], {}
    for name, sha256 in SHA256.items():
        path = root / DATA_FOLDER / name
        if not path.is_file():
            download([mirror + name for mirror in MIRRORS], path, "sha256", sha256)
        data = path.read_bytes() if path.is_file() else b""
        files[f"{DATA_FOLDER}/{name}"] = hashlib.sha256(data).hexdigest()
        if files[f"{DATA_FOLDER}/{name}"] != sha256:
            hint = f"put the original there, or use --data-dir ROOT with {DATA_FOLDER}/"
            raise SystemExit(f"error: {path} is missing or not the original; {hint}")
        data = gzip.decompress(data)  # 0, 0, 8 (unsigned), ndim, the dimensions, data
        dims = np.frombuffer(data, ">u4", data[3], 4)
        a = np.frombuffer(data, np.uint8, offset=4 + 4 * data[3]).reshape(dims)
        arrays.append(a[:, None].copy() if a.ndim == 3 else a.astype(np.int64))
    return *arrays, files


def random_flip(x, g, p, dim):
    """Flip each image along `dim` (-1: horizontal, -2: vertical) with probability p."""
    flip = (torch.rand(x.shape[0], generator=g) < p).to(x.device)
    return torch.where(flip[:, None, None, None], x.flip(dim), x)


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
    mean = torch.tensor(0.286)
    std = torch.tensor(0.353)
    # evaluation sees the augmentation's counterpart and the preprocessing after it
    for name, (x, y) in splits.items():
        if name != "train":
            x = normalize(x, mean, std)
            splits[name] = x, y
    splits = {name: (x.to(device), y.to(device)) for name, (x, y) in splits.items()}

    def augment(x, g):
        """A training batch's random augmentation, and the preprocessing after it."""
        x = random_flip(x, g, p=0.5, dim=-1)
        x = normalize(x, mean.to(x.device), std.to(x.device))
        return x

    return splits, augment, files


# --- Training ----------------------------------------------------------------
class Meter:
    """Sums the loss and counts a confusion matrix, batch by batch."""

    def __init__(self, classes):
        self.count, self.loss_sum = 0, 0.0
        self.confusion = torch.zeros(classes, classes, dtype=torch.long)

    def update(self, loss, out, y):
        self.count += len(y)
        self.loss_sum += loss.item() * len(y)
        out, y = out.reshape(-1, out.shape[-1]), y.reshape(-1).long()
        classes, pred = self.confusion.shape[0], out.argmax(-1)
        counts = torch.bincount((y * classes + pred).cpu(), minlength=classes * classes)
        self.confusion += counts.view(classes, classes)

    def metrics(self):
        metrics = {name: float(f(self, arg)) for name, (f, arg) in METRICS.items()}
        return {"loss": self.loss_sum / max(1, self.count), **metrics}


def _average(m, how, score):
    """score(tp, predicted, actual) per class, averaged as scikit-learn does (zero_division=0)."""
    tp = m.confusion.diag().double()
    predicted, actual = m.confusion.sum(0).double(), m.confusion.sum(1).double()
    values, present = score(tp, predicted, actual), (actual > 0) | (predicted > 0)
    if not present.any():
        return 0.0
    if how == "weighted":
        return (values * actual).sum().item() / actual.sum().item()
    if how == "micro":  # single-label: micro precision = recall = f1 = accuracy
        return tp.sum().item() / actual.sum().item()
    return values[present].mean().item()


def _f1(m, how):
    return _average(m, how, lambda tp, pred, true: 2 * tp / (pred + true).clamp(min=1))


def _accuracy(m, _):
    return m.confusion.diag().sum().item() / max(1, m.confusion.sum().item())


METRICS = {  # name: (function, what it needs besides the counts: k, or how to average)
    "accuracy": (_accuracy, None),
    "f1": (_f1, "macro"),
}
loss_fn = nn.CrossEntropyLoss()


@dataclass
class State:
    """Where training stands; saved with every checkpoint, restored by --resume."""

    epoch: int = 0  # epochs completed
    step: int = 0  # optimizer steps taken
    rows: list = field(default_factory=list)  # metrics.csv: a dict per epoch
    best: float | None = None  # the best val_accuracy so far
    bad_epochs: int = 0  # epochs since it improved
    stopped_early: bool = False


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
        optimizer.step()
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
    meter = Meter(10)
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
    length = {k: fresh[k] for k in ("T_max",)}
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
    model = FashionNet().to(device)
    epochs = args.epochs
    optimizer = torch.optim.AdamW(model.parameters(), lr=0.002, weight_decay=0.0001)
    scheduler = torch.optim.lr_scheduler.CosineAnnealingLR(optimizer, T_max=epochs)
    g = torch.Generator().manual_seed(args.seed)  # sample order and augmentation
    state = State()
    if args.resume:
        state = load_checkpoint(out, model, optimizer, scheduler, g)

    started = time.perf_counter()
    while state.epoch < epochs and not state.stopped_early:
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
        scheduler.step()
        value = row.get("val_accuracy", row["train_loss"])
        if state.best is None or value > state.best + 0.0:
            state.best, state.bad_epochs = value, 0
        else:
            state.bad_epochs += 1
        state.stopped_early = state.bad_epochs >= 3
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
        "stopped_early": state.stopped_early,
        "device": str(device),
        "wall_seconds": round(time.perf_counter() - started, 3),
        "versions": {**versions, "netspec": "0.1.0"},
        "data_sha256": files,
    }
    write_atomic(out / "summary.json", json.dumps(summary, indent=2).encode())


if __name__ == "__main__":
    main()
