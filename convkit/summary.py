"""``convkit.summary``: a per-layer table of output shapes, parameters and multiply-accumulates."""
import sys


def summary(model, input_shape, *, file=None):
    """Print one row per layer, in execution order, for an input of ``input_shape`` (in the model's
    layout, batch included), then the totals; return the rows.

    Each row is a dict: ``name`` (dotted, as in the state dict), ``type``, ``output_shape`` (in the
    model's layout), ``params`` (the layer's own) and ``macs`` (multiply-accumulates for the whole batch;
    see :meth:`convkit.nn.Module.macs`).  A layer used twice (ResNet's ReLU) has a row per use.
    """
    names = {id(m): name for name, m in model.named_modules()}
    rows = []

    def visit(layer, in_shape, out_shape):
        rows.append({"name": names.get(id(layer), ""), "type": type(layer).__name__,
                     "output_shape": model._shape_from_internal(out_shape),
                     "params": sum(p.size for p in layer._parameters.values()),
                     "macs": layer._macs(in_shape, out_shape)})

    model._trace(model._shape_to_internal(input_shape), visit)
    _print(model, tuple(input_shape), rows, sys.stdout if file is None else file)
    return rows


def _print(model, input_shape, rows, file):
    headers = ("Layer", "Type", "Output shape", "Params", "MACs")
    cells = [(r["name"], r["type"], str(r["output_shape"]), f"{r['params']:,}", f"{r['macs']:,}")
             for r in rows]
    widths = [max(len(h), *(len(c[i]) for c in cells)) if cells else len(h)
              for i, h in enumerate(headers)]
    align = ("<", "<", "<", ">", ">")

    def line(values):
        return "  ".join(f"{v:{a}{w}}" for v, a, w in zip(values, align, widths))

    rule = "-" * len(line(headers))
    total_macs = sum(r["macs"] for r in rows)
    params = model.num_params()
    print(f"{type(model).__name__} ({model.layout or 'any'} layout), input {input_shape}", file=file)
    print(rule, file=file)
    print(line(headers), file=file)
    print(rule, file=file)
    for c in cells:
        print(line(c), file=file)
    print(rule, file=file)
    print(f"Total params: {params:,} ({params / 1e6:.2f} M)", file=file)
    print(f"Total MACs:   {total_macs:,} ({total_macs / 1e9:.3f} G)", file=file)
