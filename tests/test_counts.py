"""Parameter and MAC counts against weight shapes, the seed's formulas and PyTorch's counters."""
import numpy as np
import pytest

import convkit

# (c1, c2, (K_H, K_W), groups, output (H, W))
SHAPES = [
    (3, 64, (7, 7), 1, (112, 112)),     # ResNet stem
    (64, 64, (3, 3), 1, (56, 56)),
    (256, 64, (1, 1), 1, (56, 56)),     # pointwise
    (128, 128, (3, 3), 32, (56, 56)),   # ResNeXt grouped
    (32, 32, (3, 3), 32, (112, 112)),   # depthwise
    (6, 9, (5, 3), 3, (7, 10)),         # non-square
]


@pytest.mark.parametrize("c1, c2, k, g, out", SHAPES)
@pytest.mark.parametrize("bias", [False, True])
def test_conv_params_match_weight_shapes(c1, c2, k, g, out, bias):
    """The count is the number of values in conv2d's weight (and bias) arrays, in either layout."""
    hwio = (k[0], k[1], c1 // g, c2)
    oihw = (c2, c1 // g, k[0], k[1])
    expected = int(np.prod(hwio)) + (c2 if bias else 0)
    assert int(np.prod(oihw)) + (c2 if bias else 0) == expected
    assert convkit.conv_params(c1, c2, k, g, bias) == expected


@pytest.mark.parametrize("c1, c2, k, g, out", SHAPES)
def test_conv_counts_follow_the_seed(c1, c2, k, g, out):
    """P = (c1/g)*(c2/g)*K_H*K_W*g and # = H*W*(c2/g)*h_l*w_l*(c1/g)*g, in the seed's own symbols."""
    K_H, K_W = h_l, w_l = k
    H, W = out
    assert convkit.conv_params(c1, c2, k, g) == (c1 / g) * (c2 / g) * K_H * K_W * g
    assert convkit.conv_macs(c1, c2, k, out, g) == H * W * (c2 / g) * h_l * w_l * (c1 / g) * g
    if g == 1:   # the original convolution's form
        assert convkit.conv_params(c1, c2, k) == c1 * c2 * h_l * w_l
        assert convkit.conv_macs(c1, c2, k, out) == H * W * c2 * h_l * w_l * c1


def test_group_convolution_divides_by_groups():
    """Splitting into g groups divides parameters and operations by g."""
    for g in (1, 2, 4, 8, 32):
        assert convkit.conv_params(128, 256, 3, g) * g == convkit.conv_params(128, 256, 3)
        assert convkit.conv_macs(128, 256, 3, 28, g) * g == convkit.conv_macs(128, 256, 3, 28)


def test_conv_macs_count_the_products(rng):
    """MACs = the multiply-adds of the float64 reference: one per (output value, tap, input channel of
    its group), counted here by running the reference on all-ones data (every output sums its products)."""
    from reference import conv2d_ref
    c1, c2, k, g, out = 6, 9, (3, 2), 3, (4, 5)
    x = np.ones((1, out[0] + k[0] - 1, out[1] + k[1] - 1, c1))
    y = conv2d_ref(x, np.ones((k[0], k[1], c1 // g, c2)), groups=g)
    assert y.shape[1:3] == out
    assert convkit.conv_macs(c1, c2, k, out, g) == y.sum()


@pytest.mark.parametrize("multiplier", [1, 2])
@pytest.mark.parametrize("bias", [False, True])
def test_depthwise_counts(multiplier, bias):
    c, k, out = 32, (3, 3), (112, 112)
    weight = (k[0], k[1], 1, c * multiplier)
    assert convkit.depthwise_conv_params(c, k, multiplier, bias) == (
        int(np.prod(weight)) + (c * multiplier if bias else 0))
    assert convkit.depthwise_conv_macs(c, k, out, multiplier) == 112 * 112 * c * multiplier * 9
    # The extreme case of group convolution (g = c1 = M).
    assert convkit.depthwise_conv_macs(c, k, out, multiplier) == convkit.conv_macs(
        c, c * multiplier, k, out, groups=c)


@pytest.mark.parametrize("bias", [False, True])
def test_transposed_counts(bias):
    c1, c2, k, g, in_size = 128, 64, (4, 4), 2, (32, 32)
    weight = (c1, c2 // g, k[0], k[1])                 # PyTorch's ConvTranspose2d weight
    assert convkit.conv_transpose_params(c1, c2, k, g, bias) == (
        int(np.prod(weight)) + (c2 if bias else 0))
    assert convkit.conv_transpose_macs(c1, c2, k, in_size, g) == 32 * 32 * c1 * (c2 // g) * 16


def test_transposed_macs_count_the_products():
    """Counted on the input map: conv_transpose2d of all-ones data without cropping sums them all."""
    c1, c2, k, g, in_size = 4, 6, (3, 2), 2, (3, 5)
    x = np.ones((1, *in_size, c1))
    y = convkit.conv_transpose2d(x, np.ones((k[0], k[1], c2 // g, c1)), groups=g)
    assert convkit.conv_transpose_macs(c1, c2, k, in_size, g) == y.sum()


@pytest.mark.parametrize("mask", [False, True])
def test_deformable_counts(mask):
    c1, c2, k, g, out = 64, 64, (3, 3), 1, (64, 64)
    assert convkit.deform_conv_params(c1, c2, k, g, True) == 3 * 3 * 64 * 64 + 64
    sampling = 64 * 64 * 9 * c1 * (5 if mask else 4)
    assert convkit.deform_sampling_macs(c1, k, out, mask) == sampling
    assert convkit.deform_conv_macs(c1, c2, k, out, g, mask) == convkit.conv_macs(c1, c2, k, out) + sampling


def test_matches_torch_parameter_counts():
    torch = pytest.importorskip("torch")
    for c1, c2, k, g, _ in SHAPES:
        for bias in (False, True):
            conv = torch.nn.Conv2d(c1, c2, k, groups=g, bias=bias)
            assert convkit.conv_params(c1, c2, k, g, bias) == sum(p.numel() for p in conv.parameters())
            tconv = torch.nn.ConvTranspose2d(c1, c2, k, groups=g, bias=bias)
            assert convkit.conv_transpose_params(c1, c2, k, g, bias) == sum(
                p.numel() for p in tconv.parameters())


def test_int_and_pair_sizes_agree():
    assert convkit.conv_macs(8, 16, 3, 10) == convkit.conv_macs(8, 16, (3, 3), (10, 10))
    assert convkit.conv_params(8, 16, 3) == convkit.conv_params(8, 16, (3, 3))


@pytest.mark.parametrize("call, name", [
    (lambda: convkit.conv_params(6, 8, 3, groups=4), "groups"),       # 4 does not divide 6
    (lambda: convkit.conv_macs(8, 6, 3, 5, groups=4), "groups"),      # nor 6 output channels
    (lambda: convkit.conv_params(8, 8, 3, groups=0), "groups"),
    (lambda: convkit.conv_params(0, 8, 3), "c1"),
    (lambda: convkit.conv_params(8, 2.5, 3), "c2"),
    (lambda: convkit.conv_params(8, 8, (3, 0)), "kernel_size"),
    (lambda: convkit.conv_macs(8, 8, 3, (5, -1)), "output_size"),
    (lambda: convkit.conv_params(8, 8, 3, bias=1), "bias"),
    (lambda: convkit.depthwise_conv_params(0, 3), "channels"),
    (lambda: convkit.depthwise_conv_macs(8, 3, 5, multiplier=0), "multiplier"),
    (lambda: convkit.conv_transpose_macs(8, 6, 3, 5, groups=4), "groups"),
    (lambda: convkit.deform_conv_macs(8, 8, 3, 5, mask=None), "mask"),
    (lambda: convkit.deform_sampling_macs(8, 3, 0), "output_size"),
])
def test_bad_arguments(call, name):
    with pytest.raises(ValueError, match=name):
        call()


# Worked by hand from the seed's formulas (P = (c1/g)(c2/g) K_H K_W g; # = H W (c2/g) h_l w_l (c1/g) g),
# written as literal numbers so that a wrong formula in convkit.counts cannot agree with itself.
WORKED = [
    # c1, c2, kernel, groups, output, params, MACs
    (3, 64, 7, 1, 112, 9_408, 118_013_952),          # ResNet stem: 3*64*49; 112*112*64*49*3
    (64, 64, 3, 1, 56, 36_864, 115_605_504),          # 64*64*9; 56*56*64*9*64
    (128, 128, 3, 32, 56, 4_608, 14_450_688),         # 4*4*9*32; 56*56*4*9*4*32
    (32, 32, 3, 32, 112, 288, 3_612_672),             # depthwise: 1*1*9*32; 112*112*1*9*1*32
    (6, 9, (5, 3), 3, (7, 10), 270, 18_900),          # 2*3*15*3; 70*3*15*2*3
]


@pytest.mark.parametrize("c1, c2, k, g, out, params, macs", WORKED)
def test_counts_against_worked_numbers(c1, c2, k, g, out, params, macs):
    assert convkit.conv_params(c1, c2, k, g) == params
    assert convkit.conv_params(c1, c2, k, g, bias=True) == params + c2
    assert convkit.conv_macs(c1, c2, k, out, g) == macs


def test_resnet18_against_torchvision_figures():
    """torchvision's resnet18: 11,689,512 parameters and 1.814 GMACs at 224x224 (its model card)."""
    net = convkit.models.resnet18()
    assert net.num_params() == 11_689_512
    assert net.macs((1, 224, 224, 3)) == 1_814_073_344
