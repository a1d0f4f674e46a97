"""Training progress events for the console: steps timed past the first, and the time left."""

import logging

from components import progress


def test_progress_events_time_steps_past_the_first_and_count_down(monkeypatch):
    clock = iter([0.0, 60.0, 61.0, 62.0, 70.0, 80.0, 90.0])  # the first step builds the graph: 60 s
    monkeypatch.setattr(progress.time, "monotonic", lambda: next(clock))
    events = []

    class Listen(logging.Handler):
        def emit(self, record):
            events.append(record.progress)

    listener = Listen()
    logging.getLogger(progress.LOGGER_NAME).addHandler(listener)
    try:
        tracker = progress.ProgressEvents("scratch", total_epochs=2, steps_per_epoch=3, batch_size=8)
        tracker.on_epoch_begin(0)  # t=0
        for step, _ in enumerate(range(3)):  # steps end at t=60, 61, 62
            tracker.on_train_batch_end(step, {"loss": 1.0, "accuracy": 0.5})
        tracker.on_epoch_end(0, {"loss": 1.0, "accuracy": 0.5, "val_accuracy": 0.4})  # t=70, after evaluation
    finally:
        logging.getLogger(progress.LOGGER_NAME).removeHandler(listener)
    epoch = next(e for e in events if e["kind"] == "epoch")
    # 2 steps in 10 s after the first: 5 s a step, 8 images a step; 3 steps left.
    assert epoch["images_per_second"] == 8 * 2 / 10 and epoch["seconds_left"] == 15
    assert epoch["epoch"] == 1 and epoch["eval_accuracy"] == 0.4
