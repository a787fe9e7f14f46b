import numpy as np
import pytest

from bsarec.data.dataset import SequenceDataset
from bsarec.data.split import leave_one_out, pad_left, prefix_samples


def dataset(*sequences):
    n = max(max(s) for s in sequences) + 1
    return SequenceDataset(
        [np.array(s) for s in sequences], list(range(1, len(sequences) + 1)), [None, *range(1, n)]
    )


def test_pad_left_keeps_the_last_items():
    assert pad_left(np.array([1, 2, 3]), 5).tolist() == [0, 0, 1, 2, 3]
    assert pad_left(np.array([1, 2, 3, 4, 5, 6]), 4).tolist() == [3, 4, 5, 6]
    assert pad_left(np.array([], dtype=np.int64), 3).tolist() == [0, 0, 0]


def test_every_prefix_is_a_sample_including_the_empty_one():
    x, y = prefix_samples(np.array([5, 6, 7]), 4)
    assert x.tolist() == [[0, 0, 0, 0], [0, 0, 0, 5], [0, 0, 5, 6]]
    assert y.tolist() == [5, 6, 7]


def test_prefixes_come_from_the_last_max_len_training_items():
    x, y = prefix_samples(np.array([1, 2, 3, 4, 5]), 3)
    assert y.tolist() == [3, 4, 5]
    assert x.tolist() == [[0, 0, 0], [0, 0, 3], [0, 3, 4]]


def test_leave_one_out_on_hand_made_sequences():
    split = leave_one_out(dataset([1, 2, 3, 4, 5], [6, 7], [8]), max_len=3)
    # user 1: train [1, 2, 3], valid target 4, test target 5; user 2: no training items; user 3: skipped
    assert split.train_targets.tolist() == [1, 2, 3]
    assert split.train_inputs.tolist() == [[0, 0, 0], [0, 0, 1], [0, 1, 2]]
    assert split.valid.targets.tolist() == [4, 6]
    assert split.valid.inputs.tolist() == [[1, 2, 3], [0, 0, 0]]
    assert split.test.targets.tolist() == [5, 7]
    assert split.test.inputs.tolist() == [[2, 3, 4], [0, 0, 6]]
    rows, items = split.test.history_slice(0, 2)
    assert rows.tolist() == [0, 0, 0, 0, 1] and items.tolist() == [1, 2, 3, 4, 6]
    rows, items = split.valid.history_slice(0, 2)
    assert rows.tolist() == [0, 0, 0] and items.tolist() == [1, 2, 3]  # the whole history, not just max_len
    assert split.report == {
        "users_split": 2,
        "skipped_one_item_users": 1,
        "padding": "zeros",
        "train_samples": "prefixes",
    }
    assert split.n_items == 9


def test_training_never_contains_validation_or_test_targets_positions():
    data = dataset([1, 2, 3, 4, 5, 6, 7])
    split = leave_one_out(data, max_len=50)
    assert 6 not in split.train_targets.tolist() and 7 not in split.train_targets.tolist()
    assert not ((split.train_inputs == 6) | (split.train_inputs == 7)).any()


def test_nothing_to_split():
    with pytest.raises(ValueError, match="nothing to split"):
        leave_one_out(dataset([1], [2]))


def test_padding_modes_fill_short_inputs_from_the_sequence():
    seq = np.array([1, 2, 3])
    assert pad_left(seq, 7, "zeros").tolist() == [0, 0, 0, 0, 1, 2, 3]
    assert pad_left(seq, 7, "cyclic").tolist() == [3, 1, 2, 3, 1, 2, 3]
    assert pad_left(seq, 7, "reflect").tolist() == [1, 2, 3, 2, 1, 2, 3]
    assert pad_left(seq, 7, "symmetric").tolist() == [3, 3, 2, 1, 1, 2, 3]
    assert pad_left(np.array([], dtype=np.int64), 4, "cyclic").tolist() == [0, 0, 0, 0]  # nothing to repeat
    assert pad_left(np.arange(1, 10), 4, "cyclic").tolist() == [6, 7, 8, 9]  # full: no padding at all
    with pytest.raises(ValueError, match="padding"):
        pad_left(seq, 7, "mirror")


def test_padded_prefix_samples_match_pad_left_of_each_prefix():
    t = np.array([4, 5, 6, 7])
    for mode in ("cyclic", "reflect", "symmetric"):
        x, y = prefix_samples(t, 5, mode)
        assert y.tolist() == [4, 5, 6, 7]
        assert x.tolist() == [pad_left(t[:i], 5, mode).tolist() for i in range(4)]
        assert x[0].tolist() == [0] * 5 and 0 not in x[1].tolist()
    x, _ = prefix_samples(t, 3, "cyclic")  # the last 3 training items only; the full window needs no padding
    assert x.tolist() == [[0, 0, 0], [5, 5, 5], [6, 5, 6]]


def test_split_pads_every_input_the_same_way():
    split = leave_one_out(dataset([1, 2, 3, 4, 5]), max_len=6, padding="cyclic")
    assert split.valid.inputs.tolist() == [[1, 2, 3, 1, 2, 3]]
    assert split.test.inputs.tolist() == [[3, 4, 1, 2, 3, 4]]
    assert split.train_users.tolist() == [0, 0, 0]
