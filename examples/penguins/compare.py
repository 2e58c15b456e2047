#!/usr/bin/python3
"""lathe against scikit-learn on the Palmer penguins, the same rows in every split.

For each target (species, island) and split seed 0..N-1:
- lathe: `lathe train examples/penguins/config.toml --set data.target=T --set data.seed=S`, its
  test accuracy from the "Accuracy:" line;
- scikit-learn (Debian's python3-sklearn): on the same training rows, median imputation and
  standardization of the numeric columns, most-frequent imputation and one-hot encoding of the
  categorical ones, then LogisticRegression and MLPClassifier(hidden_layer_sizes=(64, 64)),
  scored on the same test rows.
The rows of each split come from `penguins --split-rows ROWS SEED` (examples/penguins/main.cpp),
which calls the split_rows that `lathe train` uses, so nothing is re-implemented here.

usage: compare.py LATHE PENGUINS_PROGRAM [--seeds 5] [--work DIR] [--check POINTS]
  --check POINTS: exit 1 unless, on each target, lathe's mean accuracy is at least scikit-learn's
  best mean minus POINTS percentage points.
"""
import argparse
import json
import os
import re
import subprocess
import sys
import tempfile
import warnings

import numpy as np
import pandas as pd
from sklearn.compose import ColumnTransformer
from sklearn.exceptions import ConvergenceWarning
from sklearn.impute import SimpleImputer
from sklearn.linear_model import LogisticRegression
from sklearn.neural_network import MLPClassifier
from sklearn.pipeline import Pipeline, make_pipeline
from sklearn.preprocessing import OneHotEncoder, StandardScaler
import sklearn

HERE = os.path.dirname(os.path.abspath(__file__))
CONFIG = os.path.join(HERE, "config.toml")
CSV = os.path.join(HERE, "..", "..", "data", "deb", "usr", "lib", "R", "site-library",
                   "palmerpenguins", "extdata", "penguins.csv")
NUMERIC = ["bill_length_mm", "bill_depth_mm", "flipper_length_mm", "body_mass_g", "year"]


def sklearn_models(table, target, split, seed):
    """Test accuracy of logistic regression and a 64-64 MLP on the split's rows."""
    categorical = [c for c in ["species", "island", "sex"] if c != target]
    features = table[categorical + NUMERIC]
    prepare = ColumnTransformer([
        ("numeric", make_pipeline(SimpleImputer(strategy="median"), StandardScaler()), NUMERIC),
        ("categorical", make_pipeline(SimpleImputer(strategy="most_frequent"),
                                      OneHotEncoder(handle_unknown="ignore")), categorical),
    ])
    train, test = split["train"], split["test"]
    scores = {}
    for name, model in [("logistic", LogisticRegression(max_iter=5000)),
                        ("mlp", MLPClassifier(hidden_layer_sizes=(64, 64), max_iter=2000,
                                              random_state=seed))]:
        pipeline = Pipeline([("prepare", prepare), ("model", model)])
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", ConvergenceWarning)
            pipeline.fit(features.iloc[train], table[target].iloc[train])
        scores[name] = 100.0 * pipeline.score(features.iloc[test], table[target].iloc[test])
    return scores


def lathe_accuracy(lathe, target, seed, work):
    run = subprocess.run(
        [lathe, "train", CONFIG, "--set", f"data.target={target}", "--set", f"data.seed={seed}",
         "--set", f"trainer.seed={seed}", "--set", f"trainer.output_dir={work}/{target}-{seed}"],
        capture_output=True, text=True)
    if run.returncode != 0:
        sys.exit(f"compare.py: lathe train failed:\n{run.stdout}{run.stderr}")
    found = re.search(r"^Accuracy: ([0-9.]+)%$", run.stdout, re.M)
    if not found:
        sys.exit(f"compare.py: no Accuracy line in:\n{run.stdout}")
    return float(found.group(1))


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("lathe")
    parser.add_argument("penguins")
    parser.add_argument("--seeds", type=int, default=5)
    parser.add_argument("--work")
    parser.add_argument("--check", type=float)
    args = parser.parse_args()
    if not os.path.exists(CSV):
        sys.exit(f"compare.py: {CSV} is missing: run scripts/setup.sh")
    table = pd.read_csv(CSV)  # "NA" cells become NaN
    work = args.work or tempfile.mkdtemp(prefix="penguins-")

    print(f"Palmer penguins: {len(table)} rows; scikit-learn {sklearn.__version__}; "
          f"split seeds 0..{args.seeds - 1}")
    means = {}
    failed = False
    for target in ["species", "island"]:
        rows = {"lathe": [], "logistic": [], "mlp": []}
        for seed in range(args.seeds):
            split = json.loads(subprocess.run(
                [args.penguins, "--split-rows", str(len(table)), str(seed)],
                capture_output=True, text=True, check=True).stdout)
            scores = sklearn_models(table, target, split, seed)
            rows["logistic"].append(scores["logistic"])
            rows["mlp"].append(scores["mlp"])
            rows["lathe"].append(lathe_accuracy(args.lathe, target, seed, work))
            print(f"{target:8s} seed {seed}: {len(split['train'])} training, {len(split['test'])} "
                  f"test rows; lathe {rows['lathe'][-1]:.2f}%, scikit-learn logistic "
                  f"{scores['logistic']:.2f}%, MLP 64-64 {scores['mlp']:.2f}%", flush=True)
        means[target] = {name: float(np.mean(values)) for name, values in rows.items()}
    print("\nmean test accuracy over the seeds")
    print(f"{'target':8s} {'lathe MLP 64-64':>16s} {'sklearn logistic':>17s} "
          f"{'sklearn MLP 64-64':>18s}")
    for target, m in means.items():
        print(f"{target:8s} {m['lathe']:15.2f}% {m['logistic']:16.2f}% {m['mlp']:17.2f}%")
        best = max(m["logistic"], m["mlp"])
        if args.check is not None and m["lathe"] < best - args.check:
            print(f"FAIL {target}: lathe {m['lathe']:.2f}% is more than {args.check} points below "
                  f"scikit-learn's best {best:.2f}%")
            failed = True
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
