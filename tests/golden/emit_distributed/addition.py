"""Train Adder from addition.net in plain PyTorch.

Written by `netspec emit`; needs only torch and numpy. With the same seed it trains on the
CPU to exactly the numbers of `netspec run`, into the same metrics.csv and summary.json.

    python addition.py --data-dir DIR         # the data root (default: $NETSPEC_DATA)
    python addition.py --epochs 1 --out runs/try
    python addition.py --resume runs/try --epochs 5   # continue a run
    torchrun --nproc-per-node 2 addition.py --out runs/two   # data-parallel
"""

import argparse
import json
import math
import os
import platform
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path

import numpy as np
import torch
import torch.distributed as dist
from torch import nn
from torch.nn.parallel import DistributedDataParallel

try:
    from safetensors.torch import save_file
except ImportError:  # without safetensors, the weights go to model.pt instead
    save_file = None

SPEC = "addition"
SEED = 42
EPOCHS = 20
BATCH_SIZE = 64
EVAL_BATCH_SIZE = 256


# --- Model -------------------------------------------------------------------
class Adder(nn.Sequential):
    """[2] -> [1], 4,417 parameters."""

    def __init__(self):
        super().__init__(
            nn.Linear(2, 64),  # -> [64]
            nn.ReLU(),  # -> [64]
            nn.Linear(64, 64),  # -> [64]
            nn.ReLU(),  # -> [64]
            nn.Linear(64, 1),  # -> [1]
        )


# --- Data --------------------------------------------------------------------
# training pairs
SAMPLES = 20000
LOW = 0.0
HIGH = 10.0


def load_data(seed):
    """Synthetic sums for training, and a fifth as many for testing (from another seed)."""
    x_train, y_train = addition_pairs(SAMPLES, LOW, HIGH, seed)
    x_test, y_test = addition_pairs(max(1, SAMPLES // 5), LOW, HIGH, seed + 1)
    return x_train, y_train, x_test, y_test, {}


def addition_pairs(samples, low, high, seed):
    """[a, b] uniform in [low, high) as float32, and a + b as [samples, 1]."""
    x = np.random.default_rng(seed).uniform(low, high, (samples, 2)).astype(np.float32)
    return x, x.sum(axis=1, keepdims=True, dtype=np.float32)


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
    """The splits as (x, y) tensors on `device`, held out and preprocessed as the spec says."""
    x, y, x_test, y_test, files = load_data(seed)
    x, y = to_tensor(x), to_tensor(y)
    test = to_tensor(x_test), to_tensor(y_test)
    g = torch.Generator().manual_seed(seed)
    (x, y), val = hold_out(x, y, 0.1, g)
    x, y = x[:97], y[:97]  # the first samples only
    splits = {"train": (x, y), "val": val, "test": test}
    splits = {name: split for name, split in splits.items() if split is not None}
    splits = {name: (x.to(device), y.to(device)) for name, (x, y) in splits.items()}
    return splits, files


# --- Data-parallel training (torchrun) ---------------------------------------
RANK = int(os.environ.get("RANK", "0"))  # this process, when torchrun started it
WORLD_SIZE = int(os.environ.get("WORLD_SIZE", "1"))  # of how many


def join(device):
    """Join the processes torchrun started: NCCL on this one's GPU, else gloo."""
    if device.type == "cuda":
        device = torch.device("cuda", int(os.environ["LOCAL_RANK"]))
        torch.cuda.set_device(device)
    dist.init_process_group("nccl" if device.type == "cuda" else "gloo")
    return device


def share(n):
    """This process's part of n samples: contiguous, sizes at most one apart."""
    base, extra = divmod(n, WORLD_SIZE)
    start = RANK * base + min(RANK, extra)
    return start, start + base + (RANK < extra)


def add_up(values, device):
    """Every process's numbers, added together."""
    if WORLD_SIZE == 1:
        return list(values)
    total = torch.tensor(values, dtype=torch.float64, device=device)
    dist.all_reduce(total)
    return total.tolist()


# --- Training ----------------------------------------------------------------
class Meter:
    """Sums the loss and the absolute and squared errors, batch by batch."""

    def __init__(self):
        self.count, self.loss_sum = 0, 0.0
        self.abs_err, self.sq_err = 0.0, 0.0  # per sample: the mean over its outputs

    def update(self, loss, out, y):
        self.count += len(y)
        self.loss_sum += loss.item() * len(y)
        err = out - y.float()
        self.abs_err += err.abs().sum().item() / max(1, err[0].numel())
        self.sq_err += err.pow(2).sum().item() / max(1, err[0].numel())

    def add_up(self, device):
        """Every process's sums, added: exact counts, not an average of averages."""
        sums = [self.count, self.loss_sum, self.abs_err, self.sq_err]
        count, self.loss_sum, self.abs_err, self.sq_err = add_up(sums, device)
        self.count = round(count)

    def metrics(self):
        metrics = {name: float(f(self, arg)) for name, (f, arg) in METRICS.items()}
        return {"loss": self.loss_sum / max(1, self.count), **metrics}


def _mae(m, _):
    return m.abs_err / max(1, m.count)


METRICS = {  # name: (function, what it needs besides the counts: k, or how to average)
    "mae": (_mae, None),
}
loss_fn = nn.MSELoss()


@dataclass
class State:
    """Where training stands; saved with every checkpoint, restored by --resume."""

    epoch: int = 0  # epochs completed
    step: int = 0  # optimizer steps taken
    rows: list = field(default_factory=list)  # metrics.csv: a dict per epoch


def train_epoch(model, optimizer, train, g, state):
    """One pass over the training data in a seeded random order; the mean loss."""
    model.train()
    x, y = train
    order = torch.randperm(len(x), generator=g).to(x.device)
    log_every = max(1, len(order) // (10 * BATCH_SIZE))  # about ten lines an epoch
    total, seen = 0.0, 0
    for batch, idx in enumerate(order.split(BATCH_SIZE), 1):
        a, b = share(len(idx))  # this process's part of the batch
        part = slice(a, b) if b > a else slice(0, 1)  # no part: one sample, weighed 0
        weight = (b - a) * WORLD_SIZE / len(idx)  # DDP averages: the batch's mean
        inputs, targets = x[idx[part]], y[idx[part]]
        loss = loss_fn(model(inputs), targets) * weight
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        optimizer.step()
        state.step += 1
        value = add_up([loss.item()], loss.device)[0] / WORLD_SIZE  # the batch's
        if not math.isfinite(value):
            raise SystemExit(f"error: the loss became {value} at step {state.step}")
        total, seen = total + value * len(idx), seen + len(idx)
        if batch % log_every == 0 and RANK == 0:
            print(f"  epoch {state.epoch + 1} [{seen}/{len(order)}] loss {value:.4f}")
    return total / max(1, seen)


@torch.no_grad()
def evaluate(model, split):
    """The loss and metrics over a split, in order, in evaluation mode."""
    model.eval()
    x, y = split
    a, b = share(len(x))  # this process's part of the split
    x, y = x[a:b], y[a:b]
    meter = Meter()
    for inputs, targets in zip(x.split(EVAL_BATCH_SIZE), y.split(EVAL_BATCH_SIZE)):
        output = model(inputs).float()
        meter.update(loss_fn(output, targets), output, targets)
    meter.add_up(x.device)
    return meter.metrics()


def write_atomic(path, data):
    """`data` (bytes, or a function writing a path) to a temporary file renamed to `path`."""
    path.parent.mkdir(parents=True, exist_ok=True)
    part = path.with_name(path.name + ".part")
    data(part) if callable(data) else part.write_bytes(data)
    os.replace(part, path)


def save_checkpoint(out, model, optimizer, g, state):
    """After every epoch: all --resume needs, metrics.csv and the weights so far."""
    checkpoint = {
        "model": model.state_dict(),
        "optimizer": optimizer.state_dict(),
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


def load_checkpoint(out, model, optimizer, g):
    """Restore the last checkpoint in `out`; the State it was saved in."""
    if not (out / "checkpoint.pt").is_file():
        raise SystemExit(f"error: no checkpoint to resume in {out}")
    checkpoint = torch.load(out / "checkpoint.pt", weights_only=True)
    model.load_state_dict(checkpoint["model"])
    optimizer.load_state_dict(checkpoint["optimizer"])
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
    if WORLD_SIZE > 1:  # torchrun started this script: it trains with the others
        device = join(device)
    if RANK > 0:
        dist.barrier()  # rank 0 reads (perhaps downloads) the data first
    splits, files = prepare_data(root, args.seed, device)
    if RANK == 0 and WORLD_SIZE > 1:
        dist.barrier()
    train = splits["train"]
    torch.manual_seed(args.seed)  # the model's initial weights
    model = Adder().to(device)
    epochs = args.epochs
    optimizer = torch.optim.Adam(model.parameters(), lr=0.001)
    g = torch.Generator().manual_seed(args.seed)  # the order of the samples
    state = State()
    if args.resume:
        state = load_checkpoint(out, model, optimizer, g)
    ddp = model  # what trains: in several processes, DDP averages the gradients
    if WORLD_SIZE > 1:
        ddp = DistributedDataParallel(model)
    if RANK > 0:  # dropout masks of its own in each process
        torch.manual_seed(int(torch.randint(0, 2**62, ())) + RANK)

    started = time.perf_counter()
    while state.epoch < epochs:
        start = time.perf_counter()
        train_loss = train_epoch(ddp, optimizer, train, g, state)
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
        if RANK == 0:  # one process prints and writes
            print("  ".join(shown), f" seconds {seconds:.1f}s")  # as netspec run does
            save_checkpoint(out, model, optimizer, g, state)

    test = evaluate(model, splits["test"])
    if RANK == 0:
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
        "world_size": WORLD_SIZE,  # data-parallel processes
        "backend": dist.get_backend() if WORLD_SIZE > 1 else None,
        "wall_seconds": round(time.perf_counter() - started, 3),
        "versions": {**versions, "netspec": "0.1.0"},
        "data_sha256": files,
    }
    if RANK == 0:
        write_atomic(out / "summary.json", json.dumps(summary, indent=2).encode())
    if WORLD_SIZE > 1:
        dist.destroy_process_group()


if __name__ == "__main__":
    main()
