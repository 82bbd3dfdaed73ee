"""The probe interface and the no-trace machinery every probe shares.

A probe is called after the step's backward pass and before the optimiser step (train.py). It must leave
no trace on training (docs/PROTOCOL.md, Pitfalls): weights, .grad, norm running statistics, the noisy-BN noise of
the step, every RNG state and the optimiser state are exactly as before the call. The tools here:

- `NoTrace(model, params)`: a context manager that snapshots the norm buffers (cheap), the given
  parameters (one saved copy: the only copy of the weights a probe ever makes; no deepcopy of the
  model), the torch CPU/CUDA RNG states and the noise generator states, puts noisy-BN layers in replay
  mode (a probe re-uses the noise drawn for the step, never draws fresh noise), and restores all of it
  on exit, also when the probe fails.
- Gradients are taken with `torch.autograd.grad`, never `.backward()`, so `.grad` is never written.
- `OptimizerSnapshot`: save / restore of optimizer.state for the ICS probe, which calls the real
  `optimizer.step()` to get W^{t+1}.
- `listen(probes, model)`: probes that read activations (`Probe.taps`) get them from the step's own
  training forward (hooks that copy outputs) instead of a forward of their own.
- `Probe.__call__`: a failure or a non-finite value becomes NaN in the probe's rows plus a warning,
  never a crash of the run.
"""

from __future__ import annotations

import contextlib
import copy
import math
import warnings
from dataclasses import dataclass, field

import torch

from ..models.norms import noisy_layers, replay_noise

NAN = float("nan")


@dataclass
class ProbeContext:
    step: int
    model: torch.nn.Module
    inputs: torch.Tensor
    targets: torch.Tensor
    loss: torch.Tensor
    optimizer: torch.optim.Optimizer
    task: object
    # outputs of modules that due probes listen to (`Probe.taps`), taken from the step's own training
    # forward by `listen`: {module: output}; empty when the caller did not listen
    heard: dict = field(default_factory=dict)


def make_row(step: int, probe: str, layer: int, eta, metric: str, value) -> dict:
    """One tidy record row (results.PROBE_COLUMNS): eta None -> NaN."""
    return {
        "step": int(step),
        "probe": probe,
        "layer": int(layer),
        "eta": NAN if eta is None else float(eta),
        "metric": metric,
        "value": float(value),
    }


class Probe:
    """Base: `every` steps (0 = never), state_dict for resume.

    Subclasses implement `layout()` (the (layer, eta, metric) keys of one measurement, eta None when not
    applicable) and `measure(ctx)` (a dict from those keys to floats). `__call__` turns the values into
    rows in layout order; any exception or non-finite value gives NaN rows and a warning.
    """

    name = "probe"

    def __init__(self, every: int):
        self.every = int(every)

    def due(self, step: int) -> bool:
        return self.every > 0 and step % self.every == 0

    def taps(self, model: torch.nn.Module) -> list[torch.nn.Module]:
        """Modules whose output in the step's training forward this probe reads (`ProbeContext.heard`),
        instead of running a forward of its own."""
        return []

    def layout(self) -> list[tuple[int, float | None, str]]:
        return []

    def measure(self, ctx: ProbeContext) -> dict:
        raise NotImplementedError

    def __call__(self, ctx: ProbeContext) -> list[dict]:
        try:
            values = self.measure(ctx)
        except Exception as e:  # a probe never crashes the run
            warnings.warn(
                f"probe {self.name} failed at step {ctx.step} ({type(e).__name__}: {e}); recorded as NaN",
                RuntimeWarning,
                stacklevel=2,
            )
            return [make_row(ctx.step, self.name, layer, eta, metric, NAN) for layer, eta, metric in self.layout()]
        rows, bad = [], []
        for key in self.layout():
            layer, eta, metric = key
            value = values.get(key, NAN)
            value = float(value) if value is not None else NAN
            if not math.isfinite(value):
                where = (f"@layer{layer}" if layer else "") + (f"@eta={eta:g}" if eta is not None else "")
                bad.append(metric + where)
                value = NAN
            rows.append(make_row(ctx.step, self.name, layer, eta, metric, value))
        if bad:
            shown = ", ".join(bad[:6]) + (f" and {len(bad) - 6} more" if len(bad) > 6 else "")
            warnings.warn(
                f"probe {self.name} at step {ctx.step}: non-finite {shown}; recorded as NaN",
                RuntimeWarning,
                stacklevel=2,
            )
        return rows

    def wandb(self, rows: list[dict]) -> dict:
        """W&B payload for the rows this probe just returned (logged at the probe's step)."""
        return {}

    def arrays(self) -> dict:
        """Array records beyond the rows (e.g. histograms), {name: ndarray}; the train loop hands them to
        records at checkpoints (probes return data; only records writes files)."""
        return {}

    def state_dict(self) -> dict:
        return {}

    def load_state_dict(self, state: dict) -> None:
        pass

    def __repr__(self) -> str:
        return f"{type(self).__name__}(every={self.every})"


@contextlib.contextmanager
def listen(probes: list[Probe], model: torch.nn.Module):
    """Around the training forward of a step: keep a copy of the output of every module the due `probes`
    tap. The copies are detached (autograd, and so the step, is untouched) and in plain layout; the
    in-place ReLU that follows a norm would otherwise overwrite them."""
    heard: dict = {}
    modules = {id(m): m for p in probes for m in p.taps(model)}
    if not modules:
        yield heard
        return

    def keep(module, inputs, output):
        heard[module] = output.detach().clone(memory_format=torch.contiguous_format)

    handles = [m.register_forward_hook(keep) for m in modules.values()]
    try:
        yield heard
    finally:
        for h in handles:
            h.remove()


# ----------------------------------------------------------------------------------- leaving no trace


class RestoreFailed(BaseException):
    """The training state could not be restored after a probe. Not an Exception on purpose: a probe's
    failure is otherwise recorded as NaN and training goes on, but not from a state that may be altered."""


class NoTrace:
    """Snapshot what a probe could disturb; restore it bit for bit on exit (also on an exception).

    params: the parameters the probe will overwrite (saved once, restored with copy_); None = none.
    Inside the context noisy-BN layers replay the step's noise (`replay_noise`).
    """

    def __init__(self, model: torch.nn.Module, params: list[torch.Tensor] | None = None):
        self.model = model
        self.params = list(params) if params is not None else []
        self.saved: list[torch.Tensor] = []
        self._stack = contextlib.ExitStack()

    def __enter__(self) -> NoTrace:
        model = self.model
        with torch.no_grad():
            self.buffers = [(b, b.clone()) for b in model.buffers()]
            self.saved = [p.detach().clone() for p in self.params]
        self.cpu_rng = torch.get_rng_state()
        self.cuda_rng = (
            torch.cuda.get_rng_state_all() if torch.cuda.is_available() and torch.cuda.is_initialized() else None
        )
        layers = noisy_layers(model)
        self.noise = [(m, m.last_noise) for m in layers]
        gens = {id(m.generator): m.generator for m in layers if m.generator is not None}
        self.gen_states = [(g, g.get_state()) for g in gens.values()]
        self._stack.enter_context(replay_noise(model))
        return self

    def restore_params(self) -> None:
        if self.params:
            with torch.no_grad():
                torch._foreach_copy_(self.params, self.saved)

    def __exit__(self, *exc) -> bool:
        try:
            self._stack.close()
            self.restore_params()
            with torch.no_grad():
                for b, v in self.buffers:
                    b.copy_(v)
            torch.set_rng_state(self.cpu_rng)
            if self.cuda_rng is not None:
                torch.cuda.set_rng_state_all(self.cuda_rng)
            for m, noise in self.noise:
                m.last_noise = noise
            for g, state in self.gen_states:
                g.set_state(state)
        except Exception as e:  # the run cannot go on with a state it cannot trust
            raise RestoreFailed(f"a probe could not restore the training state ({type(e).__name__}: {e})") from e
        return False


class OptimizerSnapshot:
    """optimizer.state and param_groups saved before a real `optimizer.step()`, restored after.

    The state tensors keep their identity (restored in place with copy_); entries the step created
    (e.g. a first momentum buffer) are removed. Plain SGD without momentum has no state at all.
    """

    def __init__(self, opt: torch.optim.Optimizer):
        self.opt = opt
        self.state = {}
        for p, st in opt.state.items():
            self.state[p] = {
                k: (v, v.detach().clone() if torch.is_tensor(v) else copy.deepcopy(v)) for k, v in st.items()
            }
        self.groups = [{k: copy.deepcopy(v) for k, v in g.items() if k != "params"} for g in opt.param_groups]

    def restore(self) -> None:
        try:
            self._restore()
        except Exception as e:
            raise RestoreFailed(f"the optimiser state could not be restored ({type(e).__name__}: {e})") from e

    def _restore(self) -> None:
        opt = self.opt
        for p in list(opt.state.keys()):
            if p not in self.state:
                del opt.state[p]
        with torch.no_grad():
            for p, st in self.state.items():
                restored = {}
                for k, (obj, val) in st.items():
                    if torch.is_tensor(obj):
                        obj.copy_(val)
                        restored[k] = obj
                    else:
                        restored[k] = val
                opt.state[p] = restored
        for g, saved in zip(opt.param_groups, self.groups, strict=True):
            g.update(saved)


# ------------------------------------------------------------------------------------------ helpers


def global_norm(tensors) -> torch.Tensor:
    """sqrt(sum of squares) of a list of tensors, accumulated in float64, as a 0-dim device tensor."""
    tensors = [t for t in tensors if t is not None]
    if not tensors:
        return torch.zeros((), dtype=torch.float64)
    try:  # one fused kernel per device/dtype group instead of one op per tensor
        norms = torch._foreach_norm(tensors, 2, dtype=torch.float64)
    except (RuntimeError, TypeError, AttributeError):
        norms = [torch.linalg.vector_norm(t, dtype=torch.float64) for t in tensors]
    return torch.linalg.vector_norm(torch.stack([n.to(norms[0].device) for n in norms]))


def forward_loss(ctx: ProbeContext) -> torch.Tensor:
    """The training loss of the step's batch at the model's current weights (train mode, grad on)."""
    with torch.enable_grad():
        out = ctx.model(ctx.inputs)
        loss, _ = ctx.task.loss(out, ctx.targets)
    return loss


def num_layers(model) -> int:
    n = getattr(model, "num_layers", None)
    if n is None:
        raise ValueError(f"{type(model).__name__} has no numbered layers (model.num_layers)")
    return int(n)


def resolve_layers(layers, model, default: tuple[int, ...]) -> list[int]:
    """Probe layer list: None -> default, 'all' -> 1..num_layers, else a list of 1-based ints (checked)."""
    n = num_layers(model)
    if layers is None:
        chosen = list(default)
    elif isinstance(layers, str):
        if layers != "all":
            raise ValueError(f"probe layers must be a list of layer numbers, null or 'all', not {layers!r}")
        chosen = list(range(1, n + 1))
    elif isinstance(layers, int):
        chosen = [layers]
    else:
        chosen = [int(k) for k in layers]
    bad = [k for k in chosen if not 1 <= k <= n]
    if bad:
        raise ValueError(f"probe layers {bad} out of range: {type(model).__name__} has layers #1..#{n}")
    return sorted(set(chosen))


class ProbeGenerator:
    """A probe's own random generator (landscape's random direction, hessian's start vectors): made on
    first use on the device measured, from the probe's seed; its state goes into the checkpoint, so a
    resumed run draws the same numbers as an uninterrupted one."""

    def __init__(self, seed: int):
        self.seed = int(seed)
        self._gen: torch.Generator | None = None
        self._state: torch.Tensor | None = None  # from a checkpoint, applied when the generator is made

    def get(self, device: torch.device) -> torch.Generator:
        if self._gen is None:
            self._gen = torch.Generator(device=device).manual_seed(self.seed)
            if self._state is not None:
                self._gen.set_state(self._state)
        return self._gen

    def state_dict(self) -> dict:
        if self._gen is not None:
            return {"generator": self._gen.get_state()}
        return {"generator": self._state} if self._state is not None else {}

    def load_state_dict(self, state: dict) -> None:
        if state.get("generator") is not None:
            self._state = state["generator"]
            if self._gen is not None:
                self._gen.set_state(self._state)


def capture_outputs(ctx: ProbeContext, modules: dict[int, torch.nn.Module]) -> dict[int, torch.Tensor]:
    """The outputs of `modules` ({layer: module}) on the step's batch: from the training forward when the
    caller listened (`ctx.heard`, see `listen`), else from one no-grad forward of our own (no trace)."""
    heard = {k: ctx.heard.get(m) for k, m in modules.items()}
    if all(a is not None for a in heard.values()):
        return heard
    captured: dict[int, torch.Tensor] = {}

    def hook_for(k):
        def hook(module, inputs, output):
            # a copy (an in-place ReLU may come next), in plain layout so that flattening is free
            captured[k] = output.detach().clone(memory_format=torch.contiguous_format)

        return hook

    handles = []
    try:
        for k, m in modules.items():
            handles.append(m.register_forward_hook(hook_for(k)))
        with NoTrace(ctx.model), torch.no_grad():
            ctx.model(ctx.inputs)
    finally:
        for h in handles:
            h.remove()
    missing = [k for k in modules if k not in captured]
    if missing:
        raise RuntimeError(f"no outputs captured for layers {missing}")
    return captured
