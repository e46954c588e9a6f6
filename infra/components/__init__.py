"""One construct per concern of the pipeline."""
