"""The base of every layer: NumPy parameters, PyTorch-style state dicts, shapes and operation counts.

A module computes internally on NHWC arrays (the kernels' layout) whatever its ``layout``: calling it
transposes an NCHW input once on the way in and the output once on the way out, and containers pass NHWC
arrays between their children without transposing.  ``layout`` decides what the caller sees: the input and
output convention, shapes given to :meth:`Module.output_shape` / :meth:`Module.macs`, and how the layer
stores its weights (convkit's HWIO for NHWC, PyTorch's OIHW for NCHW).  State dicts always use PyTorch's
names and layouts, so torchvision's weights load as they are.

Modules start in evaluation mode (the opposite of PyTorch): inference, with batch norm folded into the
convolution before it.  ``train()`` switches to training mode: each forward keeps what its backward needs
(unfused), ``backward(grad_output)`` returns the input's gradient and accumulates each parameter's
``.grad`` (:class:`~convkit.nn.parameter.Parameter`), and :class:`convkit.optim.SGD` updates them.
"""
import numpy as np

from .._layout import from_nhwc, layout_shape, nhwc_shape, to_nhwc
from .._validation import check_layout
from .parameter import Parameter

# Bumped whenever any module's parameters or buffers are replaced or loaded (or its mode changes), and
# when values are written into a Parameter (parameter.py: ``w[...] = v``, ``w -= v``; SGD's steps).
# Caches derived from parameters (folded batch norm, converted or packed weights) remember the version
# they were built at and rebuild when it has changed.  Writes that bypass the Parameter (``np.copyto``,
# a plain-array view, buffers modified in place) are not seen: assign them again
# (``conv.weight = w``) or load a state dict.
_version = 0


def _bump_version():
    global _version
    _version += 1


class Module:
    """A layer or a composition of layers, called like a function."""

    def __init__(self, layout="NHWC"):
        object.__setattr__(self, "_parameters", {})
        object.__setattr__(self, "_buffers", {})
        object.__setattr__(self, "_modules", {})
        self.layout = None if layout is None else check_layout(layout)
        self.training = False

    # -- attribute registry -------------------------------------------------------------------------

    def register_parameter(self, name, array):
        self._parameters[name] = Parameter(array)
        _bump_version()

    def register_buffer(self, name, array):
        self._buffers[name] = array
        _bump_version()

    def __getattr__(self, name):
        d = self.__dict__
        for store in ("_parameters", "_buffers", "_modules"):
            if name in d.get(store, ()):
                return d[store][name]
        raise AttributeError(f"{type(self).__name__!r} object has no attribute {name!r}")

    def __setattr__(self, name, value):
        d = self.__dict__
        for store in ("_parameters", "_buffers"):
            if name in d.get(store, ()):
                value = _checked_replacement(name, d[store][name], value)
                d[store][name] = Parameter(value) if store == "_parameters" else value
                _bump_version()
                return
        if isinstance(value, Module):
            d["_modules"][name] = value
        elif name in d.get("_modules", ()):
            del d["_modules"][name]
        object.__setattr__(self, name, value)

    def named_modules(self, prefix=""):
        """This module and every descendant, with dotted names (``""`` for this one)."""
        yield prefix, self
        for name, child in self._modules.items():
            yield from child.named_modules(f"{prefix}.{name}" if prefix else name)

    def get_submodule(self, target):
        """The descendant at dotted path ``target`` (``"layer1.0.conv1"``); ``""`` is this module."""
        m = self
        for part in target.split(".") if target else ():
            if part not in m._modules:
                raise AttributeError(f"{type(m).__name__} has no submodule {part!r} (in {target!r})")
            m = m._modules[part]
        return m

    def modules(self):
        return (m for _, m in self.named_modules())

    def named_parameters(self):
        for prefix, m in self.named_modules():
            for name, p in m._parameters.items():
                yield (f"{prefix}.{name}" if prefix else name), p

    def parameters(self):
        return (p for _, p in self.named_parameters())

    def num_params(self):
        """Number of parameters (weights and biases; batch-norm running statistics are buffers)."""
        return sum(p.size for p in self.parameters())

    def train(self, mode=True):
        """Training mode: layers run unfused and keep what backward needs; batch norm normalises with
        batch statistics and updates its running ones.  ``eval()`` (``train(False)``) folds it again."""
        for m in self.modules():
            m.training = bool(mode)
            m.__dict__.pop("_tape", None)
        _bump_version()  # fusion plans depend on the mode
        return self

    def eval(self):
        return self.train(False)

    # -- state dicts: PyTorch's names and layouts -----------------------------------------------------

    def _to_torch(self, name, array):
        """A parameter or buffer in PyTorch's layout (layers storing another layout override this)."""
        return array

    def _from_torch(self, name, array):
        """The inverse of :meth:`_to_torch`."""
        return array

    def _state_items(self):
        """(key, owning module, local name) in PyTorch's state-dict order."""
        for prefix, m in self.named_modules():
            for local in (*m._parameters, *m._buffers):
                yield (f"{prefix}.{local}" if prefix else local), m, local

    def state_dict(self):
        """{torchvision-style key: NumPy array in PyTorch's layout} (copies)."""
        return {key: np.array(m._to_torch(local, getattr(m, local)), order="C")
                for key, m, local in self._state_items()}

    def load_state_dict(self, state_dict):
        """Load arrays keyed and laid out as PyTorch's ``state_dict()`` (``tensor.numpy()`` values).

        Every key must match: a missing or unexpected key raises ``KeyError`` naming it, a wrong shape
        ``ValueError`` naming the key and both shapes; nothing is modified unless all keys are right.
        Values are converted to each layer's dtype and layout.
        """
        items = list(self._state_items())
        expected = [key for key, _, _ in items]
        missing = [k for k in expected if k not in state_dict]
        if missing:
            raise KeyError(f"missing key(s) in state_dict: {', '.join(map(repr, missing))}")
        known = set(expected)
        unexpected = [k for k in state_dict if k not in known]
        if unexpected:
            raise KeyError(f"unexpected key(s) in state_dict: {', '.join(map(repr, unexpected))}")
        new = []
        for key, m, local in items:
            current = getattr(m, local)
            value = np.asarray(state_dict[key])
            want = m._to_torch(local, current).shape
            if value.shape != want:
                raise ValueError(f"expected state_dict[{key!r}] to have shape {want}, got {value.shape}")
            new.append((m, local, m._from_torch(local, value.astype(current.dtype))))
        for m, local, value in new:
            store = m._parameters if local in m._parameters else m._buffers
            np.copyto(store[local], value)  # in place, as PyTorch: optimizers keep the live arrays
        _bump_version()
        return self

    # -- calling, shapes, counts ----------------------------------------------------------------------

    def __call__(self, *args, **kwargs):
        if self.training:
            self._start_tape()
        return self.forward(*args, **kwargs)

    def forward(self, x):
        """``x`` in this module's layout -> the output in the same layout."""
        y = self._from_internal(self._forward(self._to_internal(x)))
        if self.training:
            self.__dict__["_output_shape"] = y.shape
        return y

    # -- training: what forward keeps, backward, gradients ---------------------------------------------

    def _start_tape(self):
        """A call in training mode starts a new record: drop what earlier forwards kept."""
        for m in self.modules():
            m.__dict__.pop("_tape", None)

    def _save(self, *values):
        """In training mode, keep ``values`` for the backward of this forward.  Kept on a stack, so a
        layer applied twice in one forward (ResNet's shared ReLU) is differentiated in reverse order."""
        if self.training:
            self.__dict__.setdefault("_tape", []).append(values)

    def _saved(self):
        """What the latest unconsumed forward kept (consumed: one backward per forward)."""
        tape = self.__dict__.get("_tape")
        if not tape:
            raise RuntimeError(
                f"{type(self).__name__}.backward() called before a training-mode forward (or twice for one "
                f"forward): call .train(), then run a forward, then backward once")
        return tape.pop()

    def backward(self, grad_output, input_grad=True):
        """Backpropagate ``grad_output`` (the loss's gradient w.r.t. the latest training-mode forward's
        output, in this module's layout): accumulate every parameter's ``.grad`` and return the
        gradient w.r.t. the input, or None with ``input_grad=False`` (which skips computing it: the
        first layer of a network needs none).

        Raises RuntimeError without a training-mode forward to differentiate, ValueError when
        ``grad_output``'s shape is not that forward's output's.
        """
        g = self._backward(self._internal_grad_output(grad_output), input_grad)
        return self._from_internal(g) if input_grad else None

    def _internal_grad_output(self, grad_output):
        """``grad_output`` checked against the latest training-mode forward, as an internal array."""
        if not self.__dict__.get("_tape"):
            self._saved()  # raises, saying why
        grad_output = np.asarray(grad_output)
        expected = self.__dict__.get("_output_shape")
        if expected is not None and grad_output.shape != expected:
            raise ValueError(f"expected grad_output to have the forward output's shape {expected}, "
                             f"got {grad_output.shape}")
        return self._to_internal(grad_output)

    def _backward(self, grad, input_grad):
        """Gradient w.r.t. the internal input of the forward whose record :meth:`_saved` pops (None when
        not ``input_grad``), accumulating the parameters' gradients."""
        raise NotImplementedError(f"{type(self).__name__} has no backward")

    def zero_grad(self, set_to_none=True):
        """Reset every parameter's ``.grad``: to None (PyTorch's default), or to zeros."""
        for p in self.parameters():
            p.grad = None if set_to_none else np.zeros(p.shape, p.dtype)

    def _forward(self, x):
        """The computation on internal arrays (4-D ones NHWC)."""
        raise NotImplementedError

    def _cached(self, key, build):
        """``build()``, computed once per parameter version (derived weights, fusion plans)."""
        cache = self.__dict__.setdefault("_cache", {})
        hit = cache.get(key)
        if hit is None or hit[0] != _version:
            hit = cache[key] = (_version, build())
        return hit[1]

    def _to_internal(self, x):
        return to_nhwc(x, self.layout) if self.layout == "NCHW" and np.ndim(x) == 4 else x

    def _from_internal(self, y):
        return from_nhwc(y, self.layout) if self.layout == "NCHW" and np.ndim(y) == 4 else y

    def _shape_to_internal(self, shape):
        shape = tuple(int(s) for s in shape)
        return nhwc_shape(shape, self.layout) if self.layout == "NCHW" and len(shape) == 4 else shape

    def _shape_from_internal(self, shape):
        return layout_shape(*shape, self.layout) if self.layout == "NCHW" and len(shape) == 4 else tuple(shape)

    def _trace(self, shape, visit):
        """Propagate an internal input shape through the leaves in execution order, calling
        ``visit(leaf, input_shape, output_shape)`` for each; return the output shape.

        Leaves compute their own; containers override this to follow their data flow.
        """
        out = self._out_shape(shape)
        visit(self, shape, out)
        return out

    def _out_shape(self, shape):
        raise NotImplementedError

    def _macs(self, in_shape, out_shape):
        """Multiply-accumulates of one call (leaves without any return 0)."""
        return 0

    def output_shape(self, input_shape):
        """The output shape for an input of ``input_shape`` (both in this module's layout)."""
        return self._shape_from_internal(self._trace(self._shape_to_internal(input_shape), _ignore))

    def macs(self, input_shape):
        """Multiply-accumulates of one call on ``input_shape`` (the whole batch), summed over the layers.

        Convolutions and linear layers count as the seed's formulas (bias not counted); elementwise
        layers, batch norm and pooling count 0, as torchvision's published operation counts do.
        """
        total = []
        self._trace(self._shape_to_internal(input_shape), lambda m, i, o: total.append(m._macs(i, o)))
        return int(sum(total))

    def extra_repr(self):
        return ""

    def __repr__(self):
        lines = [f"{type(self).__name__}({self.extra_repr()}"]
        if self._modules:
            for name, child in self._modules.items():
                lines.append(f"  ({name}): " + repr(child).replace("\n", "\n  "))
            return "\n".join(lines) + "\n)"
        return lines[0] + ")"


def _ignore(*_):
    pass


def _checked_replacement(name, current, value):
    """A new array for parameter/buffer ``name``: same shape and dtype as the one it replaces."""
    if not isinstance(value, np.ndarray):
        raise TypeError(f"expected {name} to be a numpy.ndarray, got {type(value).__name__}")
    if value.shape != current.shape:
        raise ValueError(f"expected {name} to have shape {current.shape}, got {value.shape}")
    if value.dtype != current.dtype:
        raise TypeError(f"expected {name} to have dtype {current.dtype}, got {value.dtype}")
    return np.require(value, requirements="C")   # (np.ascontiguousarray would make a 0-d array 1-D)
