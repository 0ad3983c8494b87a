"""pseudo_labels: segment real unlabelled target scans with a trained nnU-Net and keep the confident slices as a
training dataset (self-training). `rules` is pure numpy; `run` loads the model and writes the dataset."""
