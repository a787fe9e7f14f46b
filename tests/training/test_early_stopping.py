from bsarec.training.early_stopping import EarlyStopping


def test_early_stopping_is_strict_and_counts_patience():
    stop = EarlyStopping(patience=2)
    assert stop.update(0.1, 0) and not stop.update(0.1, 1)  # equal is not better
    assert not stop.should_stop
    assert not stop.update(0.05, 2) and stop.should_stop and stop.best_epoch == 0
