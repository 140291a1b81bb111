"""Column layout shared by preprocessing.py, train.py and evaluation.py.

Every split CSV (train, validation, test) has a header row and the columns
``[LABEL] + FEATURES`` in that order: the label comes first and is named
``label`` (1 = fraud, 0 = legitimate), then the eight feature columns below.
"""

import glob
import os

LABEL = "label"

FEATURES = [
    "amount",               # transaction amount, currency units (2 decimals)
    "hour",                 # local hour of the transaction, 0..23
    "merchant_risk",        # merchant risk score, 0..1
    "distance_from_home",   # km between the card holder's home and the merchant
    "txn_count_24h",        # transactions on the card in the last 24 hours
    "avg_amount_30d",       # card's average transaction amount over 30 days
    "card_age_days",        # days since the card was issued
    "foreign_ratio",        # share of the card's recent transactions abroad, 0..1
]

COLUMNS = [LABEL] + FEATURES

SPLITS = ("train", "validation", "test")

# Fixed seed: the same data, the same splits and the same model on every run.
SEED = 42


def split_file(split):
    """File name of one split inside its folder, e.g. ``train/train.csv``."""
    return "%s.csv" % split


def read_labelled(folder, what, hint, fail):
    """All CSVs in `folder` as (features, labels), the columns checked; `fail`
    is the calling script's error exit, `hint` says which variable to set."""
    import pandas as pd

    if not os.path.isdir(folder):
        fail("%s folder %s does not exist (set %s)" % (what, folder, hint))
    files = sorted(glob.glob(os.path.join(folder, "*.csv")))
    if not files:
        fail("no CSV file in %s folder %s" % (what, folder))
    df = pd.concat([pd.read_csv(f) for f in files], ignore_index=True)
    missing = [c for c in COLUMNS if c not in df.columns]
    if missing:
        fail("%s: missing column(s) %s" % (folder, ", ".join(missing)))
    return df[FEATURES], df[LABEL].astype(int)
