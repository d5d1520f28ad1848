import torch

from speechtok.codecs.seanet import SEANetConfig, SEANetEncoder
from speechtok.layers import _mask_past_, lengths_to_mask, zero_past_


def tiny(**kw) -> SEANetEncoder:
    torch.manual_seed(0)
    return SEANetEncoder(SEANetConfig(channels=4, dim=8, **kw)).eval()


def test_shapes_and_hop():
    enc = tiny()
    assert enc.hop_length == 320
    assert enc(torch.randn(2, 1, 320 * 7)).shape == (2, 8, 7)


def test_receptive_field_is_exact():
    """The input samples with a gradient from one output frame span exactly `receptive_field`."""
    enc = tiny()
    x = torch.randn(1, 1, 320 * 40, requires_grad=True)
    enc(x)[0, :, 20].sum().backward()
    touched = x.grad[0, 0].nonzero().flatten()
    span = int(touched.max() - touched.min()) + 1
    assert span == enc.receptive_field, (span, enc.receptive_field)


def test_causal_frames_ignore_the_future():
    enc = tiny(causal=True)
    x = torch.randn(1, 1, 320 * 10)
    y = x.clone()
    y[..., 320 * 6 :] = torch.randn(320 * 4)
    with torch.no_grad():
        assert torch.equal(enc(x)[..., :6], enc(y)[..., :6])


def test_lstm_option_is_batch_invariant_with_lengths():
    """Recurrent encoders use packed sequences for batches (DESIGN.md bound: 99%; here it is exact to 1e-5)."""
    enc = tiny(lstm_layers=1)
    lens = torch.tensor([320 * 12, 320 * 5])
    x = torch.randn(2, 1, 320 * 12)
    with torch.no_grad():
        together = enc(x, lens)
        alone = enc(x[1:, :, : 320 * 5])
    torch.testing.assert_close(together[1, :, :5], alone[0], atol=1e-5, rtol=1e-4)


def test_zeroing_the_padding_in_place_equals_the_masked_multiply():
    """Both ways (the CPU's: each item's tail; elsewhere: an in-place multiply) give x times the lengths mask, in
    the very tensor, and the gradient of the multiply."""
    lengths = torch.tensor([7, 3, 0, 9])
    for zero in (zero_past_, _mask_past_):
        base = torch.randn(4, 2, 9, requires_grad=True)
        x = base * 2.0
        expected = x.detach() * lengths_to_mask(lengths, 9)
        y = zero(x, lengths)
        assert y is x and torch.equal(y, expected)
        y.sum().backward()
        assert torch.equal(base.grad, 2.0 * lengths_to_mask(lengths, 9).expand(4, 2, 9))
