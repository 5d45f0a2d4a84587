"""Length-bucketed batches (ResumableBatches with lengths and bucket)."""

import numpy as np

from harness.data.resumable import ResumableBatches


def _lengths(n, seed=0):
    rng = np.random.default_rng(seed)
    return [(int(p), int(r)) for p, r in zip(rng.integers(32, 65, n), rng.integers(32, 65, n))]


def _batches(loader):
    return [list(b) for b in loader]


def _width(lengths, batch):
    return max(lengths[i][0] for i in batch) + max(lengths[i][1] for i in batch)


def test_every_item_once_per_epoch_and_short_batch_last():
    lengths = _lengths(1000)
    loader = ResumableBatches(range(1000), 16, list, seed=3, lengths=lengths, bucket=16)
    for _ in range(2):
        batches = _batches(loader)
        assert sorted(i for b in batches for i in b) == list(range(1000))
        assert [len(b) for b in batches] == [16] * 62 + [8]


def test_bucketing_cuts_padding():
    lengths = _lengths(1024)
    plain = _batches(ResumableBatches(range(1024), 16, list, seed=0))
    bucketed = _batches(ResumableBatches(range(1024), 16, list, seed=0, lengths=lengths, bucket=16))
    real = sum(p + r for p, r in lengths)
    padded_plain = sum(_width(lengths, b) * len(b) for b in plain)
    padded_bucketed = sum(_width(lengths, b) * len(b) for b in bucketed)
    # Uniform 32..64 + 32..64: plain batches pad ~30% above the real tokens, bucketed under 8%.
    assert padded_plain > 1.25 * real
    assert padded_bucketed < 1.08 * real


def test_seeded_order_changes_per_epoch_and_resumes():
    lengths = _lengths(256)
    a = ResumableBatches(range(256), 8, list, seed=1, lengths=lengths, bucket=4)
    first, second = _batches(a), _batches(a)
    assert first != second
    b = ResumableBatches(range(256), 8, list, seed=1, lengths=lengths, bucket=4)
    assert _batches(b) == first
    # A resumed loader (epoch 1, 5 batches done) continues with the uninterrupted order.
    c = ResumableBatches(range(256), 8, list, seed=1, lengths=lengths, bucket=4)
    c.load_state_dict({"epoch": 1, "consumed": 5})
    assert _batches(c) == second[5:]


def test_bucket_off_keeps_the_plain_order():
    lengths = _lengths(64)
    plain = _batches(ResumableBatches(range(64), 8, list, seed=2))
    assert _batches(ResumableBatches(range(64), 8, list, seed=2, lengths=lengths, bucket=0)) == plain
    assert _batches(ResumableBatches(range(64), 8, list, seed=2, lengths=lengths, bucket=1)) == plain
