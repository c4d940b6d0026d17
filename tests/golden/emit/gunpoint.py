"""Train FCN from gunpoint.net in plain PyTorch.

Written by `netspec emit`; needs only torch and numpy. With the same seed it trains on the
CPU to exactly the numbers of `netspec run`, into the same metrics.csv and summary.json.

    python gunpoint.py --data-dir DIR         # the data root (default: $NETSPEC_DATA)
    python gunpoint.py --epochs 1 --out runs/try
    python gunpoint.py --resume runs/try --epochs 5   # continue a run
"""

import argparse
import hashlib
import json
import math
import os
import platform
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path

import numpy as np
import torch
from torch import nn

try:
    from safetensors.torch import save_file
except ImportError:  # without safetensors, the weights go to model.pt instead
    save_file = None

SPEC = "gunpoint"
SEED = 0
EPOCHS = 100
BATCH_SIZE = 10
EVAL_BATCH_SIZE = 256


# --- Model -------------------------------------------------------------------
class ConvBN(nn.Sequential):
    """The spec's block ConvBN(channels, kernel)."""

    def __init__(self, in_channels, channels, kernel):
        super().__init__(
            nn.Conv1d(
                in_channels, channels, kernel_size=kernel, padding="same", bias=False
            ),
            nn.BatchNorm1d(channels),
            nn.ReLU(),
        )


class FCN(nn.Sequential):
    """[1, 150] -> [2], 264,322 parameters."""

    def __init__(self):
        super().__init__(
            ConvBN(1, 128, 7),  # -> [128, 150]
            ConvBN(128, 256, 5),  # -> [256, 150]
            ConvBN(256, 128, 3),  # -> [128, 150]
            nn.Sequential(nn.AdaptiveAvgPool1d(1), nn.Flatten()),  # -> [128]
            nn.Linear(128, 2),  # -> [2]
        )


# --- Data --------------------------------------------------------------------
# relative to this script's folder, then to the data root (--data-dir)
TRAIN_PATH = "ucr-timeseries-classification/GunPoint_TRAIN.ts"
TEST_PATH = "ucr-timeseries-classification/GunPoint_TEST.ts"


def find_file(path, root):
    """A path from the spec: absolute as written, else next to this script, else under
    the data root."""
    p = Path(path).expanduser()
    candidates = [p] if p.is_absolute() else [Path(__file__).parent / p, root / p]
    for candidate in candidates:
        if candidate.exists():
            return candidate
    looked = " and ".join(str(c) for c in candidates)
    raise SystemExit(f"error: {path!r} not found: looked for {looked}")


def read_ts(name, root, files):
    """A .ts file's series [dimensions, length_i], int64 labels and class names."""
    path = find_file(name, root)
    data = path.read_bytes()
    files[name] = hashlib.sha256(data).hexdigest()
    try:
        return ts_series(data.decode("utf-8-sig"))
    except ValueError as e:
        raise SystemExit(f"error: cannot read {path}: {e}") from None


def load_data(root):
    """The series as float32 [N, dimensions, length], padded with zeros at the end to the
    longest of train and test, and int64 labels (in the order of @classLabel), for
    training and testing; and the sha256 of each file."""
    files = {}
    train, y_train, classes = read_ts(TRAIN_PATH, root, files)
    test, y_test, test_classes = read_ts(TEST_PATH, root, files)
    if test_classes != classes or len({s.shape[0] for s in train + test}) > 1:
        raise SystemExit("error: train and test differ in classes or dimensions")
    length = max(s.shape[1] for s in train + test)
    x_train, x_test = ts_stack(train, length), ts_stack(test, length)
    return x_train, y_train, x_test, y_test, files


def ts_series(text):
    """An sktime .ts file's series, as float32 [dimensions, length] each (lengths may
    differ), their int64 labels (indices into the classes in the order @classLabel
    lists them) and the class names; ValueError naming the line of a bad one."""
    header = {}
    series = []
    labels = []
    for n, raw in enumerate(text.splitlines(), 1):
        line = raw.strip()
        if not line or line.startswith("#"):
            continue
        if "data" not in header:
            _ts_header(line, n, header)
            continue
        rows, label = _ts_row(line, n, header)
        series.append(rows)
        labels.append(label)
    classes = header.get("classes")
    if not series or not isinstance(classes, list):
        raise ValueError("no series: it needs a @classLabel line, @data and rows")
    return series, np.array(labels, dtype=np.int64), classes


def _ts_header(line, n, header):
    """One line before @data: the classes, the dimensions, or @data itself."""
    words = line.split()
    key, rest = words[0].lower(), words[1:]
    if key == "@classlabel":
        if not rest or rest[0].lower() != "true" or len(rest) < 2:
            raise ValueError(f"line {n}: @classLabel lists no classes")
        header["classes"] = rest[1:]
    elif key == "@timestamps" and rest and rest[0].lower() == "true":
        raise ValueError(f"line {n}: series with time stamps are not supported")
    elif key == "@dimensions" and rest:
        header["dims"] = int(rest[0]) if rest[0].isdigit() else None
    elif key == "@data":
        if "classes" not in header:
            raise ValueError(f"line {n}: @data before a @classLabel line")
        header["data"] = True
    elif not key.startswith("@"):
        raise ValueError(f"line {n}: {line[:40]!r} before @data")


def _ts_row(line, n, header):
    """One series: its dimensions, split by colons, and the class label last."""
    classes = header["classes"]
    assert isinstance(classes, list)
    *parts, label = line.split(":")
    if not parts:
        raise ValueError(f"line {n}: no class label after the values")
    dims = header.get("dims")
    if dims is not None and len(parts) != dims:
        raise ValueError(f"line {n}: {len(parts)} dimensions, not {dims}")
    header["dims"] = len(parts)
    try:
        rows = [[float(v) for v in p.split(",")] for p in parts]
    except ValueError as e:
        raise ValueError(f"line {n}: {e}") from None
    if len({len(r) for r in rows}) > 1:
        raise ValueError(f"line {n}: dimensions of different lengths")
    if label.strip() not in classes:
        known = ", ".join(classes)
        raise ValueError(f"line {n}: class {label.strip()!r} is not one of {known}")
    return np.array(rows, dtype=np.float32), classes.index(label.strip())


def ts_stack(series, length):
    """Series [dimensions, length_i] as one float32 array [N, dimensions, length],
    each padded with zeros at the end."""
    out = np.zeros((len(series), series[0].shape[0], length), dtype=np.float32)
    for i, s in enumerate(series):
        out[i, :, : s.shape[1]] = s
    return out


def to_tensor(a):
    """An array as a tensor; images (uint8) scaled to [0, 1]."""
    t = torch.from_numpy(a)
    return t.float() / 255 if t.dtype == torch.uint8 else t


def prepare_data(root, seed, device):
    """The splits as (x, y) tensors on `device`, held out and preprocessed as the spec says."""
    x, y, x_test, y_test, files = load_data(root)
    x, y = to_tensor(x), to_tensor(y)
    test = to_tensor(x_test), to_tensor(y_test)
    splits = {"train": (x, y), "test": test}
    splits = {name: (x.to(device), y.to(device)) for name, (x, y) in splits.items()}
    return splits, files


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


def _accuracy(m, _):
    return m.confusion.diag().sum().item() / max(1, m.confusion.sum().item())


METRICS = {  # name: (function, what it needs besides the counts: k, or how to average)
    "accuracy": (_accuracy, None),
}
loss_fn = nn.CrossEntropyLoss()


@dataclass
class State:
    """Where training stands; saved with every checkpoint, restored by --resume."""

    epoch: int = 0  # epochs completed
    step: int = 0  # optimizer steps taken
    rows: list = field(default_factory=list)  # metrics.csv: a dict per epoch


def train_epoch(model, optimizer, scheduler, train, g, state):
    """One pass over the training data in a seeded random order; the mean loss."""
    model.train()
    x, y = train
    order = torch.randperm(len(x), generator=g).to(x.device)
    log_every = max(1, len(order) // (10 * BATCH_SIZE))  # about ten lines an epoch
    total, seen = 0.0, 0
    for batch, idx in enumerate(order.split(BATCH_SIZE), 1):
        inputs, targets = x[idx], y[idx]
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
    meter = Meter(2)
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
    splits, files = prepare_data(root, args.seed, device)
    train = splits["train"]
    torch.manual_seed(args.seed)  # the model's initial weights
    model = FCN().to(device)
    epochs = args.epochs
    optimizer = torch.optim.Adam(model.parameters(), lr=0.003)
    scheduler = torch.optim.lr_scheduler.CosineAnnealingLR(optimizer, T_max=epochs)
    g = torch.Generator().manual_seed(args.seed)  # the order of the samples
    state = State()
    if args.resume:
        state = load_checkpoint(out, model, optimizer, scheduler, g)

    started = time.perf_counter()
    while state.epoch < epochs:
        start = time.perf_counter()
        train_loss = train_epoch(model, optimizer, scheduler, train, g, state)
        seconds = time.perf_counter() - start
        state.epoch += 1
        row = {"epoch": state.epoch, "train_loss": train_loss}
        row.update(lr=optimizer.param_groups[0]["lr"], seconds=seconds)
        if not all(math.isfinite(v) for v in row.values()):
            raise SystemExit(f"error: training diverged in epoch {state.epoch}: {row}")
        state.rows.append(row)
        scheduler.step()
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
