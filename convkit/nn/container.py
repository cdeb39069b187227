"""Sequential: layers applied in order, named "0", "1", ... as in PyTorch."""
from .fusion import fusion_plan
from .module import Module


def common_layout(modules):
    """The layout shared by ``modules`` (ignoring layout-free ones such as activations), or None."""
    layouts = {m.layout for m in modules if m.layout is not None}
    if len(layouts) > 1:
        raise ValueError(f"expected all layers to have the same layout, got {sorted(layouts)}")
    return layouts.pop() if layouts else None


def forward_in_order(modules, x):
    """``modules`` applied in order, one by one (unfused); in training mode each keeps what its
    backward needs."""
    for m in modules:
        x = m._forward(x)
    return x


def backward_in_reverse(modules, grad, input_grad):
    """The backward of ``modules`` applied in order; the first is asked for its input's gradient only
    when ``input_grad``."""
    for i in range(len(modules) - 1, -1, -1):
        grad = modules[i]._backward(grad, input_grad or i > 0)
    return grad


class Sequential(Module):
    """``torch.nn.Sequential``.  Its layout is its layers'.

    In evaluation mode each Conv2d -> BatchNorm2d -> activation run is computed as one fused convolution
    (:mod:`convkit.nn.fusion`); the fused weights are built once and rebuilt when parameters change.
    In training mode each layer runs on its own, and backward runs them in reverse.
    """

    def __init__(self, *modules):
        for i, m in enumerate(modules):
            if not isinstance(m, Module):
                raise TypeError(f"expected modules[{i}] to be a convkit.nn.Module, got {type(m).__name__}")
        super().__init__(common_layout(modules))
        for i, m in enumerate(modules):
            setattr(self, str(i), m)

    def __len__(self):
        return len(self._modules)

    def __iter__(self):
        return iter(self._modules.values())

    def __getitem__(self, index):
        if isinstance(index, slice):
            return Sequential(*list(self)[index])
        return list(self)[index]

    def _plan(self):
        """The steps :meth:`_forward` runs (:func:`convkit.nn.fusion.fusion_plan`), built once per version."""
        return self._cached("plan", lambda: fusion_plan(list(self)))

    def _forward(self, x):
        if self.training:
            self._save()
            return forward_in_order(self, x)
        for step in self._plan():
            x = step(x)
        return x

    def _backward(self, grad, input_grad):
        self._saved()
        return backward_in_reverse(list(self), grad, input_grad)

    def _trace(self, shape, visit):
        for m in self:
            shape = m._trace(shape, visit)
        return shape
