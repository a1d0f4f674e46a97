"""The names of the pipeline's splits, as every artifact, report and config spells them."""

TRAIN = "train"
EVAL = "eval"
# Kept beside an evaluation folder when the data folder has one (never trained or evaluated on).
TEST = "test"
# The unlabelled images of --predict-dir, scored by the blessed model (never trained or evaluated on).
PREDICT = "predict"
# Earliest first: of two copies in different splits, the one outside the earliest is the leak.
ORDER = (TRAIN, EVAL, TEST)
