"""Train a GAN, Generator against Discriminator, from cgan.net in plain PyTorch.

Written by `netspec emit`; needs only torch and numpy. With the same seed it trains on the
CPU to exactly the numbers of `netspec run`, into the same metrics.csv and summary.json.

    python cgan.py --data-dir DIR         # the data root (default: $NETSPEC_DATA)
    python cgan.py --epochs 1 --out runs/try
    python cgan.py --resume runs/try --epochs 5   # continue a run
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
import torch.nn.functional as F
from torch import nn

try:
    from safetensors.torch import save_file
except ImportError:  # without safetensors, the weights go to .pt files instead
    save_file = None

SPEC = "cgan"
SEED = 1
EPOCHS = 8
BATCH_SIZE = 64
LATENT = 100  # the size of the generator's noise input
CLASSES = 10  # one-hot labels beside the noise and the images (a conditional GAN)
N_SAMPLES = 100  # drawn from fixed noise at the end, into samples.png
SAMPLES_SEED = 1000003  # of that noise, as netspec run draws it


# --- Model -------------------------------------------------------------------
class Generator(nn.Sequential):
    """[110] -> [1, 28, 28], 822,401 parameters."""

    def __init__(self):
        super().__init__(
            nn.Linear(110, 6272, bias=False),  # -> [6272]
            nn.Sequential(nn.Flatten(), nn.Unflatten(1, (128, 7, 7))),  # -> [128, 7, 7]
            nn.BatchNorm2d(128),  # -> [128, 7, 7]
            nn.ReLU(),  # -> [128, 7, 7]
            nn.ConvTranspose2d(
                128, 64, kernel_size=4, stride=2, padding=1, bias=False
            ),  # -> [64, 14, 14]
            nn.BatchNorm2d(64),  # -> [64, 14, 14]
            nn.ReLU(),  # -> [64, 14, 14]
            nn.ConvTranspose2d(
                64, 1, kernel_size=4, stride=2, padding=1
            ),  # -> [1, 28, 28]
            nn.Tanh(),  # -> [1, 28, 28]
        )


class Discriminator(nn.Sequential):
    """[11, 28, 28] -> [1], 77,729 parameters."""

    def __init__(self):
        super().__init__(
            nn.Conv2d(11, 32, kernel_size=4, stride=2, padding=1),  # -> [32, 14, 14]
            nn.LeakyReLU(negative_slope=0.2),  # -> [32, 14, 14]
            nn.Conv2d(
                32, 128, kernel_size=4, stride=2, padding=1, bias=False
            ),  # -> [128, 7, 7]
            nn.BatchNorm2d(128),  # -> [128, 7, 7]
            nn.LeakyReLU(negative_slope=0.2),  # -> [128, 7, 7]
            nn.Flatten(),  # -> [6272]
            nn.Linear(6272, 1),  # -> [1]
        )


# --- Data --------------------------------------------------------------------
# MNIST: the original files under the data root, and their published sha256
DATA_FOLDER = "mnist"
MIRRORS = (
    "https://ossci-datasets.s3.amazonaws.com/mnist/",
    "https://storage.googleapis.com/cvdf-datasets/mnist/",
)
SHA256 = {
    "train-images-idx3-ubyte.gz": "440fcabf73cc546fa21475e81ea370265605f56be210a4024d2ca8f203523609",
    "train-labels-idx1-ubyte.gz": "3552534a0a558bbed6aed32b30c495cca23d567ec52cac8be1a0730e8010255c",
    "t10k-images-idx3-ubyte.gz": "8d422c7b0a1c1c79245a5bcf07fe86e33eeafee792b84584aec276f5a2dbc4e6",
    "t10k-labels-idx1-ubyte.gz": "f7ae60f92e00ec6debd23a6088c31dbd2371eca3ffa0defaefb259924204aec6",
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


def normalize(x, mean, std):
    """(x - mean) / std; mean and std broadcast over the batch."""
    return (x - mean) / std


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
    mean = torch.tensor(0.5)
    std = torch.tensor(0.5)
    # normalize(mean=0.5, std=0.5), the same for every split
    splits = {k: (normalize(x, mean, std), y) for k, (x, y) in splits.items()}
    splits = {name: (x.to(device), y.to(device)) for name, (x, y) in splits.items()}
    return splits, files


# --- Training ----------------------------------------------------------------
def bce_discriminator_loss(real, fake, smoothing=0.0):
    """-log D(x) - log(1 - D(G(z))): real samples toward 1 (1 - smoothing), fakes
    toward 0."""
    real_target = torch.full_like(real, 1.0 - smoothing)
    real_loss = F.binary_cross_entropy_with_logits(real, real_target)
    return real_loss + F.binary_cross_entropy_with_logits(fake, torch.zeros_like(fake))


def bce_generator_loss(fake):
    """-log D(G(z)), the non-saturating generator loss: strong while D wins."""
    return F.binary_cross_entropy_with_logits(fake, torch.ones_like(fake))


def normal_noise(n, size, device, generator=None):
    """Latent vectors from N(0, 1)."""
    return torch.randn(n, size, device=device, generator=generator)


def with_labels(x, labels, classes):
    """x with each sample's label appended as one-hot values after its own (the first
    axis after the batch): noise [n, latent] -> [n, latent + classes], images
    [n, C, H, W] -> [n, C + classes, H, W] (a conditional GAN's inputs)."""
    onehot = F.one_hot(labels, classes).to(x.dtype)
    onehot = onehot.reshape(*onehot.shape, *[1] * (x.dim() - 2))
    return torch.cat([x, onehot.expand(-1, -1, *x.shape[2:])], dim=1)


@dataclass
class State:
    """Where training stands; saved with every checkpoint, restored by --resume."""

    epoch: int = 0  # epochs completed
    step: int = 0  # discriminator steps taken, one per batch
    rows: list = field(default_factory=list)  # metrics.csv: a dict per epoch


def train_epoch(generator, discriminator, g_optimizer, d_optimizer, train, rng, state):
    """One pass over the training data in a seeded random order: a discriminator step on
    every batch, then a generator step; the mean of each loss."""
    generator.train()
    discriminator.train()
    x, y = train  # the labels: each sample's class, told to both networks
    order = torch.randperm(len(x), generator=rng).to(x.device)
    log_every = max(1, len(order) // (10 * BATCH_SIZE))  # about ten lines an epoch
    d_total, g_total, seen, g_seen = 0.0, 0.0, 0, 0
    for batch, idx in enumerate(order.split(BATCH_SIZE), 1):
        real = x[idx]  # [1, 28, 28] each
        labels = y[idx]  # the class of each
        z = normal_noise(len(real), LATENT, real.device)
        z = with_labels(z, labels, CLASSES)  # [110] each: noise and one-hot class
        fake = generator(z)  # [1, 28, 28] each

        # (1) Update D network: real samples toward "real", the fakes toward "fake",
        # each shown with its class as one-hot channels
        real_in = with_labels(real, labels, CLASSES)  # [11, 28, 28] each
        fake_in = with_labels(fake.detach(), labels, CLASSES)  # no gradient into G
        real_score = discriminator(real_in)  # one score (a logit) each
        fake_score = discriminator(fake_in)
        d_loss = bce_discriminator_loss(real_score, fake_score, smoothing=0.1)
        d_optimizer.zero_grad(set_to_none=True)
        d_loss.backward()
        d_optimizer.step()

        # (2) Update G network: the updated D's scores of the fakes, toward "real"
        g_loss = bce_generator_loss(discriminator(with_labels(fake, labels, CLASSES)))
        g_optimizer.zero_grad(set_to_none=True)
        g_loss.backward()
        g_optimizer.step()
        g_total, g_seen = g_total + g_loss.item() * len(real), g_seen + len(real)
        state.step += 1
        value = d_loss.item()
        if not math.isfinite(value):
            raise SystemExit(f"error: the loss became {value} at step {state.step}")
        d_total, seen = d_total + value * len(real), seen + len(real)
        if batch % log_every == 0:
            print(f"  epoch {state.epoch + 1} [{seen}/{len(order)}] d_loss {value:.4f}")
    return {"d_loss": d_total / max(1, seen), "g_loss": g_total / max(1, g_seen)}


@torch.no_grad()
def sample(generator, device):
    """The generator's samples of a fixed noise batch, drawn from its own seed, of the
    classes in turn (0, 1, ..., CLASSES - 1, 0, 1, ...)."""
    generator.eval()
    fixed = torch.Generator().manual_seed(SAMPLES_SEED)
    z = normal_noise(N_SAMPLES, LATENT, torch.device("cpu"), fixed).to(device)
    labels = torch.arange(N_SAMPLES) % CLASSES
    return generator(with_labels(z, labels.to(device), CLASSES)).float().cpu()


def save_samples(path, images):
    """The images side by side, a column per class, scaled to [0, 1] by the batch's
    range (as torchvision's make_grid(normalize=True)); only with matplotlib."""
    try:
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except ImportError:
        print("no samples.png: matplotlib is not installed")
        return
    images = (images - images.min()) / (images.max() - images.min()).clamp(min=1e-8)
    rows = math.ceil(len(images) / CLASSES)
    fig, axes = plt.subplots(rows, CLASSES, figsize=(CLASSES, rows), squeeze=False)
    for ax in axes.flat:
        ax.axis("off")
    for ax, image in zip(axes.flat, images):
        ax.imshow(image.permute(1, 2, 0).squeeze(-1), cmap="gray", vmin=0, vmax=1)
    write_atomic(path, lambda part: fig.savefig(part, format="png"))
    plt.close(fig)


def write_atomic(path, data):
    """`data` (bytes, or a function writing a path) to a temporary file renamed to `path`."""
    path.parent.mkdir(parents=True, exist_ok=True)
    part = path.with_name(path.name + ".part")
    data(part) if callable(data) else part.write_bytes(data)
    os.replace(part, path)


def save_weights(out, name, net):
    """A network's weights: `name`.safetensors, or `name`.pt without safetensors."""
    tensors = {k: v.detach().contiguous().cpu() for k, v in net.state_dict().items()}
    path = out / (f"{name}.safetensors" if save_file else f"{name}.pt")
    write_atomic(path, lambda part: (save_file or torch.save)(tensors, part))


def save_checkpoint(
    out, generator, discriminator, g_optimizer, d_optimizer, rng, state
):
    """After every epoch: all --resume needs, metrics.csv and the weights so far."""
    checkpoint = {
        "generator": generator.state_dict(),
        "discriminator": discriminator.state_dict(),
        "g_optimizer": g_optimizer.state_dict(),
        "d_optimizer": d_optimizer.state_dict(),
        "shuffle_rng": rng.get_state(),
        "torch_rng": torch.get_rng_state(),
        "state": asdict(state),
    }
    write_atomic(out / "checkpoint.pt", lambda part: torch.save(checkpoint, part))
    lines = [",".join(state.rows[0])]  # the columns, the same in every row; then every
    lines += [",".join(map(repr, row.values())) for row in state.rows]  # value exactly
    write_atomic(out / "metrics.csv", ("\n".join(lines) + "\n").encode())
    save_weights(out, "generator", generator)
    save_weights(out, "discriminator", discriminator)


def load_checkpoint(out, generator, discriminator, g_optimizer, d_optimizer, rng):
    """Restore the last checkpoint in `out`; the State it was saved in."""
    if not (out / "checkpoint.pt").is_file():
        raise SystemExit(f"error: no checkpoint to resume in {out}")
    checkpoint = torch.load(out / "checkpoint.pt", weights_only=True)
    generator.load_state_dict(checkpoint["generator"])
    discriminator.load_state_dict(checkpoint["discriminator"])
    g_optimizer.load_state_dict(checkpoint["g_optimizer"])
    d_optimizer.load_state_dict(checkpoint["d_optimizer"])
    rng.set_state(checkpoint["shuffle_rng"])
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
    torch.manual_seed(args.seed)  # the initial weights, the generator's first
    generator = Generator().to(device)
    discriminator = Discriminator().to(device)
    epochs = args.epochs
    g_optimizer = torch.optim.Adam(
        generator.parameters(), lr=0.0002, betas=(0.5, 0.999)
    )
    d_optimizer = torch.optim.Adam(
        discriminator.parameters(), lr=0.0002, betas=(0.5, 0.999)
    )
    rng = torch.Generator().manual_seed(args.seed)  # the order of the samples
    state = State()
    if args.resume:
        state = load_checkpoint(
            out, generator, discriminator, g_optimizer, d_optimizer, rng
        )

    started = time.perf_counter()
    while state.epoch < epochs:
        start = time.perf_counter()
        losses = train_epoch(
            generator, discriminator, g_optimizer, d_optimizer, train, rng, state
        )
        seconds = time.perf_counter() - start
        state.epoch += 1
        row = {"epoch": state.epoch, **losses}
        row.update(lr=g_optimizer.param_groups[0]["lr"], seconds=seconds)
        if not all(math.isfinite(v) for v in row.values()):
            raise SystemExit(f"error: training diverged in epoch {state.epoch}: {row}")
        state.rows.append(row)
        shown = [f"{k} {v:.4g}" for k, v in row.items() if k != "seconds"]
        print("  ".join(shown), f" seconds {seconds:.1f}s")  # as netspec run prints it
        save_checkpoint(
            out, generator, discriminator, g_optimizer, d_optimizer, rng, state
        )

    save_samples(out / "samples.png", sample(generator, device))
    params = [p for net in (generator, discriminator) for p in net.parameters()]
    versions = {"python": platform.python_version(), "torch": torch.__version__}
    summary = {
        "spec": SPEC,
        "test": {},  # a GAN has no test loss
        "params": sum(p.numel() for p in params if p.requires_grad),
        "seed": args.seed,
        "epochs": state.epoch,
        "steps": state.step,
        "stopped_early": False,
        "device": str(device),
        "wall_seconds": round(time.perf_counter() - started, 3),
        "versions": {**versions, "netspec": "0.1.0"},
        "data_sha256": files,
        "samples": "samples.png",
    }
    write_atomic(out / "summary.json", json.dumps(summary, indent=2).encode())


if __name__ == "__main__":
    main()
