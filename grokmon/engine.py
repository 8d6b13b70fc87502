"""The training loop: a config, and the sinks, checkpointer and command sources it is given at construction.

Runs in the calling thread. No printing, no UI, no files, no signals: checkpoints go through the injected
`Checkpointer`, everything else leaves as events; grokmon.session owns the run around it.
"""

from __future__ import annotations

import contextlib
import enum
import math
import queue
import threading
import time
import traceback
from dataclasses import dataclass
from typing import Any, Protocol, Sequence

import torch

from grokmon.config import Config, TrainConfig
from grokmon.data import Dataset, make_dataset
from grokmon.errors import ConfigError
from grokmon.events import (
    Alert, CheckpointSaved, Command, Evaluation, Event, Failed, Finished, Intervention, RunStarted, Sink,
)
from grokmon.fast import train_forward
from grokmon.interventions import lookup
from grokmon.memory import check_fits
from grokmon.metrics.grokking import GrokClock, OnlineCeilingDetector, phase
from grokmon.metrics.probe import METRIC_KEYS, FourierProbe
from grokmon.model import Transformer, loss_fn
from grokmon.trainstate import TrainingState


class CommandSource(Protocol):
    def poll(self) -> list[Command | str]:
        """Commands that arrived since the last poll; a string is a rejected command's message."""


class Checkpointer(Protocol):
    def save(self, step: int, state: TrainingState) -> str:
        """Persist a full training state; return where it went."""


class RunStatus(str, enum.Enum):
    """How a run ended (summary.json "status"). A str, so it compares and serialises as its value."""

    COMPLETED = "completed"  # reached max_steps, or stop_after_grok steps after grokking
    STOPPED = "stopped"  # a stop command (the TUI's q, control.jsonl)
    INTERRUPTED = "interrupted"  # a signal (Ctrl-C, SIGTERM, SIGHUP): see request_stop
    DIVERGED = "diverged"  # a non-finite loss
    FAILED = "failed"  # an exception in the training loop

    def __str__(self) -> str:
        return self.value


@dataclass(frozen=True)
class RunResult:
    status: RunStatus
    step: int
    t_grok: int | None
    reason: str = ""
    error: str = ""


def resolve_device(name: str) -> torch.device:
    """train.device to a torch device; asking for a device this machine lacks is a ConfigError."""
    if name == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    try:
        device = torch.device(name)
    except RuntimeError:
        raise ConfigError(f"expected 'auto', 'cpu', 'cuda', 'cuda:N' or 'mps', got {name!r}",
                          key="train.device") from None
    if device.type == "cuda" and not torch.cuda.is_available():
        raise ConfigError(f"expected a device this machine has; torch sees no CUDA GPU, got {name!r} "
                          "(use 'auto' or 'cpu')", key="train.device")
    if device.type == "cuda" and device.index is not None and device.index >= torch.cuda.device_count():
        raise ConfigError(f"expected cuda:0..cuda:{torch.cuda.device_count() - 1}, got {name!r}",
                          key="train.device")
    if device.type == "mps" and not torch.backends.mps.is_available():
        raise ConfigError(f"expected a device this machine has; MPS is not available, got {name!r}",
                          key="train.device")
    return device


def make_optimizer(model: torch.nn.Module, cfg: Config) -> torch.optim.AdamW:
    """AdamW on every parameter (Nanda decays all of them); fused where this torch has it."""
    o = cfg.optim
    kwargs: dict[str, Any] = dict(lr=o.lr, betas=(o.beta1, o.beta2), weight_decay=o.weight_decay)
    if o.fused:
        try:
            return torch.optim.AdamW(model.parameters(), fused=True, **kwargs)
        except (RuntimeError, TypeError, ValueError):
            pass  # this device/torch has no fused kernel: the foreach one is next best
    return torch.optim.AdamW(model.parameters(), **kwargs)


@dataclass(frozen=True)
class Precision:
    """train.precision on a device: the parameters' dtype and the training forward's autocast. Evaluation,
    the probe and the loss never use it: they run in the parameters' dtype (fp32 or fp64) or float64."""

    name: str
    device_type: str
    param_dtype: torch.dtype  # parameters, gradients and AdamW state: fp32 for fp32 and bf16, fp64 for fp64

    @classmethod
    def of(cls, train: TrainConfig, device: torch.device) -> "Precision":
        if train.precision == "bf16" and device.type == "cuda" and not torch.cuda.is_bf16_supported():
            raise ConfigError(f"this GPU ({torch.cuda.get_device_name(device)}) has no bf16 support; "
                              "use 'fp32' (with train.tf32 = true for tensor cores) or 'fp64'",
                              key="train.precision")
        if train.precision == "fp64" and device.type == "mps":
            raise ConfigError("MPS has no float64; use 'fp32' or 'bf16', or train.device = 'cpu'",
                              key="train.precision")
        if device.type == "cuda":  # process-wide switches: the last engine built on CUDA sets them
            torch.backends.cuda.matmul.allow_tf32 = train.tf32
            torch.backends.cudnn.allow_tf32 = train.tf32
        return cls(train.precision, device.type, torch.float64 if train.precision == "fp64" else torch.float32)

    def autocast(self) -> contextlib.AbstractContextManager[Any]:
        """The training forward's context: bf16 matrix products with fp32 master weights, or nothing."""
        if self.name == "bf16":
            return torch.autocast(device_type=self.device_type, dtype=torch.bfloat16)
        return contextlib.nullcontext()


class Engine:
    """Trains one run. `commands` and `request_stop` may be used from any thread; events are emitted on
    the thread that calls `run()`."""

    def __init__(
        self,
        cfg: Config,
        *,
        sinks: Sequence[Sink] = (),
        checkpointer: Checkpointer | None = None,
        command_sources: Sequence[CommandSource] = (),
        resume_state: TrainingState | None = None,
    ) -> None:
        self.cfg = cfg
        self.sinks: tuple[Sink, ...] = tuple(sinks)
        self.checkpointer = checkpointer
        self.commands: queue.Queue[Command] = queue.Queue()
        self.command_sources: tuple[CommandSource, ...] = tuple(command_sources)  # polled between steps
        self._interrupt = threading.Event()  # request_stop: a signal asked the run to stop at a step boundary
        self._interrupt_reason = ""
        self._abort = threading.Event()  # abort: stop at the next step boundary without a final checkpoint
        self._replay: dict[int, list[Command]] = {}  # step -> commands a crashed process applied there
        self.device = resolve_device(cfg.train.device)
        check_fits(cfg, self.device)  # before any allocation: an impossible size is a one-line error
        self.data: Dataset = make_dataset(cfg.task)
        self.tokens = self.data.tokens.to(self.device)  # [n_pairs, 3]
        self.labels = self.data.labels.to(self.device)  # [n_pairs]
        self.train_idx = self.data.train_idx.to(self.device)
        self.val_idx = self.data.val_idx.to(self.device)
        self.train_tokens = self.tokens[self.train_idx]
        self.train_labels = self.labels[self.train_idx]
        self.precision = Precision.of(cfg.train, self.device)
        self.model = Transformer(cfg.model, cfg.task.p).to(self.device, self.precision.param_dtype)
        self.optimizer = make_optimizer(self.model, cfg)
        self.base_lr = cfg.optim.lr
        self.batch_gen = torch.Generator().manual_seed(cfg.train.seed)
        self.step = 0
        self.grok = GrokClock()
        self.last_eval_step = -1
        self.last_checkpoint_step = -1
        self.wall_offset = 0.0
        self._t0 = time.perf_counter()
        self._resumed = resume_state is not None
        me = cfg.metrics
        self.probe = FourierProbe(
            cfg.task.op, cfg.task.p, self.data.labels, self.data.train_mask, n_perm=me.n_perm,
            statistic=me.fsd_statistic, top_m=me.fsd_top_m, alpha=me.alpha, seed=cfg.model.seed,
        ) if me.metrics_every > 0 else None
        self.detector = OnlineCeilingDetector(me.alpha)
        self.fsd_history: list[list[float]] = []  # [step, fsd, p] per probe: replayed into the detector on resume
        forward = train_forward(self.model) if cfg.train.fast else self.model
        self._train_forward = torch.compile(forward) if cfg.train.compile else forward
        self._eval_forward = forward
        if resume_state is not None:
            self.load_state(resume_state)

    # -- state -------------------------------------------------------------------------------

    @property
    def wall_s(self) -> float:
        return self.wall_offset + time.perf_counter() - self._t0

    @property
    def weight_decay(self) -> float:
        return float(self.optimizer.param_groups[0]["weight_decay"])

    @property
    def t_grok(self) -> int | None:
        return self.grok.t_grok

    def state(self) -> TrainingState:
        """Everything needed to continue bit-for-bit: params, AdamW moments, step, schedule, RNG."""
        rng: dict[str, Any] = {"torch": torch.get_rng_state(), "batch": self.batch_gen.get_state()}
        if self.device.type == "cuda":
            rng["cuda"] = torch.cuda.get_rng_state(self.device)
        return TrainingState(
            step=self.step, wall_s=self.wall_s, model=self.model.state_dict(),
            optimizer=self.optimizer.state_dict(), base_lr=self.base_lr, rng=rng, t_grok=self.t_grok,
            fsd_history=tuple((int(s), float(v), float(p)) for s, v, p in self.fsd_history),
        )

    def load_state(self, state: TrainingState) -> None:
        try:
            self.model.load_state_dict(state.model)
            self.optimizer.load_state_dict(state.optimizer)
            torch.set_rng_state(state.rng["torch"])
            self.batch_gen.set_state(state.rng["batch"])
        except (RuntimeError, KeyError, ValueError, TypeError) as e:
            first = str(e).strip().splitlines()[0] if str(e).strip() else type(e).__name__
            raise ConfigError(f"the checkpoint does not fit this run's config ({first[:160]})",
                              source="checkpoint") from None
        self.base_lr = state.base_lr
        if "cuda" in state.rng and self.device.type == "cuda":
            torch.cuda.set_rng_state(state.rng["cuda"], self.device)
        self.step = state.step
        self.wall_offset = state.wall_s
        # A checkpoint may be taken before or after the evaluation at its own step, so a resumed run always
        # evaluates that step again (deterministic: the same row) and forgets what it saw there.
        self.grok = GrokClock(state.t_grok if state.t_grok is not None and state.t_grok < self.step else None)
        self.last_eval_step = -1
        self.last_checkpoint_step = self.step
        for step, value, p_value in state.fsd_history:
            if step < self.step:
                self._observe_fsd(step, value, p_value)

    # -- stopping from other threads -------------------------------------------------------------

    def replay_at(self, step: int, cmd: Command) -> None:
        """Apply `cmd` when the run reaches `step` (before that step's queued commands): a resumed run redoes
        what the process that died applied after its last checkpoint, so its rows match a run that never died."""
        self._replay.setdefault(int(step), []).append(cmd)

    def request_stop(self, reason: str) -> None:
        """Stop at the next step boundary with a checkpoint, as INTERRUPTED (a signal: `reason` names it).
        Thread-safe and async-signal-safe (it only sets a flag)."""
        if not self._interrupt.is_set():
            self._interrupt_reason = reason
            self._interrupt.set()

    def abort(self) -> None:
        """Stop at the next step boundary without the final checkpoint (a second signal). Thread-safe."""
        self._abort.set()
        self._interrupt.set()

    # -- loop --------------------------------------------------------------------------------

    def emit(self, event: Event) -> None:
        for sink in self.sinks:
            sink(event)

    def run(self) -> RunResult:
        """Train until max_steps, stop_after_grok, a stop command or a non-finite loss."""
        self._t0 = time.perf_counter()
        try:
            self.emit(RunStarted(
                step=self.step, wall_s=self.wall_s, config=self.cfg.to_dict(), device=str(self.device),
                n_params=sum(p.numel() for p in self.model.parameters()),
                n_train=len(self.train_idx), n_val=len(self.val_idx), resumed=self._resumed,
                torch_version=torch.__version__,
            ))
            status, reason = self._loop()
        except Exception as exc:  # the run directory must say what happened; the caller decides the rest
            self.emit(Failed(step=self.step, wall_s=self.wall_s, error=f"{type(exc).__name__}: {exc}",
                             traceback=traceback.format_exc()))
            return RunResult(RunStatus.FAILED, self.step, self.t_grok, error=f"{type(exc).__name__}: {exc}")
        self.emit(Finished(step=self.step, wall_s=self.wall_s, status=status, reason=reason))
        return RunResult(status, self.step, self.t_grok, reason=reason)

    def _loop(self) -> tuple[RunStatus, str]:
        tr = self.cfg.train
        check_every_step = self.device.type == "cpu"  # on a GPU each check is a sync point: check at evals
        while True:
            if self.step % tr.eval_every == 0 and self.step != self.last_eval_step:
                if not self.evaluate():
                    return RunStatus.DIVERGED, "non-finite loss"
            self._apply_schedule()
            stop = self._stop_step()
            if self.step >= stop:
                break
            outcome = self._drain_commands()
            if outcome is not None:
                return outcome
            loss = self.train_step()
            if check_every_step and not math.isfinite(loss.item()):
                self._nonfinite(f"train loss {loss.item()} at step {self.step}")
                return RunStatus.DIVERGED, "non-finite loss"
            if self.step % tr.checkpoint_every == 0:
                self.checkpoint()
        if self.step != self.last_eval_step and not self.evaluate():
            return RunStatus.DIVERGED, "non-finite loss"
        self.checkpoint()
        return RunStatus.COMPLETED, "grokked" if self.step < tr.max_steps else "max_steps"

    def _stop_step(self) -> int:
        tr = self.cfg.train
        if tr.stop_after_grok >= 0 and self.t_grok is not None:
            return min(tr.max_steps, self.t_grok + tr.stop_after_grok)
        return tr.max_steps

    def _drain_commands(self) -> tuple[RunStatus, str] | None:
        """Apply every queued command; block here while paused. Returns a (status, reason) to stop."""
        paused = False
        for cmd in self._replay.pop(self.step, []):
            self.apply(cmd)
        while True:
            if self._interrupt.is_set():
                return self._interrupted()
            for source in self.command_sources:
                for item in source.poll():
                    if isinstance(item, str):
                        self.emit(Alert(step=self.step, wall_s=self.wall_s, kind="command_rejected", message=item))
                    else:
                        self.commands.put(item)
            try:
                cmd = self.commands.get(timeout=0.25) if paused else self.commands.get_nowait()
            except queue.Empty:
                if paused:
                    continue
                return None
            outcome = self.apply(cmd)
            if outcome is not None:
                return outcome
            if cmd.kind == "pause":
                paused = True
            elif cmd.kind == "resume":
                paused = False

    def _interrupted(self) -> tuple[RunStatus, str]:
        """A signal's stop (request_stop), logged as a stop intervention; abort() skips the checkpoint."""
        reason = self._interrupt_reason or "abort"
        self.emit(Intervention(step=self.step, wall_s=self.wall_s, name="stop", source=f"signal:{reason}"))
        if not self._abort.is_set():
            self.checkpoint()
        return RunStatus.INTERRUPTED, f"signal:{reason}"

    def apply(self, cmd: Command) -> tuple[RunStatus, str] | None:
        """Apply one command between steps (its registry row changes the optimiser) and emit it as an
        Intervention. Returns a (status, reason) when the command ends the run."""
        row = lookup(cmd.kind)
        old, new = row.apply(self, cmd.value)
        self.emit(Intervention(step=self.step, wall_s=self.wall_s, name=row.name, old=old, new=new,
                               source=cmd.source))
        if cmd.kind == "checkpoint":
            self.checkpoint()
        if cmd.kind == "stop":
            self.checkpoint()
            return RunStatus.STOPPED, cmd.source
        return None

    def _apply_schedule(self) -> None:
        """schedule.weight_decay: raise weight decay to kappa * lambda0 once, at the online FSD ceiling ("fsd")
        or at a fixed step ("step"), as an Intervention like a manual one. Runs after the evaluation of a step,
        so a resumed run re-evaluates that step and decides again; a later checkpoint already holds the new
        value in its optimizer state."""
        sc = self.cfg.schedule
        if sc.weight_decay == "fsd":
            due = self.detector.fired_at is not None and self.detector.fired_at == self.step
        elif sc.weight_decay == "step":
            due = self.step == sc.at_step
        else:
            return
        if due:  # called once per step: the loop trains a step after each call
            self.apply(Command("set_weight_decay", sc.kappa * self.cfg.optim.weight_decay,
                               source=f"schedule:{sc.weight_decay}"))

    def scheduled_lr(self) -> float:
        """The learning rate of the next step: base_lr with a linear warm-up over warmup_steps."""
        warmup = self.cfg.optim.warmup_steps
        return self.base_lr * (min(1.0, (self.step + 1) / warmup) if warmup > 0 else 1.0)

    def train_step(self) -> torch.Tensor:
        """One optimiser step on the full train set or a seeded minibatch; returns the detached loss."""
        lr = self.scheduled_lr()
        for group in self.optimizer.param_groups:
            group["lr"] = lr
        bs = self.cfg.train.batch_size
        if bs and bs < len(self.train_idx):
            # Drawn on the host (one generator on every device: resumes are exact anywhere); non_blocking, so
            # the copy of a pageable tensor returns once staged, without waiting for the device's queue.
            pick = torch.randint(len(self.train_idx), (bs,), generator=self.batch_gen).to(self.device,
                                                                                         non_blocking=True)
            tokens, labels = self.train_tokens[pick], self.train_labels[pick]
        else:
            tokens, labels = self.train_tokens, self.train_labels
        with self.precision.autocast():
            logits = self._train_forward(tokens)
        loss = loss_fn(logits, labels)  # float64 whatever the precision (model.loss_fn says why)
        self.optimizer.zero_grad(set_to_none=True)
        loss.backward()
        self.optimizer.step()
        self.step += 1
        return loss.detach()

    @property
    def t_fsd_online(self) -> int | None:
        return self.detector.fired_at

    def _probe_due(self) -> bool:
        every = self.cfg.metrics.metrics_every
        tr = self.cfg.train
        return self.probe is not None and self.step % tr.eval_every == 0 and (self.step // tr.eval_every) % every == 0

    @torch.no_grad()
    def evaluate(self) -> bool:
        """Full train and val evaluation (one forward over all pairs). False if a loss is non-finite."""
        probe_due = self._probe_due()
        # The rows' logits always come from the training kernel (equal to the reference in float64, 4x
        # cheaper on all pairs), so a row does not depend on whether the probe ran at that step; the probe's
        # block outputs come from the reference forward's activation cache.
        logits = self._eval_forward(self.tokens)  # [n_pairs, p]
        cache: dict[str, torch.Tensor] | None = None
        if probe_due:
            cache = {}
            self.model(self.tokens, cache)
        correct = logits.argmax(dim=-1) == self.labels
        stats = []
        for idx in (self.train_idx, self.val_idx):
            stats.append(loss_fn(logits[idx], self.labels[idx]))
            stats.append(correct[idx].to(torch.float64).mean())
        train_loss, train_acc, val_loss, val_acc = torch.stack(stats).tolist()  # one sync point
        self.last_eval_step = self.step
        if not (math.isfinite(train_loss) and math.isfinite(val_loss)):
            self._nonfinite(f"loss train={train_loss} val={val_loss} at step {self.step}")
            return False
        self.grok.observe(self.step, val_acc)
        extra: dict[str, Any] = {}
        spectra: dict[str, list[float]] = {}
        if self.probe is not None:
            extra = dict.fromkeys(METRIC_KEYS)
            if probe_due:
                result = self.probe.measure(dict(self.model.named_parameters()), logits, cache or {}, self.step)
                extra.update(result.metrics)
                spectra = result.spectra
                self._observe_fsd(self.step, result.metrics["fsd"], result.metrics["fsd_p"], emit=True)
            extra["phase"] = phase(train_acc, val_acc, self.t_fsd_online is not None, self.t_grok is not None)
        self.emit(Evaluation(
            step=self.step, wall_s=self.wall_s, train_loss=train_loss, train_acc=train_acc,
            val_loss=val_loss, val_acc=val_acc, lr=self.scheduled_lr(), weight_decay=self.weight_decay,
            extra=extra, spectra=spectra,
        ))
        return True

    def _observe_fsd(self, step: int, value: float, p_value: float, emit: bool = False) -> None:
        self.fsd_history.append([step, value, p_value])
        if self.detector.update(step, value, p_value) and emit:
            self.emit(Alert(step=step, wall_s=self.wall_s, kind="fsd_ceiling",
                            message=f"FSD detector fired (online rule): FSD {value:.3f}, p(FSD) {p_value:.3g}"))

    def _nonfinite(self, message: str) -> None:
        # The diverged state is not checkpointed: the last good checkpoint stays the one to resume.
        self.emit(Alert(step=self.step, wall_s=self.wall_s, kind="nonfinite_loss", message=message))

    def checkpoint(self) -> None:
        if self.checkpointer is None or self.step == self.last_checkpoint_step:
            return
        self.last_checkpoint_step = self.step
        path = self.checkpointer.save(self.step, self.state())  # one copy of every tensor, on this thread
        self.emit(CheckpointSaved(step=self.step, wall_s=self.wall_s, path=path))
