"""Sequential: layers applied in order, named "0", "1", ... as in PyTorch."""
from .fusion import fusion_plan
from .module import Module


def common_layout(modules):
    """The layout shared by ``modules`` (ignoring layout-free ones such as activations), or None."""
    layouts = {m.layout for m in modules if m.layout is not None}
    if len(layouts) > 1:
        raise ValueError(f"expected all layers to have the same layout, got {sorted(layouts)}")
    return layouts.pop() if layouts else None


class Sequential(Module):
    """``torch.nn.Sequential``.  Its layout is its layers'.

    In evaluation mode each Conv2d -> BatchNorm2d -> activation run is computed as one fused convolution
    (:mod:`convkit.nn.fusion`); the fused weights are built once and rebuilt when parameters change.
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
        for step in self._plan():
            x = step(x)
        return x

    def _trace(self, shape, visit):
        for m in self:
            shape = m._trace(shape, visit)
        return shape
