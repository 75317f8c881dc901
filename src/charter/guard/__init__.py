"""Constitutional classifiers (work in progress, issue 6): augmentations, embeddings, stage-1
heads and threshold calibration. Synthetic data, the probe, the exchange classifier, streaming
checks, evaluation and data filtering build on these."""
