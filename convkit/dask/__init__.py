"""convkit over Dask arrays: the in-memory functions applied chunk by chunk, lazily.

Each function takes a ``dask.array.Array`` where :mod:`convkit` takes a NumPy array, with the same
arguments (no ``out``), and returns a dask array; nothing runs until ``.compute()``, ``.persist()`` or
``dask.array.to_zarr``.  Spatial functions (conv2d, conv_transpose2d, max/avg pooling, and deform_conv2d
given a bound on its offsets) work on spatial chunks with halos and give the in-memory call's result for
every chunking (bit for bit with ``algo="direct"``).  Needs the optional extra: ``pip install 'convkit[dask]'``.
"""
try:
    import dask.array  # noqa: F401
except ImportError as error:  # pragma: no cover - exercised only without dask
    raise ImportError("convkit.dask needs Dask: pip install 'convkit[dask]' "
                      "(dask[array] and distributed)") from error

from ._arrays import RechunkWarning
from ._cluster import share_cores
from ._deform import deform_conv2d
from ._layers import batch_norm, elu, leaky_relu, predict, relu, relu6, sigmoid, tanh
from ._spatial import avg_pool2d, conv2d, conv_transpose2d, max_pool2d
from ._zarr import conv2d_zarr

__all__ = ["RechunkWarning", "avg_pool2d", "batch_norm", "conv2d", "conv2d_zarr", "conv_transpose2d", "deform_conv2d",
           "elu", "leaky_relu", "max_pool2d", "predict", "relu", "relu6", "share_cores", "sigmoid", "tanh"]
