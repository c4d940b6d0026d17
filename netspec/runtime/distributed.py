"""Data-parallel training over several processes: torchrun's environment, the process group, each
process's part of every batch, the collectives that make N processes train as one, and the launcher
of `netspec run --nproc N`.

A run that torchrun started (RANK, WORLD_SIZE, LOCAL_RANK, MASTER_ADDR, MASTER_PORT in the
environment, WORLD_SIZE > 1) joins a process group: NCCL on CUDA (the device cuda:LOCAL_RANK), gloo
on the CPU. Every process loads the data and draws the same seeded permutation each epoch; `batch`
in the spec stays the global batch, of which each process takes a contiguous part (sizes at most
one apart). Its loss, the mean over its part, is weighed by its share of the batch times the world
size, so that DistributedDataParallel's average of the gradients is the gradient of the global
batch's mean loss, as in one process, also for a last batch that does not divide evenly.
Augmentation draws its random numbers for the whole global batch in every process (its part among
zeros), so the shuffle generator stays the same everywhere and a sample is augmented as one process
augments it. Evaluation splits are cut into contiguous spans, and the Meter's sums (counts, the
confusion matrix, loss and error sums) are added across processes: exact counts, not an average of
averages.

Rank 0 alone prints and writes the run directory. What it checkpoints is what one process would
(the model, the optimizer, the shuffle generator, the step), so `--resume` works with any world
size. A signal that reaches any process stops all of them after the same step: the stop travels with
that step's loss.
"""

from __future__ import annotations

import contextlib
import datetime
import gc
import os
import signal
import sys
import tempfile
import uuid
from dataclasses import dataclass
from typing import Any, Callable, Iterator, Mapping, Sequence

import torch
from torch import nn

from netspec.language.diagnostics import UsageError
from netspec.runtime import interrupts

TIMEOUT_S = 600  # a collective that waits longer for a process fails (NETSPEC_DIST_TIMEOUT)
SHUTDOWN_S = 30  # after a failure, the launcher's wait for the other processes before SIGKILL
STOPS = (signal.SIGTERM, signal.SIGINT)  # how torchrun stops the other processes
LAUNCHER = "NETSPEC_LAUNCHER_PID"  # set by `netspec run --nproc` for the processes it starts


class PeerError(Exception):
    """Another process of the run failed, so this one cannot go on (a collective broke or timed out)."""


# --- the job and the process group ---------------------------------------------------------------


@dataclass(frozen=True)
class World:
    """This process's place in the job: rank (0..size-1), size, and its rank on this machine."""

    rank: int = 0
    size: int = 1
    local_rank: int = 0

    @property
    def main(self) -> bool:
        return self.rank == 0


def world(env: Mapping[str, str] = os.environ) -> World:
    """From the environment torchrun sets; one process when torchrun did not start this one."""
    if "WORLD_SIZE" not in env:
        return World()
    try:
        rank, size, local = (int(env.get(k, "0")) for k in ("RANK", "WORLD_SIZE", "LOCAL_RANK"))
    except ValueError:
        raise UsageError("RANK, WORLD_SIZE and LOCAL_RANK must be integers (torchrun sets them)") from None
    if not 0 <= rank < size or local < 0:
        raise UsageError(f"RANK={rank}, WORLD_SIZE={size}, LOCAL_RANK={local}: not a place in a job")
    return World(rank, size, local)


@dataclass
class Group:
    """The processes of a run, or this one alone (backend None): every method works for both."""

    world: World
    device: torch.device
    backend: str | None = None

    def summary(self) -> dict[str, Any]:
        return {"world_size": self.world.size, "backend": self.backend}

    def barrier(self) -> None:
        if self.backend is not None:
            _collective(lambda: _dist().barrier())

    def main_first(self) -> None:
        """The other processes wait here until rank 0 has called `main_done` (it checks the run
        directory and loads, perhaps downloads, the data before they read them)."""
        if not self.world.main:
            self.barrier()

    def main_done(self) -> None:
        if self.world.main:
            self.barrier()


@contextlib.contextmanager
def joined(device: torch.device) -> Iterator[Group]:
    """The run's process group while it trains: this process alone outside torchrun."""
    me = world()
    if me.size == 1:
        yield Group(me, device)
        return
    _follow_launcher()
    device, backend = _placed(device, me)
    dist = _dist()
    timeout = datetime.timedelta(seconds=float(os.environ.get("NETSPEC_DIST_TIMEOUT", TIMEOUT_S)))
    _collective(lambda: dist.init_process_group(backend, timeout=timeout))
    try:
        yield Group(me, device, backend)
    finally:
        gc.collect()  # DDP's reducer, in a reference cycle, must go before its process group (else a C++ abort)
        dist.destroy_process_group()


def _follow_launcher() -> None:
    """A process that `netspec run --nproc` started stops (SIGTERM: after its step) when the launcher
    dies, even of SIGKILL, rather than train on alone (Linux; elsewhere torchrun's behaviour holds)."""
    launcher = os.environ.get(LAUNCHER)
    if sys.platform != "linux" or not launcher:
        return
    import ctypes

    with contextlib.suppress(OSError, AttributeError):
        ctypes.CDLL(None, use_errno=True).prctl(1, int(signal.SIGTERM))  # PR_SET_PDEATHSIG
    if str(os.getppid()) != launcher:  # it died before that
        os.kill(os.getpid(), signal.SIGTERM)


def _placed(device: torch.device, me: World) -> tuple[torch.device, str]:
    """A process's device and the backend of its collectives: NCCL on its GPU, gloo on the CPU."""
    if device.type == "cuda":
        if me.local_rank >= torch.cuda.device_count():
            raise UsageError(f"LOCAL_RANK {me.local_rank} needs GPU {me.local_rank}, but this machine has "
                             f"{torch.cuda.device_count()}; start at most that many processes per machine")  # fmt: skip
        torch.cuda.set_device(me.local_rank)
        return torch.device("cuda", me.local_rank), "nccl"
    if device.type == "cpu":
        return device, "gloo"
    raise UsageError(f"data-parallel training runs on CUDA (NCCL) or the CPU (gloo), not on {device.type}; "
                     "use --device cpu")  # fmt: skip


def _dist() -> Any:
    import torch.distributed as dist

    return dist


def _collective(call: Callable[[], Any]) -> Any:
    """A collective, whose failure (a process died, or timed out) is a PeerError."""
    try:
        return call()
    except RuntimeError as e:  # DistBackendError, DistNetworkError, DistStoreError (a timeout)
        raise PeerError(f"another process of the run failed or stopped ({_first_words(e)})") from None


def _first_words(error: Exception) -> str:
    """`[.../gloo/transport/tcp/pair.cc:537] Read error [127.0.0.1]:19871: Connection reset by peer.
    This is typically caused by...`: the words between the source location and the first full stop."""
    text = str(error).strip() or type(error).__name__
    text = text.split("] ", 1)[1] if text.startswith("[") and "] " in text else text
    return text.splitlines()[0].split(". ")[0][:300]


# --- one process's part of the work --------------------------------------------------------------


class Shard:
    """This process's part of each batch, and the collectives that make the processes train as one.
    `model` is the DistributedDataParallel wrapper that training calls; evaluation and checkpoints use
    the plain network underneath."""

    def __init__(self, group: Group, model: nn.Module) -> None:
        from torch.nn.parallel import DistributedDataParallel

        self.rank, self.size = group.world.rank, group.world.size
        self.device, self.backend = group.device, group.backend
        ids = [group.device.index] if group.device.type == "cuda" else None
        self.model = _collective(lambda: DistributedDataParallel(model, device_ids=ids))
        self.agreed = 0  # the signal that every process saw in the last step's all-reduce (0: none)
        if self.rank:  # dropout draws differ between processes, the same for the same seed and rank
            torch.manual_seed(int(torch.randint(0, 2**62, ())) + self.rank)

    def counts(self, n: int) -> list[int]:
        """How many samples of a batch of n each process takes: contiguous parts, at most one apart."""
        base, extra = divmod(n, self.size)
        return [base + (r < extra) for r in range(self.size)]

    def _bounds(self, n: int) -> tuple[int, int]:
        counts = self.counts(n)
        start = sum(counts[: self.rank])
        return start, start + counts[self.rank]

    def part(self, idx: torch.Tensor) -> torch.Tensor:
        """This process's indices of a global batch. When the batch is smaller than the world, a
        process with no part takes the first sample, which `loss` weighs zero (every process steps)."""
        a, b = self._bounds(len(idx))
        return idx[a:b] if b > a else idx[:1]

    def span(self, n: int) -> torch.Tensor:
        """This process's contiguous share of the indices of a split of n samples (evaluation)."""
        a, b = self._bounds(n)
        return torch.arange(a, b)

    def loss(self, fn: Callable[..., torch.Tensor], x: torch.Tensor, y: torch.Tensor, n: int) -> torch.Tensor:
        """The loss of this process's part of a global batch of n samples, weighed so that DDP's
        average of the gradients is the gradient of the whole batch's mean loss."""
        a, b = self._bounds(n)
        return fn(self.model(x), y) * ((b - a) * self.size / n)

    def mean(self, loss: torch.Tensor) -> float:
        """The global batch's mean loss, from every process's weighed loss; a signal that any process
        had by then is `agreed` in all of them, so that they stop after this same step (`check`)."""
        signum = interrupts.pending()
        flags = torch.tensor([float(signum > 0), float(signum)], dtype=torch.float64, device=loss.device)
        values = torch.cat([loss.detach().double().reshape(1), flags])
        _collective(lambda: _dist().all_reduce(values))
        total, asked, signals = values.tolist()
        self.agreed = round(signals / asked) if asked else 0
        return float(total / self.size)

    def check(self) -> None:
        """Stop here if every process agreed to in the last all-reduce. A signal that came after it
        waits for the next one: a process that stopped on its own would leave the others waiting in
        the next step's gradient all-reduce (until torchrun killed them, silently)."""
        interrupts.stop_agreed(self.agreed)

    def augment(self, x: torch.Tensor, augment: Sequence[Callable[..., torch.Tensor]], g: Any, n: int) -> torch.Tensor:
        """Augment this part as one process augments the whole batch of n: random numbers are drawn
        for all n samples (the other parts' places hold zeros) in every process alike."""
        if not augment:
            return x
        a, b = self._bounds(n)
        whole = x.new_zeros((n, *x.shape[1:]))
        whole[a:b] = x[: b - a]
        for fn in augment:
            whole = fn(whole, g)
        return whole[a:b] if b > a else whole[:1]

    def reduce(self, meter: Any) -> None:
        """Add every process's Meter sums into each: counts and sums, so metrics are exact."""
        top = list(meter.top_k)
        sums = [meter.count, meter.loss_sum, meter.abs_err, meter.sq_err, *(meter.top_k[k] for k in top)]
        values = torch.tensor(sums, dtype=torch.float64, device=self.device)
        _collective(lambda: _dist().all_reduce(values))
        count, meter.loss_sum, meter.abs_err, meter.sq_err, *hits = values.tolist()
        meter.count, meter.top_k = round(count), {k: round(h) for k, h in zip(top, hits)}
        if meter.confusion is not None:
            confusion = meter.confusion.to(self.device)
            _collective(lambda: _dist().all_reduce(confusion))
            meter.confusion = confusion.cpu()

    def gather(self, outputs: list[torch.Tensor], n: int, shape: Sequence[int]) -> torch.Tensor:
        """Every process's outputs over its span of a split of n samples, in order (of shape
        [n, *shape]); rank 0 draws the test plots from them."""
        counts = self.counts(n)
        mine = torch.cat(outputs) if outputs else torch.zeros((0, *shape))
        padded = torch.zeros((max(counts), *shape), device=self.device)
        padded[: len(mine)] = mine.to(self.device)
        parts = [torch.empty_like(padded) for _ in counts]
        _collective(lambda: _dist().all_gather(parts, padded))
        return torch.cat([p[:c] for p, c in zip(parts, counts)]).cpu()


def shard(group: Group, model: nn.Module, trainer: Any, sync_batchnorm: bool) -> tuple[nn.Module, Shard | None]:
    """The network, with SyncBatchNorm when asked, and its Shard; no Shard for one process."""
    if group.backend is None:
        return model, None
    if trainer is not None:
        raise UsageError("data-parallel training (--nproc, torchrun) trains one network with one loss; "
                         "a GAN trains in one process")  # fmt: skip
    if sync_batchnorm:
        if group.device.type != "cuda":
            raise UsageError("--sync-batchnorm needs CUDA: torch's SyncBatchNorm does not run on the CPU; "
                             "without it, each process normalizes with its own part of the batch")  # fmt: skip
        model = nn.SyncBatchNorm.convert_sync_batchnorm(model)  # the same parameters: the optimizer keeps them
    return model, Shard(group, model)


# --- netspec run --nproc N -------------------------------------------------------------------------


def launch(nproc: int, args: Sequence[str]) -> int:
    """`python -m netspec run ARGS` in nproc processes on this machine, through torchrun's launcher
    (its standalone rendezvous); the job's exit status. A process that dies takes the others down
    (torchrun stops them: SIGTERM, then SIGKILL after SHUTDOWN_S); Ctrl-C reaches them through it."""
    from torch.distributed.elastic.multiprocessing import DefaultLogsSpecs, SignalException
    from torch.distributed.elastic.multiprocessing.errors import ChildFailedError
    from torch.distributed.launcher.api import LaunchConfig, elastic_launch

    _quiet_launcher()
    os.environ.setdefault("OMP_NUM_THREADS", str(max(1, (os.cpu_count() or 1) // nproc)))  # as torchrun does
    os.environ[LAUNCHER] = str(os.getpid())
    with tempfile.TemporaryDirectory(prefix="netspec-torchrun-") as logs:
        config = LaunchConfig(
            min_nodes=1, max_nodes=1, nproc_per_node=nproc, run_id=uuid.uuid4().hex, rdzv_backend="c10d",
            rdzv_endpoint="localhost:0", max_restarts=0, logs_specs=DefaultLogsSpecs(log_dir=logs),
            shutdown_timeout=SHUTDOWN_S,
        )  # fmt: skip
        try:
            elastic_launch(config, sys.executable)("-m", "netspec", "run", *args)
        except ChildFailedError as e:
            return _failed(e.failures, nproc)
        except SignalException as e:  # Ctrl-C or SIGTERM: passed on to the processes, which said what they saved
            return 128 + int(e.sigval)
    return 0


def _failed(failures: Mapping[int, Any], nproc: int) -> int:
    """The job's status: a process killed by a signal is named here (it could say nothing itself),
    and its 128 + signal is the status; otherwise the first failed process's own (it said why)."""
    killed = {rank: f for rank, f in failures.items() if f.exitcode < 0}
    other = {rank: f for rank, f in killed.items() if -f.exitcode not in STOPS}
    killed = other or killed  # a process that torchrun stopped (SIGTERM) after another one died is not news
    for rank, f in sorted(killed.items()):
        name = signal.Signals(-f.exitcode).name
        print(f"netspec: error: process {rank} of {nproc} (pid {f.pid}) was killed by {name}; "
              "the other processes were stopped", file=sys.stderr)  # fmt: skip
    first = min(killed or failures)
    code = int(failures[first].exitcode)
    return 128 - code if code < 0 else code


def _quiet_launcher() -> None:
    """torchrun's agent logs every start and failure; netspec says what matters itself."""
    import logging

    ours = ("torch.distributed.", "torch.multiprocessing")
    for name in [n for n in logging.root.manager.loggerDict if n.startswith(ours)]:  # each sets its own level
        logging.getLogger(name).setLevel(logging.CRITICAL)
