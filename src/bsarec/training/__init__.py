"""Training: the loop (trainer.py) over a TrainState (state.py), checkpoints (checkpoint.py), batches
(sampling.py), early stopping, the history file and the CPU's float mode. Import from the modules."""
