"""The base of every layer: NumPy parameters, PyTorch-style state dicts, shapes and operation counts.

A module computes internally on NHWC arrays (the kernels' layout) whatever its ``layout``: calling it
transposes an NCHW input once on the way in and the output once on the way out, and containers pass NHWC
arrays between their children without transposing.  ``layout`` decides what the caller sees: the input and
output convention, shapes given to :meth:`Module.output_shape` / :meth:`Module.macs`, and how the layer
stores its weights (convkit's HWIO for NHWC, PyTorch's OIHW for NCHW).  State dicts always use PyTorch's
names and layouts, so torchvision's weights load as they are.

Modules start in evaluation mode (the opposite of PyTorch): convkit computes inference, not gradients.
"""
import numpy as np

from .._layout import from_nhwc, layout_shape, nhwc_shape, to_nhwc
from .._validation import check_layout

# Bumped whenever any module's parameters or buffers are replaced or loaded (or its mode changes).  Caches
# derived from parameters (folded batch norm, converted weights) remember the version they were built at
# and rebuild when it has changed.  Arrays modified in place are not seen: assign them again
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
        self._parameters[name] = array
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
                d[store][name] = _checked_replacement(name, d[store][name], value)
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
        """Training mode: batch norm normalises with batch statistics and updates its running ones."""
        for m in self.modules():
            m.training = bool(mode)
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
            new.append((m, local, np.ascontiguousarray(m._from_torch(local, value.astype(current.dtype)))))
        for m, local, value in new:
            store = m._parameters if local in m._parameters else m._buffers
            store[local] = value
        _bump_version()
        return self

    # -- calling, shapes, counts ----------------------------------------------------------------------

    def __call__(self, *args, **kwargs):
        return self.forward(*args, **kwargs)

    def forward(self, x):
        """``x`` in this module's layout -> the output in the same layout."""
        return self._from_internal(self._forward(self._to_internal(x)))

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
    return np.ascontiguousarray(value)
