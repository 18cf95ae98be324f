"""Click-through data for DLRM: generated batches (`random`, `synthetic`) and Criteo files."""
