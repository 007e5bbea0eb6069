"""Run by .venv-focus/bin/python (not by pytest, no Django): a FOCUS CSV as the typed Parquet table the official
validator reads, and the folder the validator must run from.

``python focus_to_parquet.py IN.csv OUT.parquet TYPES_JSON`` — TYPES_JSON maps column → FOCUS type (string,
decimal, datetime, json), from ``billing.focus.columns.COLUMN_TYPES``. Why not the CSV itself: focus-validator
1.0.0 reads a CSV with ``pandas.read_csv``'s type guessing, so an AWS account id (12 digits) becomes an integer and
fails "BillingAccountId is a string", and a column that is empty on every row becomes float and fails its string
check; Parquet keeps the specification's types. The validator's 1.0 rule set still names five columns by their
FOCUS 0.5 names (Provider, Publisher, InvoiceIssuer, ResourceID; SkuPriceId's rule reads ChargeType), so the table
also gets those as copies of their 1.0 columns: its checks then run on our values instead of failing on a name.
Prints the folder holding the ``focus_validator`` package: its currency check opens
``focus_validator/utils/currency_codes.csv`` relative to the working directory.
"""

import json
import os
import sys

import focus_validator
import pandas as pd

VALIDATOR_1_0_OLD_NAMES = {
    "Provider": "ProviderName",
    "Publisher": "PublisherName",
    "InvoiceIssuer": "InvoiceIssuerName",
    "ResourceID": "ResourceId",
    "ChargeType": "ChargeCategory",
}


def main(source: str, target: str, types_json: str) -> None:
    types = json.loads(types_json)
    text = [name for name, kind in types.items() if kind != "decimal"]
    frame = pd.read_csv(source, dtype={name: "string" for name in text}, keep_default_na=False, na_values=[""])
    for name, kind in types.items():
        if kind == "decimal" and name in frame:
            try:
                frame[name] = frame[name].astype("float64")
            except ValueError:  # not numbers: left as text, which the validator's decimal check refuses
                frame[name] = frame[name].astype("string")
    for old, new in VALIDATOR_1_0_OLD_NAMES.items():
        if new in frame:
            frame[old] = frame[new]
    frame.to_parquet(target)
    print(os.path.dirname(os.path.dirname(focus_validator.__file__)))


if __name__ == "__main__":
    main(*sys.argv[1:4])
