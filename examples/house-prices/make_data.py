"""Writes data/houses.csv: a synthetic housing table (fixed seed, no download).

Not part of the pipeline (.mltpignore keeps it out of the code bundle); run it
to regenerate the file, or upload the file to the S3 `source` of the `raw`
input in config.yaml to train on AWS:

    python make_data.py && aws s3 cp data/houses.csv s3://mlops-data/house-prices/raw/houses.csv
"""
import csv
import os
import random

SEED = 7
ROWS = 2400
NEIGHBOURHOODS = ["riverside", "old-town", "hillcrest", "harbour"]
PREMIUM = {"riverside": 42000.0, "old-town": 18000.0, "hillcrest": 65000.0, "harbour": 30000.0}


def row(rng):
    area = rng.uniform(35.0, 240.0)             # square metres
    rooms = max(1, int(round(area / 28.0 + rng.gauss(0.0, 0.8))))
    age = rng.randint(0, 95)                    # years
    distance = rng.uniform(0.3, 25.0)           # km to the centre
    hood = rng.choice(NEIGHBOURHOODS)
    garage = 1 if rng.random() < 0.45 else 0
    price = (52000.0 + 2150.0 * area + 9000.0 * rooms - 620.0 * age - 3100.0 * distance
             + PREMIUM[hood] + 14000.0 * garage + rng.gauss(0.0, 21000.0))
    return [round(area, 1), rooms, age, round(distance, 2), hood, garage, round(max(price, 20000.0), -2)]


def main():
    rng = random.Random(SEED)
    here = os.path.dirname(os.path.abspath(__file__))
    os.makedirs(os.path.join(here, "data"), exist_ok=True)
    with open(os.path.join(here, "data", "houses.csv"), "w", newline="") as handle:
        writer = csv.writer(handle)
        writer.writerow(["area_m2", "rooms", "age_years", "distance_km", "neighbourhood", "garage", "price"])
        for _ in range(ROWS):
            writer.writerow(row(rng))


if __name__ == "__main__":
    main()
