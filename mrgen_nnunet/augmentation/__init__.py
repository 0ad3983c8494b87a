"""augmentation: appearance randomisation of slices (pure numpy/torch), used by the augmented trainer and the
benchmark's fixed-copies baselines."""
