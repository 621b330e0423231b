"""The synthetic competition: simulated biology in the exact Kaggle layout, with hidden truth."""
