"""Train GPT from shakespeare_gpt.net in plain PyTorch.

Written by `netspec emit`; needs only torch and numpy. With the same seed it trains on the
CPU to exactly the numbers of `netspec run`, into the same metrics.csv and summary.json.

    python shakespeare_gpt.py --data-dir DIR         # the data root (default: $NETSPEC_DATA)
    python shakespeare_gpt.py --epochs 1 --out runs/try
    python shakespeare_gpt.py --resume runs/try --epochs 5   # continue a run
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
import torch.nn.functional as F
from torch import nn

try:
    from safetensors.torch import save_file
except ImportError:  # without safetensors, the weights go to model.pt instead
    save_file = None

SPEC = "shakespeare_gpt"
SEED = 1337
EPOCHS = None  # None: as many as STEPS take
STEPS = 2000  # optimizer steps
BATCH_SIZE = 12
EVAL_BATCH_SIZE = 256


# --- Model -------------------------------------------------------------------
class SelfAttention(nn.Module):
    """Multi-head self-attention over [batch, seq, dim], as nanoGPT's CausalSelfAttention:
    one projection to queries, keys and values, scaled dot-product attention per head,
    and an output projection `proj`."""

    def __init__(self, dim, heads, dropout=0.0, causal=False, bias=True):
        super().__init__()
        self.qkv = nn.Linear(dim, 3 * dim, bias=bias)  # queries, keys, values
        self.proj = nn.Linear(dim, dim, bias=bias)
        self.heads, self.dropout, self.causal = heads, dropout, causal

    def forward(self, x):
        b, t, d = x.shape  # batch, sequence length, features
        q, k, v = self.qkv(x).split(d, dim=2)
        # (b, t, d) -> (b, heads, t, head size)
        q, k, v = (z.view(b, t, self.heads, -1).transpose(1, 2) for z in (q, k, v))
        p = self.dropout if self.training else 0.0
        y = F.scaled_dot_product_attention(q, k, v, dropout_p=p, is_causal=self.causal)
        y = y.transpose(1, 2).contiguous().view(b, t, d)  # the heads side by side again
        return self.proj(y)


class Residual(nn.Module):
    """A skip connection, y = x + body(x); the body keeps the shape (the checker ensures it)."""

    def __init__(self, body):
        super().__init__()
        self.body = body

    def forward(self, x):
        return x + self.body(x)


class PositionalEmbedding(nn.Module):
    """A learned vector per position added to [batch, seq, dim], as GPT's `wpe`."""

    def __init__(self, max_len, dim):
        super().__init__()
        self.wpe = nn.Embedding(max_len, dim)

    def forward(self, x):
        positions = torch.arange(x.shape[1], device=x.device)
        return x + self.wpe(positions)


def init_normal(module, std, proj_std=None):
    """GPT-2's initialisation, in place: the weights of the linear and embedding layers
    in `module` ~ N(0, std), their biases zero; an attention's output projection `proj`
    ~ N(0, proj_std) when given. Returns the module."""
    for m in module.modules():
        if isinstance(m, (nn.Linear, nn.Embedding)):
            nn.init.normal_(m.weight, mean=0.0, std=std)
            if getattr(m, "bias", None) is not None:
                nn.init.zeros_(m.bias)
    if proj_std is not None:
        nn.init.normal_(module.proj.weight, mean=0.0, std=proj_std)
    return module


class TiedLinear(nn.Module):
    """A language model's output layer, x @ Wᵀ (+ b), whose W is the token embedding's
    weight (weight tying, as GPT-2): one matrix embeds the tokens and scores the next
    one. `tie_weights` hands it the embedding once the model is built."""

    def __init__(self, features, vocab, bias=True):
        super().__init__()
        self.shape = (vocab, features)  # of the embedding's weight
        self.bias = nn.Parameter(torch.zeros(vocab)) if bias else None
        self.embedding = []  # a list: the model owns the embedding

    def forward(self, x):
        return F.linear(x, self.embedding[0].weight, self.bias)


def tie_weights(model):
    """Give each TiedLinear of the model its first nn.Embedding of shape [vocab, dim]."""
    embeddings = [m for m in model.modules() if isinstance(m, nn.Embedding)]
    for head in (m for m in model.modules() if isinstance(m, TiedLinear)):
        same = [e for e in embeddings if tuple(e.weight.shape) == head.shape]
        if not same:
            raise ValueError(f"no embedding of shape {list(head.shape)} to tie to")
        head.embedding = [same[0]]
    return model


class WarmupCosine(torch.optim.lr_scheduler.LRScheduler):
    """nanoGPT's learning rate, stepped after every optimizer step: a linear warm-up
    over `warmup` steps to the optimizer's rate, then a cosine decay to `min_lr` at
    step `total`, and `min_lr` after it."""

    def __init__(self, optimizer, warmup, total, min_lr=0.0, last_epoch=-1):
        self.warmup, self.total, self.min_lr = warmup, total, min_lr
        super().__init__(optimizer, last_epoch)

    def get_lr(self):
        return [self.rate(base) for base in self.base_lrs]

    def rate(self, base):
        step = self.last_epoch  # optimizer steps taken
        if step < self.warmup:
            return base * (step + 1) / (self.warmup + 1)
        if step > self.total:
            return self.min_lr
        decay = (step - self.warmup) / max(1, self.total - self.warmup)
        coeff = 0.5 * (1.0 + math.cos(math.pi * decay))  # from 1 down to 0
        return self.min_lr + coeff * (base - self.min_lr)


def matrix_decay(model, weight_decay):
    """nanoGPT's parameter groups: weight decay on the matrices (embeddings, weights of
    linear layers), none on vectors (biases, the scales of norms)."""
    params = [p for p in model.parameters() if p.requires_grad]
    groups = [
        {"params": [p for p in params if p.dim() >= 2], "weight_decay": weight_decay},
        {"params": [p for p in params if p.dim() < 2], "weight_decay": 0.0},
    ]
    return [g for g in groups if g["params"]]


class Block(nn.Sequential):
    """The spec's block Block(dim, heads)."""

    def __init__(self):
        super().__init__(
            Residual(
                nn.Sequential(
                    nn.LayerNorm(128, bias=False),  # -> [64, 128]
                    init_normal(
                        SelfAttention(128, 4, causal=True, bias=False),
                        std=0.02,
                        proj_std=0.0070710678118654745,
                    ),  # -> [64, 128]
                ),
            ),  # -> [64, 128]
            Residual(
                nn.Sequential(
                    nn.LayerNorm(128, bias=False),  # -> [64, 128]
                    init_normal(
                        nn.Linear(128, 512, bias=False), std=0.02
                    ),  # -> [64, 512]
                    nn.GELU(),  # -> [64, 512]
                    init_normal(
                        nn.Linear(512, 128, bias=False), std=0.0070710678118654745
                    ),  # -> [64, 128]
                ),
            ),  # -> [64, 128]
        )


class GPT(nn.Sequential):
    """[64] -> [64, 65], 804,096 parameters."""

    def __init__(self):
        super().__init__(
            init_normal(nn.Embedding(65, 128), std=0.02),  # -> [64, 128]
            init_normal(PositionalEmbedding(64, 128), std=0.02),  # -> [64, 128]
            nn.Sequential(*[Block() for _ in range(4)]),  # -> [64, 128]
            nn.LayerNorm(128, bias=False),  # -> [64, 128]
            TiedLinear(128, 65, bias=False),  # -> [64, 65]
        )
        tie_weights(self)  # the output layer's weight is the token embedding's


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


METRICS = {}
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
    # what follows from the run's length comes from this run: --epochs may have grown
    fresh = scheduler.state_dict()
    length = {k: fresh[k] for k in ("total",)}
    scheduler.load_state_dict({**checkpoint["scheduler"], **length})
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
    model = GPT().to(device)
    steps_per_epoch = math.ceil(len(train[0]) / BATCH_SIZE)
    steps = args.steps
    epochs = args.epochs or math.ceil(steps / steps_per_epoch)
    optimizer = torch.optim.AdamW(
        matrix_decay(model, 0.1), lr=0.001, betas=(0.9, 0.99), weight_decay=0.1
    )
    total_steps = steps
    scheduler = WarmupCosine(optimizer, warmup=100, total=total_steps, min_lr=0.0001)
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
