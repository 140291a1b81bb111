"""Column layout shared by preprocessing.py, train.py and evaluation.py.

Every split CSV (train, validation, test) has a header row and the columns
``[LABEL] + FEATURES`` in that order: the label comes first and is named
``label`` (1 = fraud, 0 = legitimate), then the eight feature columns below.
"""

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
