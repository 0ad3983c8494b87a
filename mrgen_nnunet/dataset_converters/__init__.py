"""dataset_converters."""
