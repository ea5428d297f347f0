"""Human feedback back into the model: `thresholds` chooses operating points from labelled
probabilities (the recipe's calibration on val, and per-type suggestions within a false-flag
budget), `labels` reads the truth of annotated turns and writes policy files. Pure values
and the store's rows in; no torch, so the app, the CLI and training all use it."""
