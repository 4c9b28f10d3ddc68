"""Multiply-adds (MACs) of PAL and plain BlenderBot-small, counted from a batch's shapes: the arithmetic floor.

Counted as run: on the padded tensors (padding positions are computed too), attention over every key position
(the score term q.k and the value term p.v, d MACs each per query and key), every linear layer (d_in x d_out per
token), the lm_head (d x vocabulary per decoded position). Matrix products are counted exactly (tests compare with
torch's FlopCounterMode on a real step); the few elementwise terms of PAL's fusion (the weighted mix of three
[B, L, d] states) are added as `elementwise` and are a negligible share. Layer norms, softmaxes, GELUs and the loss
are not counted. A training step is forward plus backward, where every product needs the gradient of both its
operands: 3x the forward products. Decoding counts the strategy step and every reply step with the KV cache (one
new position per step; the cross-attention keys and values once), PAL's two decoder streams and its one lm_head
per row (the stacked decoder contrasts the states before the lm_head).
"""
from dataclasses import dataclass


@dataclass(frozen=True)
class Shape:
    """What the count needs of a model: hidden size, FFN size, layers and the lm_head's output size."""
    d: int
    ffn: int
    encoder_layers: int
    decoder_layers: int
    vocab: int

    @classmethod
    def of(cls, model):
        c = model.config
        return cls(c.d_model, c.encoder_ffn_dim, c.encoder_layers, c.decoder_layers, model.lm_head.out_features)


def encoder_macs(s, rows, length):
    """Encoder over [rows, length]: projections q, k, v, out, the FFN, and length x length attention per layer."""
    per_layer = rows * length * (4 * s.d * s.d + 2 * s.d * s.ffn) + 2 * rows * length * length * s.d
    return s.encoder_layers * per_layer


def decoder_layer_macs(s, rows, new, keys, encoder_length, cross_kv):
    """One decoder layer for `new` positions per row that attend to `keys` self-attention positions (cache
    included); cross_kv: whether the cross-attention keys/values are projected in this call (not cached yet)."""
    per_position = 4 * s.d * s.d + 2 * s.d * s.d + 2 * s.d * s.ffn  # self q,k,v,out; cross q,out; FFN
    attention = 2 * new * keys * s.d + 2 * new * encoder_length * s.d
    kv = 2 * s.d * s.d * encoder_length if cross_kv else 0
    return rows * (new * per_position + attention + kv)


def fusion_macs(s, rows, length):
    """(matmul, elementwise) of PAL's fusion: H_p H_c^T, softmax(.) H_c, softmax(.) H_p; the 3-way weighted mix."""
    return 3 * rows * length * length * s.d, 3 * rows * length * s.d


@dataclass
class Count:
    matmul: int = 0
    elementwise: int = 0

    @property
    def total(self):
        return self.matmul + self.elementwise

    def __add__(self, other):
        return Count(self.matmul + other.matmul, self.elementwise + other.elementwise)

    def scaled(self, k):
        return Count(self.matmul * k, self.elementwise * k)


def encoder_side(s, persona, rows, length):
    """The encoder pass(es) a batch needs: context only, or context + persona (padded to the context's length) and
    the fusion."""
    count = Count(encoder_macs(s, rows, length))
    if persona:
        matmul, elementwise = fusion_macs(s, rows, length)
        count += Count(encoder_macs(s, rows, length) + matmul, elementwise)
    return count


def forward_macs(s, persona, rows, length, decoder_length):
    """One training/validation forward: encoder side, the decoder over decoder_length positions, the lm_head."""
    decoder = s.decoder_layers * decoder_layer_macs(s, rows, decoder_length, decoder_length, length, True)
    return encoder_side(s, persona, rows, length) + Count(decoder + rows * decoder_length * s.d * s.vocab)


def train_step_macs(s, persona, rows, length, decoder_length):
    """Forward and backward (each product's two operand gradients: twice the forward)."""
    return forward_macs(s, persona, rows, length, decoder_length).scaled(3)


def decoding_macs(s, persona, rows, length, steps):
    """Cached decoding of `steps` decoder positions (the strategy step and the reply tokens) for a batch of `rows`
    examples: encoder side once; per step one new position per decoder row (PAL: two rows per example, the fused
    and the context stream) and one lm_head per example; PAL's contrast of the two states per step."""
    streams = 2 if persona else 1
    count = encoder_side(s, persona, rows, length)
    for position in range(steps):
        layer = decoder_layer_macs(s, streams * rows, 1, position + 1, length, position == 0)
        count += Count(s.decoder_layers * layer + rows * s.d * s.vocab, (2 * rows * s.d) if persona else 0)
    return count


def batch_shape(batch):
    """(rows, context length, decoder length) of a collated batch as the model runs it."""
    rows, length = batch["input_ids"].shape
    return rows, length, batch["labels"].shape[1]
