"""Train CharLSTM from shakespeare.net in plain PyTorch.

Written by `netspec emit`; needs only torch and numpy. With the same seed it trains on the
CPU to exactly the numbers of `netspec run`, into the same metrics.csv and summary.json.

    python shakespeare.py --data-dir DIR         # the data root (default: $NETSPEC_DATA)
    python shakespeare.py --epochs 1 --out runs/try
    python shakespeare.py --resume runs/try --epochs 5   # continue a run
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

SPEC = "shakespeare"
SEED = 7
EPOCHS = None  # None: as many as STEPS take
STEPS = 2000  # optimizer steps
BATCH_SIZE = 64
EVAL_BATCH_SIZE = 256


# --- Model -------------------------------------------------------------------
class Recurrent(nn.Module):
    """nn.RNN / nn.LSTM / nn.GRU, batch first, returning the sequence or the last state."""

    def __init__(self, cell, input_size, hidden, return_sequences=True, **kwargs):
        super().__init__()
        self.rnn = getattr(nn, cell)(input_size, hidden, batch_first=True, **kwargs)
        self.return_sequences = return_sequences

    def forward(self, x):
        out, state = self.rnn(x)
        if self.return_sequences:
            return out
        h = state[0] if isinstance(state, tuple) else state  # LSTM returns (h, c)
        dirs = 2 if self.rnn.bidirectional else 1
        # the last layer, both directions
        return h[-dirs:].transpose(0, 1).reshape(x.shape[0], -1)


class CharLSTM(nn.Sequential):
    """[64] -> [64, 65], 946,625 parameters."""

    def __init__(self):
        super().__init__(
            nn.Embedding(65, 128),  # -> [64, 128]
            Recurrent(
                "LSTM", 128, 256, dropout=0.1, num_layers=2, return_sequences=True
            ),  # -> [64, 256]
            nn.Linear(256, 65),  # -> [64, 65]
        )


# --- Data --------------------------------------------------------------------
# relative to this script's folder, then to the data root (--data-dir)
DATA_PATH = "tinyshakespeare/input.txt"
# characters per sample
SEQ_LEN = 64
# the last part of the text, the test split
HELD_OUT = 0.1


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


def load_data(root):
    """Training windows at every offset of the first part of the text, the non-overlapping
    windows of its last HELD_OUT part, as int64 ids (indices into the sorted characters of
    the text), each with its targets (shifted by one); and the file's sha256."""
    path = find_file(DATA_PATH, root)
    data = path.read_bytes()
    files = {DATA_PATH: hashlib.sha256(data).hexdigest()}
    try:
        text = data.decode("utf-8-sig")
        x, y, x_test, y_test, _ = char_windows(text, SEQ_LEN, HELD_OUT)
    except ValueError as e:  # UnicodeDecodeError included
        raise SystemExit(f"error: {path}: {e}") from None
    return x, y, x_test, y_test, files


def char_windows(text, seq_len, held_out):
    """A text as character ids (int64 indices into its sorted characters), split as
    nanoGPT splits it: training windows of seq_len at every offset of the first
    1 - held_out of the text (views, not copies: a batch of random offsets is a batch
    of random rows), and non-overlapping windows of the rest, held out whole; the
    targets are the same windows shifted by one. Returns x, y, x_test, y_test and the
    sorted characters' code points; ValueError when a part is shorter than one window."""
    codes = np.frombuffer(text.encode("utf-32-le"), dtype="<u4")  # a code point each
    alphabet, ids = np.unique(codes, return_inverse=True)
    ids = ids.astype(np.int64).reshape(-1)
    cut = int(len(ids) * (1 - held_out))
    train, test = ids[:cut], ids[cut:]
    n = (len(test) - 1) // seq_len  # held-out windows
    if len(train) <= seq_len or n == 0:
        few = f"{len(ids)} characters, too few for a window of seq_len + 1 = {seq_len + 1}"
        raise ValueError(f"{few} in each part (held_out={held_out})")
    windows = np.lib.stride_tricks.sliding_window_view(train, seq_len, writeable=True)
    x_test = test[: n * seq_len].reshape(n, seq_len)
    y_test = test[1 : n * seq_len + 1].reshape(n, seq_len)
    return windows[:-1], windows[1:], x_test, y_test, alphabet


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
criterion = nn.CrossEntropyLoss()


def loss_fn(output, target):
    """The loss at every position: [batch, seq, classes] against [batch, seq]."""
    return criterion(output.flatten(0, -2), target.flatten())


@dataclass
class State:
    """Where training stands; saved with every checkpoint, restored by --resume."""

    epoch: int = 0  # epochs completed
    step: int = 0  # optimizer steps taken
    rows: list = field(default_factory=list)  # metrics.csv: a dict per epoch


def train_epoch(model, optimizer, scheduler, train, g, state, steps):
    """One pass over the training data in a seeded random order; the mean loss."""
    model.train()
    x, y = train
    order = torch.randperm(len(x), generator=g).to(x.device)
    log_every = max(1, min(len(order) // BATCH_SIZE, steps) // 10)  # ten lines a run
    total, seen = 0.0, 0
    for batch, idx in enumerate(order.split(BATCH_SIZE), 1):
        if state.step >= steps:
            break
        inputs, targets = x[idx], y[idx]
        loss = loss_fn(model(inputs), targets)
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        nn.utils.clip_grad_norm_(model.parameters(), 1.0)
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
    meter = Meter(65)
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
    scheduler.load_state_dict(checkpoint["scheduler"])
    g.set_state(checkpoint["shuffle_rng"])
    torch.set_rng_state(checkpoint["torch_rng"])
    return State(**checkpoint["state"])


# --- Command line ------------------------------------------------------------
def main():
    raw = argparse.RawDescriptionHelpFormatter  # the docstring's usage lines as written
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=raw)
    parser.add_argument("--epochs", type=int, default=EPOCHS, help="training epochs")
    parser.add_argument("--steps", type=int, default=STEPS, help="steps, at most")
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
    model = CharLSTM().to(device)
    steps_per_epoch = math.ceil(len(train[0]) / BATCH_SIZE)
    steps = args.steps
    epochs = args.epochs or math.ceil(steps / steps_per_epoch)
    optimizer = torch.optim.AdamW(model.parameters(), lr=0.003)
    scheduler = torch.optim.lr_scheduler.LinearLR(
        optimizer, start_factor=0.01, total_iters=100
    )
    g = torch.Generator().manual_seed(args.seed)  # the order of the samples
    state = State()
    if args.resume:
        state = load_checkpoint(out, model, optimizer, scheduler, g)

    started = time.perf_counter()
    while state.epoch < epochs:
        if state.step >= steps:
            break
        start = time.perf_counter()
        train_loss = train_epoch(model, optimizer, scheduler, train, g, state, steps)
        seconds = time.perf_counter() - start
        state.epoch += 1
        row = {"epoch": state.epoch, "train_loss": train_loss}
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
