"""convkit: CPU convolution kernels in typed Cython with OpenMP, under a thin NumPy API."""
__version__ = "0.1.0"

from . import _kernels  # first: a clear ImportError in a source tree without compiled kernels

from ._alloc import clear_buffer_cache
from ._config import show_config
from ._threads import get_num_threads, set_num_threads
from .autotune import autotune_cache, set_autotune
from .activations import elu, leaky_relu, relu, relu6, sigmoid, tanh
from .conv import conv2d
from .conv_transpose import conv_transpose2d
from .counts import (conv_macs, conv_params, conv_transpose_macs, conv_transpose_params,
                     deform_conv_macs, deform_conv_params, deform_sampling_macs, depthwise_conv_macs,
                     depthwise_conv_params)
from .deform import bilinear_sample, deform_conv2d
from .im2col import col2im, im2col
from .linear import linear
from .matmul import matmul
from .normalization import batch_norm, fold_batch_norm
from .pooling import avg_pool2d, global_avg_pool2d, max_pool2d
from .softmax import cross_entropy, log_softmax, softmax
from .summary import summary
from . import grad, models, nn, optim

__all__ = [
    "elu", "leaky_relu", "relu", "relu6", "sigmoid", "tanh",
    "avg_pool2d", "batch_norm", "fold_batch_norm", "global_avg_pool2d", "linear", "max_pool2d",
    "bilinear_sample", "deform_conv2d",
    "conv_transpose2d", "conv_macs", "conv_params", "conv_transpose_macs", "conv_transpose_params",
    "deform_conv_macs", "deform_conv_params", "deform_sampling_macs", "depthwise_conv_macs",
    "depthwise_conv_params",
    "cross_entropy", "log_softmax", "softmax",
    "grad", "models", "nn", "optim", "summary",
    "autotune_cache", "set_autotune",
    "clear_buffer_cache", "col2im", "conv2d", "get_num_threads", "im2col", "matmul", "set_num_threads", "show_config",
]
